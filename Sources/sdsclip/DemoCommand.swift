import ArgumentParser
import Foundation

/// `sdsclip demo`: the whole SDS-CLIP pipeline on the example world with the shipped trained demo models.
struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "The main job on the example data: fine-tune a small CLIP with SDS and a λ = 0 control, export, evaluate, report.",
        discussion: """
        Writes the example world to OUT/data, fine-tunes the base CLIP (--clip) with SDS-CLIP through the teacher \
        (--teacher) into OUT/runs/sds and the same run with λ = 0 into OUT/runs/control (same seed), exports the SDS \
        result as OUT/export/sds-hf and OUT/export/sds-openclip, scores base, control and SDS on the swapped-caption \
        pairs (Winoground text/image/group with bootstrap intervals and paired differences) and writes OUT/report.md, \
        OUT/report.json and OUT/loss.png. Progress goes to stderr. The defaults finish in a few minutes on two cores; \
        run it from the repository root (the default models are fixtures/demo/trained/).
        """
    )

    @Argument(help: "The output folder (created; must be empty unless --overwrite).")
    var out = DemoSettings().out

    @Option(help: "Fine-tune steps of each run.")
    var steps = DemoSettings().steps

    @Option(help: "Seed of the example world, both fine-tunes and the bootstrap.")
    var seed = DemoSettings().seed

    @Option(help: "λ of the SDS run (the control uses 0).")
    var lambda = DemoSettings().lambda

    @Option(name: .customLong("batch-size"), help: "Samples per step.")
    var batchSize = DemoSettings().batchSize

    @Option(name: .customLong("train-samples"), help: "Training samples in the example world.")
    var trainSamples = DemoSettings().trainingSamples

    @Option(name: .customLong("test-pairs"), help: "Swapped-caption test pairs.")
    var testPairs = DemoSettings().testPairs

    @Option(help: "Bootstrap resamples for the intervals.")
    var resamples = DemoSettings().resamples

    @Option(help: "The base CLIP.")
    var clip = DemoSettings().clip

    @Option(help: "The SD teacher (a diffusers pipeline folder).")
    var teacher = DemoSettings().teacher

    @Flag(help: "Write into a non-empty OUT, replacing only the entries demo makes there.")
    var overwrite = false

    func validate() throws {
        guard steps > 0 else { throw ValidationError("--steps must be positive") }
        guard batchSize > 0 else { throw ValidationError("--batch-size must be positive") }
        guard trainSamples >= batchSize else { throw ValidationError("--train-samples must be at least --batch-size") }
        guard testPairs > 0 else { throw ValidationError("--test-pairs must be positive") }
        guard (1...100_000).contains(resamples) else { throw ValidationError("--resamples must be 1 to 100000") }
        guard lambda >= 0, lambda.isFinite else { throw ValidationError("--lambda must be a non-negative number") }
    }

    func run() throws {
        try reportingErrors {
            for (flag, path) in [("--clip", clip), ("--teacher", teacher)] where !FileManager.default.fileExists(atPath: path) {
                throw ValidationError("\(flag) \(path) does not exist (run demo from the repository root, or pass \(flag))")
            }
            var settings = DemoSettings()
            settings.out = out
            settings.steps = steps
            settings.seed = seed
            settings.lambda = lambda
            settings.batchSize = batchSize
            settings.trainingSamples = trainSamples
            settings.testPairs = testPairs
            settings.resamples = resamples
            settings.clip = clip
            settings.teacher = teacher
            settings.overwrite = overwrite
            let pipeline = DemoPipeline(settings: settings) { FileHandle.standardError.write(Data($0.utf8)) }
            let result = try pipeline.run()
            let files = try DemoReport.write(result)
            printError("\n== [6/6] report")
            for (name, _) in DemoReport.models {
                guard let entry = result.scores.first(where: { $0.model == name }) else { continue }
                print(name.padding(toLength: 9, withPad: " ", startingAt: 0)
                      + String(format: "text %5.1f%%  image %5.1f%%  group %5.1f%%", 100 * entry.scores.text.value, 100 * entry.scores.image.value, 100 * entry.scores.group.value))
            }
            print("teacher  " + (result.teacher.map { String(format: "text %5.1f%%  image %5.1f%%  group %5.1f%%", 100 * $0.text.value, 100 * $0.image.value, 100 * $0.group.value) }
                                 ?? "diffusion-score classifier not measured"))
            for file in files { print("wrote \(file)") }
            print(String(format: "total %.0f s", result.timings.last?.seconds ?? 0))
        }
    }
}
