import Foundation
import XCTest
@testable import Checkpoints
import Layouts
import Models
import Tensors

/// Architecture inference on the name/shape manifests of real released CLIPs.
final class CLIPArchitectureTests: XCTestCase {
    func canonicalShapes(_ manifest: String) throws -> [String: [Int]] { try Self.canonicalShapes(manifest) }

    /// HF names and shapes of a released model's manifest.
    static func canonicalShapes(_ manifest: String) throws -> [String: [Int]] {
        let url = CLIPCheckpointTests.root.appendingPathComponent("fixtures/manifests/\(manifest)")
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        let rows = try XCTUnwrap(json["rows"] as? [[Any]])
        var shapes: [String: [Int]] = [:]
        for row in rows {
            guard let target = row[1] as? String, let shape = row[4] as? [NSNumber] else { continue }
            shapes[target] = shape.map(\.intValue)
        }
        return shapes
    }

    func testReleasedModelsGetTheirHeadsAndActivation() throws {
        let cases: [(String, String, Int, Int, CLIPActivation, Int)] = [
            ("clip_vit_b32_openai_to_hf.json", "ViT-B/32", 12, 8, .quickGELU, 224),
            ("clip_vit_l14_openai_to_hf.json", "ViT-L/14", 16, 12, .quickGELU, 224),
            // width/64 would give 20 heads here; the real model has 16.
            ("clip_vit_h14_openclip_to_hf.json", "ViT-H-14", 16, 16, .gelu, 224),
        ]
        for (manifest, name, visionHeads, textHeads, activation, imageSize) in cases {
            let (config, known) = try CLIPArchitecture.infer(canonicalShapes(manifest))
            XCTAssertEqual(known.name, name)
            XCTAssertEqual(config.vision.heads, visionHeads, name)
            XCTAssertEqual(config.text.heads, textHeads, name)
            XCTAssertEqual(config.vision.activation, activation, name)
            XCTAssertEqual(config.text.activation, activation, name)
            XCTAssertEqual(config.vision.imageSize, imageSize, name)
            XCTAssertEqual(config.text.contextLength, 77)
            XCTAssertEqual(config.text.vocabularySize, 49408)
        }
    }

    func testB32Sizes() throws {
        let (config, _) = try CLIPArchitecture.infer(canonicalShapes("clip_vit_b32_openai_to_hf.json"))
        XCTAssertEqual(config.vision.patchSize, 32)
        XCTAssertEqual(config.vision.layers, 12)
        XCTAssertEqual(config.vision.mlpWidth, 3072)
        XCTAssertEqual(config.text.width, 512)
        XCTAssertEqual(config.embedDimension, 512)
    }

    func testActivationOverride() throws {
        let (config, _) = try CLIPArchitecture.infer(canonicalShapes("clip_vit_b32_openai_to_hf.json"), activation: .gelu)
        XCTAssertEqual(config.vision.activation, .gelu)
    }

    func testAmbiguousSizeIsRefused() throws {
        var shapes = try canonicalShapes("clip_vit_b32_openai_to_hf.json")
        // A B/32 with one extra vision layer matches no released model.
        shapes["vision_model.encoder.layers.12.mlp.fc1.weight"] = [3072, 768]
        XCTAssertThrowsError(try CLIPArchitecture.infer(shapes)) { error in
            XCTAssertTrue("\(error)".contains("13 layers"), "\(error)")
        }
    }

    func testRealModelsBuildAtFullSize() throws {
        // The inferred configuration must accept every tensor of the manifest (names and shapes).
        for manifest in ["clip_vit_b32_openai_to_hf.json", "clip_vit_h14_openclip_to_hf.json"] {
            let shapes = try canonicalShapes(manifest)
            let (config, _) = try CLIPArchitecture.infer(shapes)
            let source = ShapeOnlySource(shapes)
            _ = try CLIPModel(source, configuration: config)
            XCTAssertEqual(source.requested, Set(shapes.keys), manifest)
        }
    }
}

/// Hands out tiny placeholder parameters while checking names and shapes against a manifest.
final class ShapeOnlySource: ParameterSource {
    let shapes: [String: [Int]]
    var requested: Set<String> = []
    let registry = ParameterRegistry()
    init(_ shapes: [String: [Int]]) { self.shapes = shapes }
    func value(_ name: String, shape: [Int], role: ParameterRole) throws -> (value: Tensor, storedShape: [Int]) {
        guard let expected = shapes[name] else { throw ModelError.missingParameter(name: name, expectedShape: shape) }
        guard expected == shape else { throw ModelError.shapeMismatch(name: name, expected: shape, found: expected) }
        requested.insert(name)
        return (Tensor(zeros: [1]), expected)
    }
}
