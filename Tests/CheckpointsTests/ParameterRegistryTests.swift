import Foundation
import XCTest
@testable import Checkpoints
import Models
import Tensors
import WeightsIO

/// The parameter registry of loaded models: names, roles and the queries training stands on.
final class ParameterRegistryTests: XCTestCase {
    static let fixtures = CLIPCheckpointTests.root.appendingPathComponent("fixtures")

    /// Every fixture CLIP layout: the registry holds exactly the checkpoint's canonical names, and the
    /// LayerNorm queries return 2 tensors (weight, bias) per LayerNorm: text 2 per layer + final,
    /// vision pre + 2 per layer + post.
    func testLoadedCLIPRegistryMatchesCheckpointAndCountsLayerNorms() throws {
        // (model path, text layers, vision layers)
        let cases: [(String, Int, Int)] = [
            ("clip/hf", 2, 2), ("clip/hf_gelu_fp16mix", 2, 2), ("clip/hf/pytorch_model.bin", 2, 2),
            ("clip/openclip_quickgelu", 2, 2), ("clip/openclip_gelu/open_clip_pytorch_model.bin", 2, 2),
            ("clip/openai_jit/ViT-tiny.pt", 2, 2),
        ]
        for (path, textLayers, visionLayers) in cases {
            let full = Self.fixtures.appendingPathComponent(path).path
            let loaded = try CLIPLoader.load(full)
            let (_, canonical) = try CLIPLoader.canonicalTensors(WeightsReader.open(full), file: full)
            let registry = loaded.model.registry
            XCTAssertEqual(Set(registry.names), Set(canonical.keys), path)
            XCTAssertEqual(registry.names.count, canonical.count, "no name twice: \(path)")
            for entry in registry.entries {
                XCTAssertEqual(entry.storedShape, canonical[entry.name]?.shape, "\(path): \(entry.name)")
            }
            let text = registry.select(roles: ParameterRole.layerNorm, prefix: "text_model")
            let vision = registry.select(roles: ParameterRole.layerNorm, prefix: "vision_model")
            XCTAssertEqual(text.count, 2 * (2 * textLayers + 1), path)
            XCTAssertEqual(vision.count, 2 * (2 * visionLayers + 2), path)
            XCTAssertEqual(registry.select(roles: ParameterRole.layerNorm).count, text.count + vision.count, path)
            XCTAssertTrue(vision.allSatisfy { $0.name.contains("layer_norm") || $0.name.contains("layrnorm") || $0.name.contains("layernorm") }, path)
            XCTAssertEqual(registry.select(roles: [.logitScale]).map(\.name), ["logit_scale"], path)
            XCTAssertTrue(registry.trainable.isEmpty, "loaded frozen: \(path)")
        }
    }

    func testFreezeUnfreezeAndCreatedParameters() throws {
        let loaded = try CLIPLoader.load(Self.fixtures.appendingPathComponent("clip/hf").path)
        let registry = loaded.model.registry
        let norms = registry.select(roles: ParameterRole.layerNorm, prefix: "vision_model")
        registry.unfreeze(norms)
        XCTAssertEqual(registry.trainable.map(\.name), norms.map(\.name))
        let map = try registry.create("latent_map.weight", shape: [4, 16], role: .linearWeight) { Tensor.randn(shape: $0, seed: 7) }
        XCTAssertTrue(map.requiresGrad)
        XCTAssertEqual(registry["latent_map.weight"]?.role, .linearWeight)
        XCTAssertThrowsError(try registry.create("latent_map.weight", shape: [4, 16], role: .linearWeight) { Tensor(zeros: $0) })
        XCTAssertThrowsError(try registry.create("bad", shape: [4], role: .linearBias) { _ in Tensor(zeros: [3]) })
        registry.freezeAll()
        XCTAssertTrue(registry.trainable.isEmpty)
        // Prefix matching is by whole dotted components.
        XCTAssertTrue(ParameterRegistry.name("vision_model.x", isUnder: "vision_model"))
        XCTAssertFalse(ParameterRegistry.name("vision_model_2.x", isUnder: "vision_model"))
    }

    func testStableDiffusionRegistriesAreFrozenAndTyped() throws {
        let unet = try StableDiffusionLoader.loadUNet(Self.fixtures.appendingPathComponent("sd/sd1_diffusers").path).model
        XCTAssertTrue(unet.registry.trainable.isEmpty)
        XCTAssertFalse(unet.registry.select(roles: [.groupNormWeight]).isEmpty)
        XCTAssertEqual(unet.registry.select(roles: [.convWeight], prefix: "conv_in").map(\.name), ["conv_in.weight"])
    }
}
