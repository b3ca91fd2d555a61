import Foundation
import XCTest
@testable import Checkpoints
@testable import Layouts
import Models
import Tensors
import WeightsIO

/// `CLIPExporter`: every fixture CLIP exported to both layouts loads back with `CLIPLoader.load` and
/// embeds the fixture bundle's inputs bit for bit as the original does; provenance, the fine-tune's
/// latent map, dtype casts, refusing an existing folder and leaving nothing behind on failure.
final class CLIPExportTests: XCTestCase {
    static func fixture(_ path: String) -> String { CLIPCheckpointTests.fixture(path) }

    /// Fixture model → its reference bundle.
    static let models: [(model: String, bundle: String)] = [
        ("hf", "hf.reference.safetensors"), ("hf_gelu_fp16mix", "hf_gelu_fp16mix.reference.safetensors"),
        ("openclip_quickgelu", "openclip_quickgelu.reference.safetensors"),
        ("openclip_gelu", "openclip_gelu.reference.safetensors"), ("openai_jit/ViT-tiny.pt", "openai_jit.reference.safetensors"),
    ]

    func temporaryFolder() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("sdsclip-export-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    func embeddings(_ model: CLIPModel, _ bundle: ReferenceBundle) throws -> (image: [Float], text: [Float]) {
        try withNoGrad {
            (try model.encodeImage(bundle.floatInput("pixel_values")).scalars, try model.encodeText(bundle.idRows("input_ids")).scalars)
        }
    }

    func testEveryFixtureRoundTripsThroughBothLayouts() throws {
        let folder = try temporaryFolder()
        for (model, bundlePath) in Self.models {
            let original = try CLIPLoader.load(Self.fixture(model))
            let bundle = try ReferenceBundle(path: Self.fixture(bundlePath))
            let expected = try embeddings(original.model, bundle)
            for layout in CLIPExportLayout.allCases {
                let out = folder.appendingPathComponent("\(model.replacingOccurrences(of: "/", with: "_"))-\(layout.rawValue)").path
                let summary = try CLIPExporter.export(modelAt: Self.fixture(model), to: out, options: .init(layout: layout))
                XCTAssertEqual(summary.parameterCount, original.model.registry.elementCount(), "\(model) \(layout)")
                let back = try CLIPLoader.load(out)
                XCTAssertEqual(back.model.configuration, original.model.configuration, "\(model) \(layout): configuration")
                XCTAssertEqual(back.layout, layout == .huggingFace ? .huggingFace : .openCLIP)
                let got = try embeddings(back.model, bundle)
                XCTAssertEqual(got.image, expected.image, "\(model) \(layout): image embeddings")
                XCTAssertEqual(got.text, expected.text, "\(model) \(layout): text embeddings")
            }
        }
    }

    func testFilesOfEachLayout() throws {
        let folder = try temporaryFolder()
        let hf = folder.appendingPathComponent("hf").path
        let openCLIP = folder.appendingPathComponent("openclip").path
        try CLIPExporter.export(modelAt: Self.fixture("openai_jit/ViT-tiny.pt"), to: hf, options: .init(layout: .huggingFace))
        try CLIPExporter.export(modelAt: Self.fixture("openai_jit/ViT-tiny.pt"), to: openCLIP, options: .init(layout: .openCLIP))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: hf).sorted(),
                       ["config.json", "merges.txt", "model.safetensors", "preprocessor_config.json", "special_tokens_map.json",
                        "tokenizer_config.json", "vocab.json"])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: openCLIP).sorted(),
                       ["open_clip_config.json", "open_clip_model.safetensors"])

        // OpenCLIP names and shapes as the source TorchScript archive has them (its derived buffers aside).
        let source = try WeightsReader.open(Self.fixture("openai_jit/ViT-tiny.pt"))
        let exported = try WeightsReader.open(openCLIP + "/open_clip_model.safetensors")
        let kept = source.orderedRecords.filter { CLIPLayout.derivedBufferReason($0.name) == nil }
        XCTAssertEqual(Dictionary(uniqueKeysWithValues: exported.orderedRecords.map { ($0.name, $0.shape) }),
                       Dictionary(uniqueKeysWithValues: kept.map { ($0.name, $0.shape) }))
        XCTAssertEqual(exported["visual.transformer.resblocks.0.attn.in_proj_weight"]?.shape, [96, 32])
        XCTAssertEqual(exported["visual.proj"]?.shape, [32, 16], "right-multiplied [W, E] as OpenAI stores it")

        let metadata = try WeightsReader.open(hf + "/model.safetensors").metadata
        XCTAssertEqual(metadata["sdsclip_source_sha256"], try SHA256.fileDigest(Self.fixture("openai_jit/ViT-tiny.pt")))
        XCTAssertEqual(metadata["sdsclip_source_file"], URL(fileURLWithPath: Self.fixture("openai_jit/ViT-tiny.pt")).standardizedFileURL.path)
        XCTAssertEqual(metadata["sdsclip_source_layout"], "torchscript-openai")
        XCTAssertNil(metadata["sdsclip_step"], "not a fine-tune")

        let vocabulary = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: hf + "/vocab.json"))) as? [String: Int]
        XCTAssertEqual(vocabulary?.count, 49408)
        XCTAssertEqual(vocabulary?["<|endoftext|>"], 49407)
        XCTAssertEqual(vocabulary?["photo</w>"], 1125)
        let merges = try String(contentsOfFile: hf + "/merges.txt", encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(merges.count, 1 + BPEVocabulary.mergeCount)
        XCTAssertEqual(merges.first, "#version: 0.2")
    }

    func testTransformersConfigPoolsAsTheModelDoes() throws {
        // The real vocabulary: argmax is the first end of text, written as transformers' eos 49407.
        let vision = CLIPVisionConfiguration(imageSize: 32, patchSize: 8, width: 32, layers: 1, heads: 2)
        var real = CLIPConfiguration(text: CLIPTextConfiguration(width: 8, layers: 1, heads: 2, pooling: .argmax), vision: vision, embedDimension: 4)
        XCTAssertEqual(try roundTrip(huggingFace: real).text.pooling, .firstToken(49407))
        let text = CLIPConfigurationFile.huggingFaceObject(real)["text_config"] as? [String: Any]
        XCTAssertEqual(text?["eos_token_id"] as? Int, 49407)
        XCTAssertEqual(text?["bos_token_id"] as? Int, 49406)
        // Another vocabulary keeps argmax as the legacy eos 2; first-token pooling keeps its id.
        real.text.vocabularySize = 1000
        XCTAssertEqual(try roundTrip(huggingFace: real), real)
        real.text.pooling = .firstToken(999)
        XCTAssertEqual(try roundTrip(huggingFace: real), real)
        // open_clip: argmax is its default, first-token pooling is pool_type "eos"; non-default epsilons travel too.
        real.text.layerNormEpsilon = 1e-6
        real.vision.mlpWidth = 37
        XCTAssertEqual(try roundTrip(openCLIP: real), real)
        real.text.pooling = .argmax
        XCTAssertEqual(try roundTrip(openCLIP: real), real)
        real.vision.activation = .gelu
        XCTAssertThrowsError(try CLIPConfigurationFile.openCLIPModelObject(real, file: "out")) { error in
            XCTAssertTrue("\(error)".contains("one activation for both towers"), "\(error)")
        }
    }

    func testMLPRatioGivesTheWidthBackInOpenCLIPArithmetic() {
        for (width, mlp) in [(1408, 6144), (1664, 8192), (32, 37), (768, 3072), (7, 100), (1280, 5120)] {
            let ratio = CLIPConfigurationFile.mlpRatio(mlp, width: width)
            XCTAssertEqual(Int((Double(width) * ratio).rounded(.down)), mlp, "\(width) × \(ratio)")
        }
    }

    func roundTrip(huggingFace c: CLIPConfiguration) throws -> CLIPConfiguration {
        try readBack(CLIPConfigurationFile.huggingFaceObject(c))
    }

    func roundTrip(openCLIP c: CLIPConfiguration) throws -> CLIPConfiguration {
        try readBack(["model_cfg": try CLIPConfigurationFile.openCLIPModelObject(c, file: "out")])
    }

    func readBack(_ object: [String: Any]) throws -> CLIPConfiguration {
        let file = try temporaryFolder().appendingPathComponent("config.json")
        try JSONSerialization.data(withJSONObject: object).write(to: file)
        return try CLIPConfigurationFile.read(file.path)
    }

    /// A fine-tune's output folder: settings and step in the metadata, h_w copied beside CLIP.
    func testFineTuneOutputCarriesProvenanceAndLatentMap() throws {
        let folder = try temporaryFolder()
        let final = folder.appendingPathComponent("final")
        try FileManager.default.createDirectory(at: final.appendingPathComponent("latent_map"), withIntermediateDirectories: true)
        for file in ["model.safetensors", "config.json"] {
            try FileManager.default.copyItem(atPath: Self.fixture("hf/\(file)"), toPath: final.appendingPathComponent(file).path)
        }
        let training: [String: Any] = ["step": 42, "configuration": ["lambda": 0.5, "clip": "some/clip"], "trained": ["x"]]
        try JSONSerialization.data(withJSONObject: training).write(to: final.appendingPathComponent("training.json"))
        let mapPath = final.appendingPathComponent("latent_map/latent_map.safetensors").path
        try SafetensorsWriter.write([.init(name: "latent_map.weight", shape: [2, 2], floats: [1, 2, 3, 4])], metadata: ["mapper": "pooled"], to: mapPath)

        for layout in CLIPExportLayout.allCases {
            let out = folder.appendingPathComponent("export-\(layout.rawValue)").path
            let summary = try CLIPExporter.export(modelAt: final.path, to: out, options: .init(layout: layout))
            XCTAssertTrue(summary.files.contains("latent_map/latent_map.safetensors"), "\(summary.files)")
            XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: out + "/latent_map/latent_map.safetensors")),
                           try Data(contentsOf: URL(fileURLWithPath: mapPath)), "copied byte for byte")
            let weights = try WeightsReader.open(out + "/" + (layout == .huggingFace ? "model.safetensors" : "open_clip_model.safetensors"))
            XCTAssertEqual(weights.metadata["sdsclip_step"], "42")
            XCTAssertEqual(weights.metadata["sdsclip_training"], #"{"clip":"some/clip","lambda":0.5}"#)
            XCTAssertFalse(weights.names.contains { $0.hasPrefix("latent_map") }, "h_w never inside the CLIP weights")
            XCTAssertNoThrow(try CLIPLoader.load(out), "the folder still has one weight file to pick")
        }
        try Data("{\"step\": 1}".utf8).write(to: final.appendingPathComponent("training.json"))
        let out = folder.appendingPathComponent("broken").path
        XCTAssertThrowsError(try CLIPExporter.export(modelAt: final.path, to: out, options: .init(layout: .huggingFace))) { error in
            XCTAssertTrue("\(error)".contains("training.json"), "\(error)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
    }

    func testDTypeCastAndItsEmbeddings() throws {
        let out = try temporaryFolder().appendingPathComponent("f16").path
        try CLIPExporter.export(modelAt: Self.fixture("hf"), to: out, options: .init(layout: .huggingFace, dtype: .f16))
        let store = try WeightsReader.open(out + "/model.safetensors")
        XCTAssertEqual(Set(store.orderedRecords.map(\.dtype)), [.f16])
        let config = try CLIPConfigurationFile.jsonObject(out + "/config.json")
        XCTAssertEqual(config["dtype"] as? String, "float16")
        let bundle = try ReferenceBundle(path: Self.fixture("hf.reference.safetensors"))
        let image = try withNoGrad { try CLIPLoader.load(out).model.encodeImage(bundle.floatInput("pixel_values")) }
        let comparison = Tolerance(absolute: 0, relative: 1e-2).compare(name: "image_embeds", computed: image, expected: try bundle.expected("image_embeds"))
        XCTAssertTrue(comparison.passed, "relative \(comparison.relativeError)")
    }

    func testExistingOutputIsRefusedUnlessReplacing() throws {
        let folder = try temporaryFolder()
        let out = folder.appendingPathComponent("out")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: false)
        try Data("keep".utf8).write(to: out.appendingPathComponent("mine.txt"))
        XCTAssertThrowsError(try CLIPExporter.export(modelAt: Self.fixture("hf"), to: out.path, options: .init(layout: .huggingFace))) { error in
            XCTAssertTrue("\(error)".contains("--overwrite"), "\(error)")
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: out.path), ["mine.txt"])
        try CLIPExporter.export(modelAt: Self.fixture("hf"), to: out.path, options: .init(layout: .openCLIP, existing: .replace))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: out.path).sorted(), ["open_clip_config.json", "open_clip_model.safetensors"])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path), ["out"], "no temporary folder left")
    }

    func testFailureWhileWritingLeavesNoTemporaryFolderAndKeepsTheOldOne() throws {
        let folder = try temporaryFolder()
        let out = folder.appendingPathComponent("out").path
        let model = try CLIPLoader.load(Self.fixture("hf")).model
        try CLIPExporter.export(model, to: out, options: .init(layout: .openCLIP))
        let before = try Data(contentsOf: URL(fileURLWithPath: out + "/open_clip_model.safetensors"))
        // The weights are written, then an extra file cannot be copied.
        let missing = folder.appendingPathComponent("no-such-file").path
        XCTAssertThrowsError(try CLIPExporter.export(model, to: out, options: .init(layout: .huggingFace, existing: .replace),
                                                     extraFiles: [ExportedFile("latent_map/latent_map.safetensors", .copy(of: missing))])) { error in
            XCTAssertTrue("\(error)".contains("no-such-file"), "\(error)")
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path), ["out"], "no temporary folder left")
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: out + "/open_clip_model.safetensors")), before, "the old export is intact")
    }

    /// Parts written as one stacked tensor, across the writer's 4 MiB blocks and part boundaries, cast or not.
    func testStackedTensorsAcrossWriterBlocks() throws {
        let rows = 700_001
        let parts = (0..<3).map { part in Tensor.uniform(shape: [rows], bound: 1, seed: UInt64(part)) }
        let expected = parts.flatMap(\.scalars)
        let file = try temporaryFolder().appendingPathComponent("stack.safetensors").path
        try SafetensorsWriter.write([try .init(name: "f32", shape: [3, rows], stacking: parts, as: .f32),
                                     try .init(name: "bf16", shape: [3 * rows], stacking: parts, as: .bf16)], to: file)
        let store = try WeightsReader.open(file)
        let f32 = try Tensor(record: try XCTUnwrap(store["f32"])), bf16 = try Tensor(record: try XCTUnwrap(store["bf16"]))
        XCTAssertEqual(f32.shape, [3, rows])
        XCTAssertEqual(f32.scalars, expected)
        XCTAssertEqual(bf16.scalars, expected.map { DTypeConversion.bfloat16ToFloat(DTypeConversion.floatToBFloat16($0)) })
        XCTAssertThrowsError(try SafetensorsWriter.Tensor(name: "x", shape: [2], stacking: parts, as: .f32), "values must fill the shape")
    }

    func testTextTowerAloneIsRefused() throws {
        let out = try temporaryFolder().appendingPathComponent("out").path
        XCTAssertThrowsError(try CLIPExporter.export(modelAt: Self.fixture("hf_text"), to: out, options: .init(layout: .huggingFace))) { error in
            XCTAssertTrue("\(error)".contains("only a text tower"), "\(error)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
    }
}
