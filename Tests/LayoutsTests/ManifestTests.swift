import Foundation
import XCTest
@testable import Layouts

/// The layout rules against the name/shape manifests of real checkpoints (SD 1.x/2.x UNet, VAE,
/// text encoders; OpenAI ViT-B/32 and L/14, OpenCLIP ViT-H-14), generated from the real converters.
final class ManifestTests: XCTestCase {
    struct Row {
        let source: String
        let target: String?
        let transform: String?
        let sourceShape: [Int]
        let targetShape: [Int]?
    }

    static let manifestFolder = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("fixtures/manifests")

    func loadRows(_ file: String) throws -> [Row] {
        let data = try Data(contentsOf: Self.manifestFolder.appendingPathComponent(file))
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
        let columns = try XCTUnwrap(json["columns"] as? [String])
        let rows = try XCTUnwrap(json["rows"] as? [[Any]])
        let hasTransform = columns.count == 5
        return rows.map { row in
            let shape = { (value: Any) -> [Int]? in (value as? [NSNumber])?.map(\.intValue) }
            return Row(source: row[0] as! String, target: row[1] as? String,
                       transform: hasTransform ? row[2] as? String : nil,
                       sourceShape: shape(row[hasTransform ? 3 : 2]) ?? [],
                       targetShape: shape(row[hasTransform ? 4 : 3]))
        }
    }

    /// Distinct source tensors in manifest order.
    func sources(_ rows: [Row]) -> [NamedShape] {
        var seen = Set<String>()
        return rows.compactMap { seen.insert($0.source).inserted ? NamedShape($0.source, $0.sourceShape) : nil }
    }

    func assertPlanMatches(_ plan: LayoutPlan, _ rows: [Row], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(plan.unknown, [], "names no rule recognised", file: file, line: line)
        let shapes = Dictionary(rows.map { ($0.source, $0.sourceShape) }, uniquingKeysWith: { a, _ in a })
        let isDropped = { (row: Row) in row.target == nil || row.transform?.hasPrefix("ignore") == true || row.transform == "drop" }
        let expected = rows.filter { !isDropped($0) }
        XCTAssertEqual(plan.mapped.count, expected.count, "mapped tensor count", file: file, line: line)
        let byTarget = Dictionary(plan.mapped.map { ($0.target, $0) }, uniquingKeysWith: { a, _ in a })
        XCTAssertEqual(byTarget.count, plan.mapped.count, "two sources map to one target", file: file, line: line)
        for row in expected {
            guard let target = row.target, let mapped = byTarget[target] else {
                XCTFail("no rule produces \(row.target ?? "?") from \(row.source)", file: file, line: line)
                continue
            }
            XCTAssertEqual(mapped.source, row.source, "source of \(target)", file: file, line: line)
            XCTAssertEqual(shapes[row.source].flatMap { mapped.transform.apply(to: $0) }, row.targetShape,
                           "shape of \(target) (\(mapped.transform))", file: file, line: line)
            if let transform = row.transform, transform.hasPrefix("rows") || transform == "transpose" || transform == "copy" {
                XCTAssertEqual(mapped.transform.description, transform, "transform of \(target)", file: file, line: line)
            }
        }
        let droppedExpected = Set(rows.filter(isDropped).map(\.source))
        XCTAssertEqual(Set(plan.dropped.map(\.name)), droppedExpected, "dropped tensors", file: file, line: line)
    }

    func testSD1UNet() throws {
        let rows = try loadRows("sd1_unet_ldm_to_diffusers.json")
        XCTAssertEqual(rows.count, 686)
        XCTAssertEqual(StableDiffusionLayout.unetLayersPerBlock(rows.map { String($0.source.dropFirst(22)) }), 2)
        assertPlanMatches(StableDiffusionLayout.unetToDiffusers(sources(rows)), rows)
        XCTAssertEqual(rows.reduce(0) { $0 + $1.sourceShape.reduce(1, *) }, 859_520_964)
    }

    func testSD2UNet() throws {
        let rows = try loadRows("sd2_unet_ldm_to_diffusers.json")
        assertPlanMatches(StableDiffusionLayout.unetToDiffusers(sources(rows)), rows)
        XCTAssertEqual(rows.reduce(0) { $0 + $1.sourceShape.reduce(1, *) }, 865_910_724)
    }

    func testVAE() throws {
        let rows = try loadRows("sd_vae_ldm_to_diffusers.json")
        let plan = StableDiffusionLayout.vaeToDiffusers(sources(rows))
        assertPlanMatches(plan, rows)
        XCTAssertEqual(plan.mapped.filter { $0.transform == .squeeze1x1 }.count, 8, "only the 8 attention projections change shape")
    }

    func testSD1TextEncoder() throws {
        let rows = try loadRows("sd1_text_ldm_to_hf.json")
        assertPlanMatches(StableDiffusionLayout.sd1TextToHF(sources(rows)), rows)
    }

    func testSD2TextEncoder() throws {
        let rows = try loadRows("sd2_text_ldm_to_hf.json")
        assertPlanMatches(StableDiffusionLayout.sd2TextToHF(sources(rows)), rows)
    }

    func testOpenAIViTB32() throws {
        let rows = try loadRows("clip_vit_b32_openai_to_hf.json")
        assertPlanMatches(CLIPLayout.openCLIPToHF(sources(rows)), rows)
        XCTAssertEqual(Set(rows.map(\.source)).count, 302)
        XCTAssertEqual(rows.count, 398)
    }

    func testOpenAIViTL14() throws {
        let rows = try loadRows("clip_vit_l14_openai_to_hf.json")
        assertPlanMatches(CLIPLayout.openCLIPToHF(sources(rows)), rows)
    }

    func testOpenCLIPViTH14() throws {
        let rows = try loadRows("clip_vit_h14_openclip_to_hf.json")
        assertPlanMatches(CLIPLayout.openCLIPToHF(sources(rows)), rows)
    }

    // MARK: Export rules (HF → OpenAI/OpenCLIP)

    /// Forward then inverse gives back every original name and shape; each manifest row's HF tensor
    /// is a source of its original tensor, q/k/v in the row order the manifest gives.
    func assertExportRoundTrip(_ file: String, line: UInt = #line) throws {
        let rows = try loadRows(file)
        let original = sources(rows)
        let originalShapes = Dictionary(original.map { ($0.name, $0.shape) }, uniquingKeysWith: { a, _ in a })
        let forward = CLIPLayout.openCLIPToHF(original)
        let canonical = try forward.mapped.map { mapped in
            NamedShape(mapped.target, try XCTUnwrap(originalShapes[mapped.source].flatMap { mapped.transform.apply(to: $0) }))
        }
        let back = CLIPLayout.hfToOpenCLIP(canonical)
        XCTAssertEqual(back.unknown, [], line: line)
        XCTAssertTrue(back.incomplete.isEmpty, "\(back.incomplete)", line: line)
        let canonicalShapes = Dictionary(canonical.map { ($0.name, $0.shape) }, uniquingKeysWith: { a, _ in a })
        let exported = back.assembled.map { NamedShape($0.target, $0.assembly.shape(sourceShapes: canonicalShapes) ?? [-1]) }
        XCTAssertEqual(exported.count, original.count, line: line)
        XCTAssertEqual(Set(exported), Set(original), line: line)

        let byTarget = Dictionary(back.assembled.map { ($0.target, $0.assembly) }, uniquingKeysWith: { a, _ in a })
        for row in rows {
            guard let hf = row.target, let assembly = byTarget[row.source] else {
                XCTFail("\(row.source) is not exported", line: line)
                continue
            }
            guard let slot = assembly.sources.firstIndex(of: hf) else {
                XCTFail("\(row.source) is not made from \(hf)", line: line)
                continue
            }
            switch (assembly, row.transform) {
            case (.concatenatedRows(let parts), let transform?) where transform.hasPrefix("rows"):
                let width = row.sourceShape[0] / parts.count
                XCTAssertEqual(transform, "rows[\(slot * width):\((slot + 1) * width)]", "\(hf) in \(row.source)", line: line)
            case (.single(_, let transform), let expected?):
                XCTAssertEqual(transform.description, expected, "\(row.source)", line: line)
            default:
                XCTFail("\(row.source): \(assembly) does not match the manifest's \(row.transform ?? "none")", line: line)
            }
        }
    }

    func testExportRoundTripOpenAIViTB32() throws { try assertExportRoundTrip("clip_vit_b32_openai_to_hf.json") }
    func testExportRoundTripOpenAIViTL14() throws { try assertExportRoundTrip("clip_vit_l14_openai_to_hf.json") }
    func testExportRoundTripOpenCLIPViTH14() throws { try assertExportRoundTrip("clip_vit_h14_openclip_to_hf.json") }

    func testExportReportsUnknownNamesAndIncompleteAttention() {
        let plan = CLIPLayout.hfToOpenCLIP([
            NamedShape("vision_model.encoder.layers.0.self_attn.q_proj.weight", [4, 4]),
            NamedShape("vision_model.encoder.layers.0.self_attn.k_proj.weight", [4, 4]),
            NamedShape("text_model.embeddings.position_ids", [1, 7]),
            NamedShape("visual_projection.weight", [2, 4]),
        ])
        XCTAssertEqual(plan.unknown, ["text_model.embeddings.position_ids"])
        XCTAssertEqual(plan.incomplete.map(\.target), ["visual.transformer.resblocks.0.attn.in_proj_weight"])
        XCTAssertEqual(plan.incomplete.first?.missing, ["v_proj"])
        XCTAssertEqual(plan.assembled, [AssembledTensor(target: "visual.proj", assembly: .single("visual_projection.weight", .transpose))])
        XCTAssertEqual(plan.assembled[0].assembly.shape(sourceShapes: ["visual_projection.weight": [2, 4]]), [4, 2])
        XCTAssertNil(TensorAssembly.concatenatedRows(["a", "b"]).shape(sourceShapes: ["a": [2, 3], "b": [2, 4]]),
                     "parts must agree past the first axis")
    }

    func testDerivedBuffersAreDroppedNotUnknown() {
        let plan = CLIPLayout.openCLIPToHF([NamedShape("input_resolution", []), NamedShape("context_length", []),
                                            NamedShape("vocab_size", []), NamedShape("bogus.weight", [3])])
        XCTAssertEqual(plan.dropped.count, 3)
        XCTAssertEqual(plan.unknown, ["bogus.weight"])
    }

    func testOldDiffusersVAEAttentionNames() {
        XCTAssertEqual(StableDiffusionLayout.modernizeDiffusersVAEName("encoder.mid_block.attentions.0.query.weight"),
                       "encoder.mid_block.attentions.0.to_q.weight")
        XCTAssertEqual(StableDiffusionLayout.modernizeDiffusersVAEName("decoder.mid_block.attentions.0.proj_attn.bias"),
                       "decoder.mid_block.attentions.0.to_out.0.bias")
        XCTAssertEqual(StableDiffusionLayout.modernizeDiffusersVAEName("encoder.conv_in.weight"), "encoder.conv_in.weight")
    }
}
