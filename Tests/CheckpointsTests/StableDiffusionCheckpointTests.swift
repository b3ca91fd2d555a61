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
