import Foundation
import XCTest
@testable import Checkpoints
import Layouts
import Models
import Tensors
import WeightsIO

/// SD parity against bundles that diffusers / transformers / open_clip produced from the tiny fixture
/// models (tools/make_sd_fixtures.py), in every layout each model is stored in: diffusers pipeline
/// folders, component folders, single-file LDM .ckpt/.safetensors (with and without EMA extraction).
final class StableDiffusionCheckpointTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static func fixture(_ path: String) -> String { root.appendingPathComponent("fixtures/sd/\(path)").path }

    /// The issue's bar: relative error (max-abs / max|reference|) ≤ 1e-4.
    let tolerance = Tolerance(absolute: 0, relative: 1e-4)

    @discardableResult
    func assertVerifies(_ model: String, _ bundle: String, config: String? = nil, extractEMA: Bool = false, outputs: [String],
                        file: StaticString = #filePath, line: UInt = #line) throws -> ModelVerifier.Report {
        let options = ModelVerifier.Options(configuration: config.map(Self.fixture), extractEMA: extractEMA, tolerance: tolerance)
        let report = try ModelVerifier.verify(model: Self.fixture(model), bundlePath: Self.fixture(bundle), options: options)
        XCTAssertEqual(report.comparisons.map(\.name), outputs, file: file, line: line)
        for c in report.comparisons {
            XCTAssertTrue(c.passed, "\(model) \(c.name): max-abs \(c.maxAbsoluteError), relative \(c.relativeError)", file: file, line: line)
            XCTAssertLessThanOrEqual(c.relativeError, 1e-4, file: file, line: line)
        }
        return report
    }

    // MARK: UNet

    func testSD1UNetInEveryLayout() throws {
        try assertVerifies("sd1_diffusers", "unet_sd1.reference.safetensors", outputs: ["sample"])
        try assertVerifies("sd1_diffusers/unet", "unet_sd1.reference.safetensors", outputs: ["sample"])
        try assertVerifies("sd1_tiny.safetensors", "unet_sd1.reference.safetensors", config: "sd1_diffusers", outputs: ["sample"])
        try assertVerifies("sd1_tiny.ckpt", "unet_sd1.reference.safetensors", config: "sd1_diffusers", outputs: ["sample"])
    }

    func testSD1EMAExtraction() throws {
        let ema = try assertVerifies("sd1_tiny.ckpt", "unet_sd1_ema.reference.safetensors", config: "sd1_diffusers",
                                     extractEMA: true, outputs: ["sample"])
        XCTAssertTrue(ema.notes.contains { $0.contains("model_ema") })
        // Without extraction the same file gives the non-EMA UNet, which must not match the EMA outputs.
        let plain = try ModelVerifier.verify(model: Self.fixture("sd1_tiny.ckpt"), bundlePath: Self.fixture("unet_sd1_ema.reference.safetensors"),
                                             configuration: Self.fixture("sd1_diffusers"), tolerance: tolerance)
        XCTAssertFalse(plain.passed)
        // The flat .safetensors has no model_ema.* copy: asking for it is a clear error.
        XCTAssertThrowsError(try StableDiffusionLoader.loadUNet(Self.fixture("sd1_tiny.safetensors"), configuration: Self.fixture("sd1_diffusers"), extractEMA: true)) {
            XCTAssertTrue("\($0)".contains("model_ema"), "\($0)")
        }
    }

    func testSD2UNetInEveryLayout() throws {
        try assertVerifies("sd2_diffusers", "unet_sd2.reference.safetensors", outputs: ["sample"])
        try assertVerifies("sd2_tiny.safetensors", "unet_sd2.reference.safetensors", config: "sd2_diffusers", outputs: ["sample"])
    }

    // MARK: VAE

    func testVAEEncoderAndDecoderInEveryLayout() throws {
        for model in ["sd1_diffusers", "sd2_diffusers/vae", "sd1_tiny.safetensors", "sd1_tiny.ckpt", "sd2_tiny.safetensors"] {
            let config = model.hasSuffix("safetensors") || model.hasSuffix("ckpt") ? "sd1_diffusers" : nil
            try assertVerifies(model, "vae_encoder.reference.safetensors", config: config, outputs: ["latent_mean"])
            try assertVerifies(model, "vae_decoder.reference.safetensors", config: config, outputs: ["sample"])
        }
    }

    func testFP16VariantLoadsAndStaysClose() throws {
        let loaded = try StableDiffusionLoader.loadVAE(Self.fixture("sd1_diffusers"), parts: .decoder, variant: "fp16")
        let bundle = try ReferenceBundle(path: Self.fixture("vae_decoder.reference.safetensors"))
        let output = try withNoGrad { try loaded.model.decode(bundle.floatInput("latent")) }
        // Weights rounded to f16 (11-bit mantissa) move the output by far more than 1e-4 but well under 1e-2.
        let comparison = Tolerance(absolute: 0, relative: 1e-2).compare(name: "sample", computed: output, expected: try bundle.expected("sample"))
        XCTAssertTrue(comparison.passed, "fp16 variant: relative \(comparison.relativeError)")
        XCTAssertGreaterThan(comparison.relativeError, 1e-7, "the fp16 file was not the one read")
    }

    // MARK: Text encoders

    func testTextEncodersInEveryLayout() throws {
        for model in ["sd1_diffusers", "sd1_diffusers/text_encoder", "sd1_tiny.safetensors", "sd1_tiny.ckpt"] {
            let config = model.contains("tiny") ? "sd1_diffusers" : nil
            try assertVerifies(model, "text_sd1.reference.safetensors", config: config, outputs: ["last_hidden_state"])
        }
        // SD2: the sharded 2-layer diffusers text encoder and the 3-block OpenCLIP tower of the single file.
        for model in ["sd2_diffusers", "sd2_diffusers/text_encoder", "sd2_tiny.safetensors"] {
            let config = model.contains("tiny") ? "sd2_diffusers" : nil
            try assertVerifies(model, "text_sd2.reference.safetensors", config: config, outputs: ["last_hidden_state"])
        }
    }

    // MARK: Detection and errors

    func testDetectsLayoutVersionAndComponents() throws {
        let sd1 = try StableDiffusionSource(path: Self.fixture("sd1_tiny.ckpt"))
        XCTAssertEqual(sd1.storage, .ldmSingleFile(path: Self.fixture("sd1_tiny.ckpt")))
        XCTAssertEqual(sd1.version, .sd1)
        XCTAssertTrue(sd1.hasEMA)
        XCTAssertEqual(sd1.components, [.unet, .vae, .textEncoder])
        let sd2 = try StableDiffusionSource(path: Self.fixture("sd2_tiny.safetensors"))
        XCTAssertEqual(sd2.version, .sd2)
        XCTAssertFalse(sd2.hasEMA)
        let folder = try StableDiffusionSource(path: Self.fixture("sd2_diffusers"))
        XCTAssertEqual(folder.components, [.unet, .vae, .textEncoder])
        XCTAssertEqual(folder.version, .sd2)
        XCTAssertEqual(try StableDiffusionSource(path: Self.fixture("sd1_diffusers")).version, .sd1)
        // Totals in diffusers terms, from shapes alone; the LDM file and the diffusers folder agree.
        let fromFile = try sd2.componentSummaries(), fromFolder = try folder.componentSummaries()
        XCTAssertEqual(fromFile.map(\.parameters), fromFolder.map(\.parameters))
        XCTAssertEqual(fromFile.map(\.tensors), fromFolder.map(\.tensors))
        XCTAssertEqual(fromFile.map(\.parameters), [117_100, 62_687, 57_984])
        XCTAssertEqual(try StableDiffusionSource(path: Self.fixture("sd1_diffusers/vae")).components, [.vae])
        XCTAssertEqual(StableDiffusionSource.emaKey("model.diffusion_model.input_blocks.0.0.weight"), "model_ema.diffusion_modelinput_blocks00weight")
    }

    func testNonStandardSingleFileWithoutConfigAsksForOne() throws {
        XCTAssertThrowsError(try StableDiffusionLoader.loadUNet(Self.fixture("sd1_tiny.safetensors"))) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("--config") && text.contains("conv_in.weight"), text)
        }
    }

    func testWrongConfigurationIsATypedError() throws {
        // The SD2 UNet config (linear projections, 32-wide context) does not fit the SD1 weights.
        XCTAssertThrowsError(try StableDiffusionLoader.loadUNet(Self.fixture("sd1_tiny.safetensors"), configuration: Self.fixture("sd2_diffusers"))) { error in
            guard let error = error as? CheckpointError else { return XCTFail("\(error)") }
            XCTAssertTrue(error.message.contains("attn") || error.message.contains("proj_in"), error.message)
        }
        // A config.json that is not JSON names the file.
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("sd-bad-config-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("unet"), withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        try Data("{\"block_out_channels\": \"wide\"}".utf8).write(to: folder.appendingPathComponent("unet/config.json"))
        XCTAssertThrowsError(try StableDiffusionLoader.loadUNet(Self.fixture("sd1_tiny.safetensors"), configuration: folder.path)) { error in
            XCTAssertTrue("\(error)".contains("block_out_channels"), "\(error)")
        }
    }

    func testMissingComponentAndUnknownKeys() throws {
        XCTAssertThrowsError(try StableDiffusionLoader.loadUNet(Self.fixture("sd1_diffusers/vae"))) { error in
            XCTAssertTrue("\(error)".contains("holds no unet"), "\(error)")
        }
        // An LDM file with a stray UNet tensor: the rules do not know it, and the loader says which.
        let source = try WeightsReader.open(Self.fixture("sd1_tiny.safetensors"))
        var tensors = try source.orderedRecords.filter { $0.name.hasPrefix("model.diffusion_model.") }.map { try SafetensorsWriter.Tensor(record: $0) }
        tensors.append(SafetensorsWriter.Tensor(name: "model.diffusion_model.mystery_block.weight", shape: [2], floats: [1, 2]))
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("sd-unknown-\(UUID().uuidString).safetensors").path
        try SafetensorsWriter.write(tensors, to: path)
        defer { try? FileManager.default.removeItem(atPath: path) }
        XCTAssertThrowsError(try StableDiffusionLoader.loadUNet(path, configuration: Self.fixture("sd1_diffusers"))) { error in
            XCTAssertTrue("\(error)".contains("mystery_block"), "\(error)")
        }
    }
}

/// `convert --layout diffusers`: the written folder loads back and reproduces every fixture bundle
/// (tools/interop_sd_convert.py checks the same folders with diffusers itself).
final class StableDiffusionConvertTests: XCTestCase {
    static func fixture(_ path: String) -> String { StableDiffusionCheckpointTests.fixture(path) }

    func temporaryFolder() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("sd-convert-\(UUID().uuidString)").path
    }

    func assertFolderVerifies(_ folder: String, unet: String, text: String, file: StaticString = #filePath, line: UInt = #line) throws {
        for bundle in [unet, text, "vae_encoder.reference.safetensors", "vae_decoder.reference.safetensors"] {
            let report = try ModelVerifier.verify(model: folder, bundlePath: Self.fixture(bundle), tolerance: Tolerance(absolute: 0, relative: 1e-4))
            XCTAssertTrue(report.passed, "\(bundle): \(report.comparisons.map { "\($0.name) \($0.relativeError)" })", file: file, line: line)
        }
    }

    func testSD1CheckpointBecomesALoadableDiffusersFolder() throws {
        let out = temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: out) }
        let summary = try DiffusersFolderWriter.convert(Self.fixture("sd1_tiny.ckpt"), to: out, configuration: Self.fixture("sd1_diffusers"))
        XCTAssertEqual(summary.version, .sd1)
        XCTAssertEqual(summary.components.map(\.component), [.unet, .vae, .textEncoder])
        // The diffusers fixture folder holds the same components: equal tensor counts.
        for (component, tensors, _) in summary.components {
            let reference = try StableDiffusionSource(path: Self.fixture("sd1_diffusers")).canonicalTensors(component)
            XCTAssertEqual(tensors, reference.count, component.rawValue)
        }
        // 12 schedule buffers, 2 EMA scalars, 496 EMA weights and the position-ids buffer are left out.
        XCTAssertEqual(summary.droppedCount, 12 + 2 + 496 + 1)
        for name in ["model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors", "vae/config.json",
                     "text_encoder/model.safetensors", "scheduler/scheduler_config.json"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/" + name), name)
        }
        try assertFolderVerifies(out, unet: "unet_sd1.reference.safetensors", text: "text_sd1.reference.safetensors")
        // A second conversion into the now non-empty folder is refused and leaves it intact.
        XCTAssertThrowsError(try DiffusersFolderWriter.convert(Self.fixture("sd1_tiny.ckpt"), to: out, configuration: Self.fixture("sd1_diffusers")))
        XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/unet/config.json"))
    }

    func testSD1EMAAndSD2Conversions() throws {
        let ema = temporaryFolder(), sd2 = temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: ema); try? FileManager.default.removeItem(atPath: sd2) }
        _ = try DiffusersFolderWriter.convert(Self.fixture("sd1_tiny.ckpt"), to: ema, configuration: Self.fixture("sd1_diffusers"), extractEMA: true)
        let report = try ModelVerifier.verify(model: ema, bundlePath: Self.fixture("unet_sd1_ema.reference.safetensors"),
                                              tolerance: Tolerance(absolute: 0, relative: 1e-4))
        XCTAssertTrue(report.passed, "\(report.comparisons.map(\.relativeError))")
        let summary = try DiffusersFolderWriter.convert(Self.fixture("sd2_tiny.safetensors"), to: sd2, configuration: Self.fixture("sd2_diffusers"))
        XCTAssertEqual(summary.version, .sd2)
        try assertFolderVerifies(sd2, unet: "unet_sd2.reference.safetensors", text: "text_sd2.reference.safetensors")
    }

    static func json(_ path: String) throws -> [String: Any] {
        let object = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path)))
        return try XCTUnwrap(object as? [String: Any], path)
    }

    static func bytes(_ path: String) throws -> [UInt8] { Array(try Data(contentsOf: URL(fileURLWithPath: path))) }

    static func contents(_ files: [ExportedFile]) -> [String: [UInt8]] {
        files.reduce(into: [:]) { result, file in
            if case .bytes(let bytes) = file.content { result[file.path] = bytes }
        }
    }

    /// A configuration folder with the sd1 fixture's component configs and no scheduler.
    func configurationWithoutScheduler() throws -> String {
        let folder = temporaryFolder()
        addTeardownBlock { try? FileManager.default.removeItem(atPath: folder) }
        for component in ["unet", "vae", "text_encoder"] {
            try FileManager.default.createDirectory(atPath: folder + "/" + component, withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: Self.fixture("sd1_diffusers/\(component)/config.json"), toPath: folder + "/\(component)/config.json")
        }
        return folder
    }

    func testFolderIsACompletePipeline() throws {
        let out = temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: out) }
        _ = try DiffusersFolderWriter.convert(Self.fixture("sd1_tiny.ckpt"), to: out, configuration: Self.fixture("sd1_diffusers"))
        let index = try Self.json(out + "/model_index.json")
        XCTAssertEqual(index["_class_name"] as? String, "StableDiffusionPipeline")
        XCTAssertEqual(index["_diffusers_version"] as? String, "0.42.1")
        XCTAssertEqual(index["requires_safety_checker"] as? Bool, false)
        let expected: [String: [String]] = [
            "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"],
            "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "CLIPTokenizer"],
            "scheduler": ["diffusers", "PNDMScheduler"], "feature_extractor": ["transformers", "CLIPImageProcessor"],
        ]
        for (component, pair) in expected {
            XCTAssertEqual(index[component] as? [String], pair, component)
            var isDirectory: ObjCBool = false
            XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/" + component, isDirectory: &isDirectory) && isDirectory.boolValue, component)
        }
        for absent in ["safety_checker", "image_encoder"] {
            XCTAssertEqual((index[absent] as? [Any])?.map { $0 is NSNull }, [true, true], absent)
        }
        // Every non-null component of model_index.json and nothing else: diffusers loads exactly these.
        let folders = try FileManager.default.contentsOfDirectory(atPath: out).filter { !$0.hasSuffix(".json") }
        XCTAssertEqual(Set(folders), Set(expected.keys))

        // The tokenizer has the text encoder's 1000 ids: 512 byte symbols, the first 486 merges, SOT 998, EOT 999.
        let vocabulary = try XCTUnwrap(try Self.json(out + "/tokenizer/vocab.json") as? [String: Int])
        XCTAssertEqual(vocabulary.count, 1000)
        XCTAssertEqual(vocabulary["<|startoftext|>"], 998)
        XCTAssertEqual(vocabulary["<|endoftext|>"], 999)
        XCTAssertEqual(Set(vocabulary.values), Set(0..<1000))
        let config = try Self.json(out + "/tokenizer/tokenizer_config.json")
        XCTAssertEqual(config["pad_token"] as? String, "<|endoftext|>")
        XCTAssertEqual(config["model_max_length"] as? Int, 16)
        XCTAssertEqual(config["tokenizer_class"] as? String, "CLIPTokenizer")
        // …and is the prefix of what `export --layout hf` writes from the full vocabulary.
        let exported = temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: exported) }
        try CLIPExporter.export(modelAt: CLIPExportTests.fixture("hf"), to: exported, options: .init(layout: .huggingFace))
        let merges = String(decoding: try Self.bytes(out + "/tokenizer/merges.txt"), as: UTF8.self).split(separator: "\n")
        let fullMerges = String(decoding: try Self.bytes(exported + "/merges.txt"), as: UTF8.self).split(separator: "\n")
        XCTAssertEqual(merges.count, 1 + 486)
        XCTAssertEqual(Array(fullMerges.prefix(487)), merges)
        let full = try XCTUnwrap(try Self.json(exported + "/vocab.json") as? [String: Int])
        XCTAssertEqual(vocabulary.filter { $0.value < 998 }, full.filter { $0.value < 998 })

        let processor = try Self.json(out + "/feature_extractor/preprocessor_config.json")
        XCTAssertEqual(processor["image_processor_type"] as? String, "CLIPImageProcessor")
        XCTAssertEqual(processor["crop_size"] as? [String: Int], ["height": 224, "width": 224])
        XCTAssertEqual(processor["size"] as? [String: Int], ["shortest_edge": 224])
        // The configuration folder's scheduler is copied (sd1: PNDM).
        XCTAssertEqual(NSDictionary(dictionary: try Self.json(out + "/scheduler/scheduler_config.json")),
                       NSDictionary(dictionary: try Self.json(Self.fixture("sd1_diffusers/scheduler/scheduler_config.json"))))
    }

    func testFullSizeTokenizerEqualsTheExportedOne() throws {
        let exported = temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: exported) }
        try CLIPExporter.export(modelAt: CLIPExportTests.fixture("hf"), to: exported, options: .init(layout: .huggingFace))
        let text = CLIPTextConfiguration(vocabularySize: 49408, contextLength: 16, width: 24, layers: 1, heads: 4)
        let sd1 = Self.contents(try DiffusersPipelineFiles.tokenizer(text, version: .sd1, file: "test"))
        let sd2 = Self.contents(try DiffusersPipelineFiles.tokenizer(text, version: .sd2, file: "test"))
        for name in ["vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json"] {
            let reference = try Self.bytes(exported + "/" + name)
            XCTAssertEqual(sd1["tokenizer/" + name], reference, name)
            if ["vocab.json", "merges.txt"].contains(name) { XCTAssertEqual(sd2["tokenizer/" + name], reference, name) }
        }
        // SD2's OpenCLIP text tower pads with "!" (id 0), as stabilityai/stable-diffusion-2's tokenizer.
        for name in ["tokenizer_config.json", "special_tokens_map.json"] {
            let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(sd2["tokenizer/" + name] ?? [])) as? [String: Any])
            XCTAssertEqual(object["pad_token"] as? String, "!", name)
            XCTAssertEqual(object["eos_token"] as? String, "<|endoftext|>", name)
        }
        let tiny = CLIPTextConfiguration(vocabularySize: 300, contextLength: 16, width: 24, layers: 1, heads: 4)
        XCTAssertThrowsError(try DiffusersPipelineFiles.tokenizer(tiny, version: .sd1, file: "x.ckpt")) {
            XCTAssertTrue("\($0)".contains("x.ckpt") && "\($0)".contains("300 tokens"), "\($0)")
        }
    }

    func testSchedulerFromTheCheckpointAndPredictionType() throws {
        let configuration = try configurationWithoutScheduler()
        let out = temporaryFolder(), velocity = temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: out); try? FileManager.default.removeItem(atPath: velocity) }
        let summary = try DiffusersFolderWriter.convert(Self.fixture("sd1_tiny.safetensors"), to: out, configuration: configuration)
        XCTAssertEqual(summary.scheduler, "PNDMScheduler")
        let scheduler = try Self.json(out + "/scheduler/scheduler_config.json")
        // The fixture's `betas` buffer is LDM's float64 scaled-linear schedule stored as float32.
        XCTAssertEqual(scheduler["_class_name"] as? String, "PNDMScheduler")
        XCTAssertEqual(scheduler["beta_start"] as? Double, 0.00085)
        XCTAssertEqual(scheduler["beta_end"] as? Double, 0.012)
        XCTAssertEqual(scheduler["beta_schedule"] as? String, "scaled_linear")
        XCTAssertEqual(scheduler["num_train_timesteps"] as? Int, 1000)
        XCTAssertEqual(scheduler["steps_offset"] as? Int, 1)
        XCTAssertEqual(scheduler["skip_prk_steps"] as? Bool, true)
        XCTAssertEqual(scheduler["set_alpha_to_one"] as? Bool, false)
        XCTAssertEqual(scheduler["prediction_type"] as? String, "epsilon")
        XCTAssertTrue(scheduler["trained_betas"] is NSNull)
        _ = try DiffusersFolderWriter.convert(Self.fixture("sd2_tiny.safetensors"), to: velocity, configuration: Self.fixture("sd2_diffusers"),
                                              prediction: .velocity)
        // sd2's configuration folder has a DDIMScheduler: kept, and named so in model_index.json.
        let ddim = try Self.json(velocity + "/scheduler/scheduler_config.json")
        XCTAssertEqual(ddim["_class_name"] as? String, "DDIMScheduler")
        XCTAssertEqual(ddim["prediction_type"] as? String, "v_prediction")
        XCTAssertEqual(try Self.json(velocity + "/model_index.json")["scheduler"] as? [String], ["diffusers", "DDIMScheduler"])
        XCTAssertEqual(try Self.json(velocity + "/tokenizer/special_tokens_map.json")["pad_token"] as? String, "!")
    }

    /// Every tensor of `folder`'s component files, as Float32 values with their dtype.
    func weights(_ folder: String) throws -> [String: (dtype: DType, values: [Float])] {
        var result: [String: (dtype: DType, values: [Float])] = [:]
        for file in ["unet/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors"] {
            let store = try WeightsReader.open(folder + "/" + file)
            for record in store.orderedRecords {
                result[file + ":" + record.name] = (dtype: record.dtype, values: try DTypeConversion.floats(of: record))
            }
        }
        return result
    }

    func testDTypeAppliesToEveryWeight() throws {
        let f32 = temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: f32) }
        let written = try DiffusersFolderWriter.convert(Self.fixture("sd1_tiny.ckpt"), to: f32, configuration: Self.fixture("sd1_diffusers"))
        let reference = try weights(f32)
        XCTAssertEqual(reference.count, written.components.reduce(0) { $0 + $1.tensors })
        XCTAssertTrue(reference.values.allSatisfy { $0.dtype == .f32 })
        for dtype in [DType.f16, .bf16] {
            let out = temporaryFolder()
            defer { try? FileManager.default.removeItem(atPath: out) }
            let summary = try DiffusersFolderWriter.convert(Self.fixture("sd1_tiny.ckpt"), to: out, configuration: Self.fixture("sd1_diffusers"), dtype: dtype)
            XCTAssertEqual(summary.dtypes, [dtype: reference.count])
            let cast = try weights(out)
            XCTAssertEqual(Set(cast.keys), Set(reference.keys))
            for (name, (stored, values)) in cast {
                XCTAssertEqual(stored, dtype, name)
                // Exactly the float32 weights rounded to the dtype (round to nearest even, as torch's .to()).
                let original = try XCTUnwrap(reference[name]).values
                var bytes = [UInt8](repeating: 0, count: original.count * dtype.byteSize)
                try original.withUnsafeBufferPointer { source in
                    try bytes.withUnsafeMutableBytes { try DTypeConversion.fromFloat32(source, to: dtype, into: $0) }
                }
                var rounded = [Float](repeating: 0, count: original.count)
                try bytes.withUnsafeBytes { raw in
                    try rounded.withUnsafeMutableBufferPointer { try DTypeConversion.toFloat32(raw, dtype: dtype, into: $0) }
                }
                XCTAssertEqual(values, rounded, name)
            }
            // Loaded in float32 unless torch_dtype says otherwise, as diffusers loads the UNet and VAE.
            let text = try Self.json(out + "/text_encoder/config.json")
            XCTAssertEqual(text["torch_dtype"] as? String, "float32")
            XCTAssertEqual(text["initializer_factor"] as? Double, 1.0)
            XCTAssertTrue(String(decoding: try Self.bytes(out + "/text_encoder/config.json"), as: UTF8.self).contains("\"initializer_factor\":1.0"),
                          "floats stay floats (transformers 5 refuses an int here)")
        }
    }

    func testKeepTakesEachStoredDTypeAndAnEmptyFolderIsFilled() throws {
        // An f16 single file (the flat `convert --dtype f16` of the fixture): keep writes f16, f32 casts back.
        let scratch = temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        let half = scratch + "/sd1_f16.safetensors"
        _ = try WeightsConverter.convert(input: Self.fixture("sd1_tiny.safetensors"), output: half, dtype: .f16)
        let kept = scratch + "/kept", widened = scratch + "/widened"
        try FileManager.default.createDirectory(atPath: kept, withIntermediateDirectories: true)   // empty: taken over
        let keep = try DiffusersFolderWriter.convert(half, to: kept, configuration: Self.fixture("sd1_diffusers"))
        XCTAssertEqual(Array(keep.dtypes.keys), [.f16])
        let wide = try DiffusersFolderWriter.convert(half, to: widened, configuration: Self.fixture("sd1_diffusers"), dtype: .f32)
        XCTAssertEqual(Array(wide.dtypes.keys), [.f32])
        let halves = try weights(kept), singles = try weights(widened)
        XCTAssertEqual(halves.count, singles.count)
        for (name, value) in halves { XCTAssertEqual(singles[name]?.values, value.values, name) }
        // A folder holding anything is never replaced, and nothing of it is touched.
        try FileManager.default.createDirectory(atPath: scratch + "/busy", withIntermediateDirectories: true)
        try Data("mine".utf8).write(to: URL(fileURLWithPath: scratch + "/busy/notes.txt"))
        XCTAssertThrowsError(try DiffusersFolderWriter.convert(half, to: scratch + "/busy", configuration: Self.fixture("sd1_diffusers"))) {
            XCTAssertTrue("\($0)".contains("not an empty folder"), "\($0)")
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: scratch + "/busy"), ["notes.txt"])
        XCTAssertThrowsError(try DiffusersFolderWriter.convert(half, to: scratch + "/x", configuration: Self.fixture("sd1_diffusers"), dtype: .i32))
    }

    func testRefusesFoldersAndNonStandardSizesWithoutConfig() throws {
        let out = temporaryFolder()
        XCTAssertThrowsError(try DiffusersFolderWriter.convert(Self.fixture("sd1_diffusers"), to: out)) {
            XCTAssertTrue("\($0)".contains("single-file"), "\($0)")
        }
        XCTAssertThrowsError(try DiffusersFolderWriter.convert(Self.fixture("sd1_tiny.safetensors"), to: out)) {
            XCTAssertTrue("\($0)".contains("--config"), "\($0)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: out), "a failed conversion left a folder behind")
        let parent = URL(fileURLWithPath: out).deletingLastPathComponent().path
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: parent).filter { $0.contains(URL(fileURLWithPath: out).lastPathComponent) }
        XCTAssertEqual(leftovers, [])
    }
}
