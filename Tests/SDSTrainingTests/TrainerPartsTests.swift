import Foundation
import XCTest
@testable import Checkpoints
@testable import SDSTraining
import Models
import Tensors

/// The trainer's parts on their own: micro-batching, the schedule, configuration files, checkpoints.
final class TrainerPartsTests: XCTestCase {
    static let root = SDSStepParityTests.root

    /// Splitting the UNet work into micro-batches changes nothing but rounding: the losses and every
    /// gradient of a 3-sample step agree within 1e-5 relative between micro-batches of 1 and of 3.
    func testMicroBatchesGiveTheSameStep() throws {
        let bundle = try ReferenceBundle(path: SDSStepParityTests.bundlePath("sd1_tokens_full"))
        let teacher = try SDSTeacher.load(Self.root.appendingPathComponent("fixtures/sd/sd1_diffusers").path)
        func run(microBatch: Int) throws -> (SDSLosses, [String: Tensor]) {
            let clip = try CLIPLoader.load(Self.root.appendingPathComponent("fixtures/clip/hf").path).model
            let trainable = TrainableSet.layernorm.select(in: clip.registry)
            clip.registry.unfreeze(trainable)
            let map = try LatentMap(kind: .tokens, side: 8, inputWidth: clip.configuration.vision.width, grid: clip.configuration.vision.gridSize,
                                    initialWeight: bundle.floatInput("latent_map.weight"), initialBias: bundle.floatInput("latent_map.bias"))
            let step = SDSStep(clip: clip, latentMap: map, teacher: teacher, lambda: 0.5, gradient: .full, microBatch: microBatch)
            let losses = try step.run(SDSBatch(pixels: bundle.floatInput("pixel_values"), ids: bundle.idRows("input_ids"),
                                               context: teacher.context(bundle.idRows("teacher_input_ids")),
                                               noise: bundle.floatInput("noise"), timesteps: bundle.integers(bundle.input("timesteps"))))
            var grads: [String: Tensor] = [:]
            for entry in trainable + map.registry.entries { grads[entry.name] = entry.parameter.grad }
            return (losses, grads)
        }
        let (oneLosses, one) = try run(microBatch: 1)
        let (allLosses, all) = try run(microBatch: 3)
        XCTAssertEqual(oneLosses.sds, allLosses.sds, accuracy: 1e-6)
        XCTAssertEqual(oneLosses.clip, allLosses.clip)
        XCTAssertEqual(Set(one.keys), Set(all.keys))
        let tolerance = Tolerance(absolute: 1e-8, relative: 1e-5)
        for (name, gradient) in one {
            let comparison = tolerance.compare(name: name, computed: try XCTUnwrap(all[name]), expected: gradient)
            XCTAssertTrue(comparison.passed, "\(name): \(comparison.relativeError)")
        }
    }

    func testWarmupThenCosine() {
        let schedule = LearningRateSchedule(warmupSteps: 4, totalSteps: 12)
        XCTAssertEqual((1...4).map { schedule.factor(step: $0) }, [0.25, 0.5, 0.75, 1])
        XCTAssertEqual(schedule.factor(step: 5), 1, "the first decay step runs at the peak")
        XCTAssertEqual(schedule.factor(step: 9), 0.5, accuracy: 1e-6)
        XCTAssertGreaterThan(schedule.factor(step: 12), 0)
        XCTAssertLessThan(schedule.factor(step: 12), 0.05)
        XCTAssertEqual(LearningRateSchedule(warmupSteps: 50, totalSteps: 10).warmupSteps, 10, "warm-up never exceeds the run")
    }

    func testConfigurationFromYAMLAndJSONWithClearErrors() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("sdsclip-config-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let yaml = folder.appendingPathComponent("run.yaml").path
        try "clip: a\nteacher: b\ndata: c\nout: d\nbatch-size: 16\nlambda: 0.5\nsds-gradient: sds\nlr-clip: 2e-5\nseed: 3\n"
            .write(toFile: yaml, atomically: true, encoding: .utf8)
        var configuration = FinetuneConfiguration()
        try configuration.apply(FinetuneConfiguration.readFile(yaml), origin: yaml)
        XCTAssertEqual(configuration.batchSize, 16)
        XCTAssertEqual(configuration.lambda, 0.5)
        XCTAssertEqual(configuration.sdsGradient, .sds)
        XCTAssertEqual(configuration.lrClip, 2e-5)
        XCTAssertEqual(configuration.seed, 3)
        try configuration.validate()
        // The printed configuration reads back to the same one.
        let json = folder.appendingPathComponent("effective.json").path
        try configuration.json.write(toFile: json, atomically: true, encoding: .utf8)
        var again = FinetuneConfiguration()
        try again.apply(FinetuneConfiguration.readFile(json), origin: json)
        XCTAssertEqual(again, configuration)

        func message(_ values: [String: Any]) -> String {
            var c = FinetuneConfiguration()
            do { try c.apply(values, origin: "test"); try c.validate(); return "" } catch { return error.message }
        }
        XCTAssertTrue(message(["batchsize": 4]).contains("did you mean 'batch-size'"))
        XCTAssertTrue(message(["batch-size": 1]).contains("≥ 2"))
        XCTAssertTrue(message(["mapper": "grid"]).contains("pooled, tokens"))
        XCTAssertTrue(message(["lambda": "x"]).contains("finite number"))
        XCTAssertTrue(message(["clip": "a", "teacher": "b", "data": "c"]).contains("missing setting 'out'"))
        XCTAssertTrue(message(["clip": "a", "teacher": "b", "data": "c", "out": "d", "t-min": 500, "t-max": 100]).contains("t-min"))
    }

    /// Found by tools/fuzz.sh config: `Yams.load` force-unwrapped a non-text mapping key and trapped.
    /// Hostile files now get errors that name the file and line; aliases cannot expand without bound.
    func testHostileConfigurationFilesGetErrorsNotCrashes() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("sdsclip-config-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        func error(_ text: String) -> String {
            let path = folder.appendingPathComponent("bad.yaml").path
            do {
                try text.write(toFile: path, atomically: true, encoding: .utf8)
                _ = try FinetuneConfiguration.readFile(path)
                return "read without error"
            } catch let error as ConfigurationError {
                return error.message
            } catch {
                return "unexpected \(error)"
            }
        }
        let listKey = error("seed: 1\n? [a, b]\n: 2\n")
        XCTAssertTrue(listKey.contains("bad.yaml, line 2") && listKey.contains("must be plain text"), listKey)
        XCTAssertTrue(error("{[1]: 2}").contains("must be plain text"))
        XCTAssertTrue(error("- 1\n- 2\n").contains("a mapping of setting names"))
        XCTAssertTrue(error(String(repeating: "[", count: 70) + String(repeating: "]", count: 70)).contains("mapping"))
        XCTAssertTrue(error("a: " + String(repeating: "[", count: 70) + String(repeating: "]", count: 70)).contains("deeper than 64"))
        // Nine levels of ten aliases each: a billion values if expanded.
        var laughs = "l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n"
        for level in 1...9 {
            laughs += "l\(level): &l\(level) [" + Array(repeating: "*l\(level - 1)", count: 10).joined(separator: ", ") + "]\n"
        }
        let started = Date()
        XCTAssertTrue(error(laughs).contains("more than 1000000 values"))
        XCTAssertLessThan(Date().timeIntervalSince(started), 10)
        // Every configuration crasher the fuzzer found (tools/fuzz.sh config) is now an error.
        let crashers = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("formats/fuzz/config")
        let found = try FileManager.default.contentsOfDirectory(atPath: crashers.path)
        XCTAssertFalse(found.isEmpty)
        for name in found {
            XCTAssertThrowsError(try FinetuneConfiguration.readFile(crashers.appendingPathComponent(name).path), name)
        }
        // Quoted numbers stay text, plain ones are typed, nulls are NSNull.
        let path = folder.appendingPathComponent("types.yaml").path
        try "a: '1'\nb: 1\nc: 1.5\nd: true\ne: null\nf: [1, x]\n".write(toFile: path, atomically: true, encoding: .utf8)
        let values = try FinetuneConfiguration.readFile(path)
        XCTAssertEqual(values["a"] as? String, "1")
        XCTAssertEqual(values["b"] as? Int, 1)
        XCTAssertEqual(values["c"] as? Double, 1.5)
        XCTAssertEqual(values["d"] as? Bool, true)
        XCTAssertTrue(values["e"] is NSNull)
        XCTAssertEqual((values["f"] as? [Any])?.count, 2)
    }

    func testEvaluationSettingsFromFilesAndFlags() throws {
        var configuration = FinetuneConfiguration()
        try configuration.apply(["eval-every": 5, "eval": ["data/test-swaps.jsonl", "winoground:wino"]], origin: "file")
        XCTAssertEqual(configuration.evalEvery, 5)
        XCTAssertEqual(configuration.eval, ["data/test-swaps.jsonl", "winoground:wino"])
        // One benchmark may be a plain string; flags arrive as strings.
        try configuration.apply(["eval": "choice:mc.jsonl", "eval-every": "3"], origin: "command line")
        XCTAssertEqual(configuration.eval, ["choice:mc.jsonl"])
        XCTAssertEqual(configuration.evalEvery, 3)
        XCTAssertEqual(configuration.values["eval"] as? [String], ["choice:mc.jsonl"])
        XCTAssertNil(FinetuneConfiguration().values["eval"], "no benchmarks: not shown")
        // The effective configuration as checkpoints store it (JSON) reads back the same.
        let stored = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(configuration.json.utf8)) as? [String: Any])
        var again = FinetuneConfiguration()
        try again.apply(stored, origin: "state.json")
        XCTAssertEqual(again, configuration)

        var bad = FinetuneConfiguration()
        XCTAssertThrowsError(try bad.apply(["eval": [1, 2]], origin: "run.yaml")) {
            XCTAssertTrue("\($0)".contains("run.yaml") && "\($0)".contains("'eval'"), "\($0)")
        }
        var lonely = FinetuneConfiguration()
        try lonely.apply(["clip": "a", "teacher": "b", "data": "c", "out": "d", "eval-every": 2], origin: "test")
        XCTAssertThrowsError(try lonely.validate()) { XCTAssertTrue("\($0)".contains("--eval BENCH"), "\($0)") }
    }

    func testCheckpointRoundTripKeepsTheNewestAndIgnoresPartials() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("sdsclip-ckpt-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let state = AdamW.ParameterState(step: 3, firstMoment: Tensor.randn(shape: [2, 3], seed: 1), secondMoment: Tensor.randn(shape: [2, 3], seed: 2))
        for step in [2, 4, 6] {
            let progress = TrainingProgress(step: step, epoch: 1, position: 8, ranks: 2, shardPositions: [[1, 3], [0, 9]], samplesSeen: 24, badSamples: 1, elapsedSeconds: 1.5)
            try TrainingCheckpoint(progress: progress, configuration: ["batch-size": 4], tensors: ["w": Tensor.randn(shape: [2, 3], seed: UInt64(step))],
                                   optimizerStates: ["w": state]).write(into: folder, keep: 2)
        }
        // A partial folder of a dead writer (pid 2^22 + 1 does not exist here) is not a checkpoint.
        try FileManager.default.createDirectory(atPath: folder + "/.step-8.partial-4194305", withIntermediateDirectories: false)
        XCTAssertEqual(TrainingCheckpoint.list(folder).map(\.step), [4, 6])
        let read = try TrainingCheckpoint.read(folder + "/step-6")
        XCTAssertEqual(read.progress.step, 6)
        XCTAssertEqual(read.progress.ranks, 2)
        XCTAssertEqual(read.progress.shardPositions, [[1, 3], [0, 9]])
        XCTAssertEqual(read.tensors["w"]?.scalars, Tensor.randn(shape: [2, 3], seed: 6).scalars)
        XCTAssertEqual(read.optimizerStates["w"], state)
        XCTAssertEqual(read.configuration["batch-size"] as? Int, 4)
        TrainingCheckpoint.removeStalePartials(in: folder)
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder + "/.step-8.partial-4194305"))
        XCTAssertThrowsError(try TrainingCheckpoint.read(folder + "/step-2"), "removed: only 2 kept")
    }

    /// A pipeline whose UNet attends to 24-wide states but whose text encoder is 32 wide is refused
    /// at load, naming both widths.
    func testTeacherWithMismatchedCrossAttentionIsRefused() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("sdsclip-teacher-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let sd = Self.root.appendingPathComponent("fixtures/sd")
        let manager = FileManager.default
        try manager.copyItem(at: sd.appendingPathComponent("sd1_diffusers/model_index.json"), to: folder.appendingPathComponent("model_index.json"))
        try manager.createSymbolicLink(at: folder.appendingPathComponent("unet"), withDestinationURL: sd.appendingPathComponent("sd1_diffusers/unet"))
        try manager.createSymbolicLink(at: folder.appendingPathComponent("text_encoder"), withDestinationURL: sd.appendingPathComponent("sd2_diffusers/text_encoder"))
        XCTAssertThrowsError(try SDSTeacher.load(folder.path)) { error in
            XCTAssertTrue("\(error)".contains("cross_attention_dim"), "\(error)")
            XCTAssertTrue("\(error)".contains("24") && "\(error)".contains("32"), "\(error)")
        }
    }
}
