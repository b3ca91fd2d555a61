import Foundation
import XCTest
@testable import Checkpoints
import Layouts
import Models
import WeightsIO

/// `inspect`'s CLIP report: layout, architecture, where heads/activation came from, per-tower totals.
final class CLIPDescriptionTests: XCTestCase {
    func fixture(_ path: String) -> String { CLIPCheckpointTests.fixture(path) }

    /// Stored (OpenAI/OpenCLIP) names and shapes of a released model's manifest.
    func storedShapes(_ manifest: String) throws -> [NamedShape] {
        let url = CLIPCheckpointTests.root.appendingPathComponent("fixtures/manifests/\(manifest)")
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        let rows = try XCTUnwrap(json["rows"] as? [[Any]])
        var seen: Set<String> = [], shapes: [NamedShape] = []
        for row in rows {
            guard let source = row[0] as? String, let shape = row[3] as? [NSNumber], seen.insert(source).inserted else { continue }
            shapes.append(NamedShape(source, shape.map(\.intValue)))
        }
        return shapes
    }

    func testReleasedModelsTotalsPerTower() throws {
        // models.md §1.9 (counted on the released files): total, vision incl. visual.proj, text incl. text_projection.
        let cases: [(String, String, Int, Int, Int)] = [
            ("clip_vit_b32_openai_to_hf.json", "ViT-B/32", 151_277_313, 87_849_216, 63_428_096),
            ("clip_vit_l14_openai_to_hf.json", "ViT-L/14", 427_616_513, 303_966_208, 123_650_304),
            ("clip_vit_h14_openclip_to_hf.json", "ViT-H-14", 986_109_441, 632_076_800, 354_032_640),
        ]
        for (manifest, name, total, vision, text) in cases {
            let d = try CLIPLoader.describe(shapes: storedShapes(manifest), format: .torchZip, file: manifest, configuration: nil)
            XCTAssertEqual(d.layout, .openCLIP, manifest)
            XCTAssertEqual(d.towers, "image+text")
            XCTAssertEqual(d.architecture, name)
            XCTAssertEqual(d.parameters.total, total, manifest)
            XCTAssertEqual(d.parameters.vision, vision, manifest)
            XCTAssertEqual(d.parameters.text, text, manifest)
            XCTAssertEqual(d.parameters.other, 1, "logit_scale")
            XCTAssertTrue(d.headsSource.contains("table"), d.headsSource)
        }
        let h = try CLIPLoader.describe(shapes: storedShapes("clip_vit_h14_openclip_to_hf.json"), format: .safetensors, file: "h", configuration: nil)
        XCTAssertEqual(h.vision?.heads, 16)
        XCTAssertEqual(h.text.heads, 16)
        XCTAssertEqual(h.activation, .gelu)
        XCTAssertEqual(h.embedDimension, 1024)
        XCTAssertEqual(h.vision?.patchSize, 14)
        // The same names inside a TorchScript archive are OpenAI's released container.
        let jit = try CLIPLoader.describe(shapes: storedShapes("clip_vit_b32_openai_to_hf.json"), format: .torchScript, file: "b32", configuration: nil)
        XCTAssertEqual(jit.layout, .torchScriptOpenAI)
    }

    /// Per-tower totals the real libraries count on the models they load from the fixture files.
    func testFixtureTotalsMatchTheLibraries() throws {
        let url = URL(fileURLWithPath: fixture("parameter_counts.json"))
        let counts = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: [String: Int]])
        let paths: [String: (String, CLIPCheckpointLayout, String)] = [
            "hf": ("hf", .huggingFace, "image+text"),
            "hf_gelu_fp16mix": ("hf_gelu_fp16mix/pytorch_model.bin", .huggingFace, "image+text"),
            "hf_text": ("hf_text", .huggingFace, "text"),
            "hf_text_projection": ("hf_text_projection/pytorch_model.bin", .huggingFace, "text"),
            "openclip_quickgelu": ("openclip_quickgelu", .openCLIP, "image+text"),
            "openclip_gelu": ("openclip_gelu/open_clip_pytorch_model.bin", .openCLIP, "image+text"),
            "openai_jit": ("openai_jit/ViT-tiny.pt", .torchScriptOpenAI, "image+text"),
        ]
        XCTAssertEqual(Set(counts.keys), Set(paths.keys))
        for (name, (path, layout, towers)) in paths {
            let expected = try XCTUnwrap(counts[name])
            let store = try WeightsReader.open(fixture(path))
            let d = try XCTUnwrap(try CLIPLoader.describe(store: store, path: fixture(path)), name)
            XCTAssertEqual(d.layout, layout, name)
            XCTAssertEqual(d.towers, towers, name)
            XCTAssertEqual(d.parameters.vision, expected["vision"], name)
            XCTAssertEqual(d.parameters.text, expected["text"], name)
            XCTAssertEqual(d.parameters.other, expected["other"], name)
            XCTAssertEqual(d.parameters.total, expected["total"], name)
            XCTAssertEqual(d.architecture, "custom", name)
            XCTAssertTrue(d.headsSource.hasPrefix("configuration file"), "\(name): \(d.headsSource)")
        }
    }

    func testFixtureArchitectureFromConfigurationFiles() throws {
        let jit = try XCTUnwrap(try CLIPLoader.describe(store: WeightsReader.open(fixture("openai_jit/ViT-tiny.pt")), path: fixture("openai_jit/ViT-tiny.pt")))
        XCTAssertEqual(jit.vision, CLIPDescription.Vision(width: 32, layers: 2, patchSize: 8, imageSize: 32, mlpWidth: 128, heads: 4))
        XCTAssertEqual(jit.activation, .quickGELU)
        // OpenAI's three integer buffers and the causal mask are reported as ignored, not counted.
        XCTAssertEqual(Set(jit.dropped.map { String($0.prefix { $0 != ":" }) }), ["attn_mask", "input_resolution", "context_length", "vocab_size"])
        let gelu = try XCTUnwrap(try CLIPLoader.describe(store: WeightsReader.open(fixture("hf_gelu_fp16mix")), path: fixture("hf_gelu_fp16mix")))
        XCTAssertEqual(gelu.activation, .gelu)
        XCTAssertEqual(gelu.text.heads, 4)
        XCTAssertEqual(gelu.embedDimension, 16)
        let text = try XCTUnwrap(try CLIPLoader.describe(store: WeightsReader.open(fixture("hf_text")), path: fixture("hf_text")))
        XCTAssertNil(text.vision)
        XCTAssertNil(text.embedDimension)
        XCTAssertEqual(text.text.width, 32)
    }

    func testCustomSizeWithoutConfigurationSaysWhatIsMissing() throws {
        let store = try WeightsReader.open(fixture("openclip_quickgelu/open_clip_model.safetensors"))
        let d = try CLIPLoader.describe(shapes: CanonicalTensors.namedShapes(store), format: store.format, file: "x", configuration: nil)
        XCTAssertEqual(d.architecture, "custom")
        XCTAssertNil(d.vision?.heads)
        XCTAssertNil(d.activation)
        XCTAssertTrue(d.headsSource.contains("--config"), d.headsSource)
    }

    func testNotACLIPIsNil() throws {
        let store = try WeightsReader.open(fixture("hf.reference.safetensors"))
        XCTAssertNil(try CLIPLoader.describe(store: store, path: fixture("hf.reference.safetensors")))
    }

    func testJSONCarriesTheTotal() throws {
        let d = try XCTUnwrap(try CLIPLoader.describe(store: WeightsReader.open(fixture("hf")), path: fixture("hf")))
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: JSONEncoder().encode(d)) as? [String: Any])
        XCTAssertEqual((object["parameters"] as? [String: Int])?["total"], 65_205)
        XCTAssertEqual(object["layout"] as? String, "huggingface")
    }
}
