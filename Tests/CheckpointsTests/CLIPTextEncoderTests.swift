import Foundation
import XCTest
@testable import Checkpoints
import Models
import Tensors
import WeightsIO

/// Standalone CLIP text encoders (transformers `CLIPTextModel` / `CLIPTextModelWithProjection`) against
/// bundles transformers 5.24 produced (tools/make_clip_fixtures.py `hf_text_models`).
final class CLIPTextEncoderTests: XCTestCase {
    func fixture(_ path: String) -> String { CLIPCheckpointTests.fixture(path) }

    /// The bar on final outputs: relative error ≤ 1e-4.
    let tolerance = Tolerance(absolute: 0, relative: 1e-4)

    func assertVerifies(_ model: String, _ bundle: String, outputs: [String], file: StaticString = #filePath, line: UInt = #line) throws {
        let report = try ModelVerifier.verify(model: fixture(model), bundlePath: fixture(bundle), tolerance: tolerance)
        XCTAssertEqual(report.component, "clip-text", file: file, line: line)
        XCTAssertEqual(report.comparisons.map(\.name).sorted(), outputs.sorted(), file: file, line: line)
        for c in report.comparisons {
            XCTAssertTrue(c.passed, "\(model) \(c.name): max-abs \(c.maxAbsoluteError), relative \(c.relativeError)", file: file, line: line)
            XCTAssertLessThanOrEqual(c.relativeError, 1e-4, file: file, line: line)
        }
    }

    func testTextModelWithoutPrefixAndWithPrefix() throws {
        // model.safetensors as transformers 5.24 saves CLIPTextModel: no `text_model.` prefix.
        let store = try WeightsReader.open(fixture("hf_text/model.safetensors"))
        XCTAssertFalse(store.names.contains { $0.hasPrefix("text_model.") })
        try assertVerifies("hf_text", "hf_text.reference.safetensors", outputs: ["last_hidden_state", "pooler_output"])
        // pytorch_model.bin: the same weights under the older prefixed names (config.json beside it).
        XCTAssertTrue(try WeightsReader.open(fixture("hf_text/pytorch_model.bin")).names.allSatisfy { $0.hasPrefix("text_model.") })
        try assertVerifies("hf_text/pytorch_model.bin", "hf_text.reference.safetensors", outputs: ["last_hidden_state", "pooler_output"])
    }

    func testTextModelWithProjectionBothNamings() throws {
        let outputs = ["last_hidden_state", "pooler_output", "text_embeds"]
        try assertVerifies("hf_text_projection", "hf_text_projection.reference.safetensors", outputs: outputs)
        XCTAssertFalse(try WeightsReader.open(fixture("hf_text_projection/pytorch_model.bin")).names.contains { $0.hasPrefix("text_model.") })
        try assertVerifies("hf_text_projection/pytorch_model.bin", "hf_text_projection.reference.safetensors", outputs: outputs)
    }

    func testLoadedTextEncoderShape() throws {
        let loaded = try CLIPLoader.loadText(fixture("hf_text_projection"))
        XCTAssertTrue(loaded.isTextOnly)
        XCTAssertEqual(loaded.layout, .huggingFace)
        XCTAssertEqual(loaded.encoder.projectionDimension, 16)
        XCTAssertEqual(loaded.encoder.configuration.activation, .quickGELU)
        XCTAssertEqual(loaded.encoder.configuration.pooling, .firstToken(999))
        let bare = try CLIPLoader.loadText(fixture("hf_text"))
        XCTAssertNil(bare.encoder.projectionDimension)
        XCTAssertEqual(bare.encoder.configuration.activation, .gelu)
        // embed() is the projected pooled state with a projection, else the pooled state.
        let bundle = try ReferenceBundle(path: fixture("hf_text_projection.reference.safetensors"))
        let embedded = try withNoGrad { try loaded.encoder.embed(bundle.idRows("input_ids")) }
        let comparison = tolerance.compare(name: "text_embeds", computed: embedded, expected: try bundle.expected("text_embeds"))
        XCTAssertTrue(comparison.passed, "relative \(comparison.relativeError)")
    }

    func testLoadAnyTellsTextOnlyFromFull() throws {
        guard case .textOnly = try CLIPLoader.loadAny(fixture("hf_text")) else { return XCTFail("hf_text is a text tower") }
        guard case .full = try CLIPLoader.loadAny(fixture("hf")) else { return XCTFail("hf is a full CLIP") }
    }

    func testFullCLIPLoaderRefusesATextTowerClearly() throws {
        XCTAssertThrowsError(try CLIPLoader.load(fixture("hf_text_projection"))) { error in
            XCTAssertTrue("\(error)".contains("only a text tower"), "\(error)")
            XCTAssertTrue("\(error)".contains("model.safetensors"), "names the file: \(error)")
        }
    }

    func testTextTowerOfAFullCLIPMatchesItsTextEmbeddings() throws {
        // transformers' CLIPModel text_embeds (projected) from the `hf` bundle, via the text loader.
        let loaded = try CLIPLoader.loadText(fixture("hf"))
        XCTAssertFalse(loaded.isTextOnly)
        let bundle = try ReferenceBundle(path: fixture("hf.reference.safetensors"))
        let embedded = try withNoGrad { try loaded.encoder.embed(bundle.idRows("input_ids")) }
        let comparison = tolerance.compare(name: "text_embeds", computed: embedded, expected: try bundle.expected("text_embeds"))
        XCTAssertTrue(comparison.passed, "relative \(comparison.relativeError)")
        // The same from an OpenCLIP state dict (text_projection transposed by the layout rules).
        let openCLIP = try CLIPLoader.loadText(fixture("openclip_gelu/open_clip_model.safetensors"))
        let ocBundle = try ReferenceBundle(path: fixture("openclip_gelu.reference.safetensors"))
        let ocEmbedded = try withNoGrad { try openCLIP.encoder.embed(ocBundle.idRows("input_ids")) }
        XCTAssertTrue(tolerance.compare(name: "text_embeds", computed: ocEmbedded, expected: try ocBundle.expected("text_embeds")).passed)
    }

    func testUnknownTextSizeWithoutConfigurationAsksForOne() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("sdsclip-text-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let weights = folder.appendingPathComponent("model.safetensors").path
        try FileManager.default.copyItem(atPath: fixture("hf_text/model.safetensors"), toPath: weights)
        XCTAssertThrowsError(try CLIPLoader.loadText(weights)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("unknown CLIP text size"), text)
            XCTAssertTrue(text.contains("--config"), text)
        }
        // With the configuration given explicitly, the same file verifies.
        let report = try ModelVerifier.verify(model: weights, bundlePath: fixture("hf_text.reference.safetensors"),
                                              configuration: fixture("hf_text/config.json"), tolerance: tolerance)
        XCTAssertTrue(report.passed)
    }

    func testPoolingStopsAtTheLastEndTokenExactly() throws {
        // Rows end at positions 4 and 12 of 16, so pooled() runs 13 positions; the result must be the
        // full run's states at the end tokens (causal attention), and the bundle's pooler_output.
        let loaded = try CLIPLoader.loadText(fixture("hf_text"))
        let bundle = try ReferenceBundle(path: fixture("hf_text.reference.safetensors"))
        let ids = try bundle.idRows("input_ids")
        XCTAssertEqual(ids.map { $0.firstIndex(of: 999) }, [4, 12])
        let transformer = loaded.encoder.transformer
        let (short, full) = try withNoGrad { (try transformer.pooled(ids), try transformer.pool(transformer.hiddenStates(ids), ids: ids)) }
        let shortcut = Tolerance(absolute: 0, relative: 1e-5).compare(name: "pooled", computed: short, expected: full)
        XCTAssertTrue(shortcut.passed, "relative \(shortcut.relativeError)")
        XCTAssertTrue(tolerance.compare(name: "pooler_output", computed: short, expected: try bundle.expected("pooler_output")).passed)
        // A bad id after the end token is never run, but is still refused.
        var bad = ids
        bad[0][15] = 5000
        XCTAssertThrowsError(try withNoGrad { try transformer.pooled(bad) }) { error in
            XCTAssertTrue("\(error)".contains("5000"), "\(error)")
        }
    }

    func testWrongActivationIsCaught() throws {
        // hf_text uses GELU; forcing QuickGELU must move the outputs well past the tolerance.
        let loaded = try CLIPLoader.loadText(fixture("hf_text"), activation: .quickGELU)
        let bundle = try ReferenceBundle(path: fixture("hf_text.reference.safetensors"))
        let pooled = try withNoGrad { try loaded.encoder.embed(bundle.idRows("input_ids")) }
        let comparison = tolerance.compare(name: "pooler_output", computed: pooled, expected: try bundle.expected("pooler_output"))
        XCTAssertFalse(comparison.passed)
        XCTAssertGreaterThan(comparison.relativeError, 1e-3)
    }

    func testReleasedTextTowersFromTheTable() throws {
        // Text tensors of the real ViT-B/32 and ViT-H-14 (manifests of the released files).
        let cases: [(String, Int, CLIPActivation, [String])] = [
            ("clip_vit_b32_openai_to_hf.json", 8, .quickGELU, ["ViT-B/32", "ViT-B/16"]),
            ("clip_vit_l14_openai_to_hf.json", 12, .quickGELU, ["ViT-L/14", "ViT-L/14@336"]),
            ("clip_vit_h14_openclip_to_hf.json", 16, .gelu, ["ViT-H-14", "ViT-g-14"]),
        ]
        for (manifest, heads, activation, names) in cases {
            let shapes = try CLIPArchitectureTests.canonicalShapes(manifest).filter { CLIPLoader.isTextTensor($0.key) }
            let (config, known) = try CLIPArchitecture.inferText(shapes)
            XCTAssertEqual(known.map(\.name), names, manifest)
            XCTAssertEqual(config.heads, heads, manifest)
            XCTAssertEqual(config.activation, activation, manifest)
            XCTAssertEqual(config.contextLength, 77)
            // Every name and shape of the real tower must be accepted, with the projection.
            let source = ShapeOnlySource(shapes)
            let projection = try XCTUnwrap(shapes["text_projection.weight"])[0]
            _ = try CLIPTextEncoder(source, configuration: config, projectionDimension: projection)
            XCTAssertEqual(source.requested, Set(shapes.keys), manifest)
        }
    }
}
