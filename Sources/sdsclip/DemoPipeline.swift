import Checkpoints
import Evaluation
import Foundation
import SDSTraining

/// The settings of one `sdsclip demo` run.
struct DemoSettings {
    var out = "demo-output"
    var clip = "fixtures/demo/trained/clip"
    var teacher = "fixtures/demo/trained/sd"
    var steps = 600
    var seed: UInt64 = 0
    var lambda: Float = FinetuneConfiguration().lambda
    var batchSize = 8
    var trainingSamples = 2048
    var testPairs = 200
    var lrClip: Float = 1e-3
    var lrMap: Float = 1e-2
    var latentSize = 8
    var resamples = 1000
    var overwrite = false

    /// The fine-tune's configuration for one arm (the SDS run at `lambda`, the control at 0).
    func finetune(lambda: Float, data: String, out: String) -> FinetuneConfiguration {
        var configuration = FinetuneConfiguration()
        configuration.clip = clip
        configuration.teacher = teacher
        configuration.data = data
        configuration.out = out
        configuration.steps = steps
        configuration.batchSize = batchSize
        configuration.microBatch = batchSize
        configuration.lambda = lambda
        configuration.latentSize = latentSize
        configuration.lrClip = lrClip
        configuration.lrMap = lrMap
        configuration.warmupSteps = max(1, steps / 10)
        configuration.seed = seed
        configuration.checkpointEvery = steps
        configuration.keepCheckpoints = 1
        configuration.logEvery = max(1, steps / 10)
        return configuration
    }
}

/// A model's Winoground scores on the swapped pairs, with intervals.
struct DemoScores {
    var text: DemoEstimate
    var image: DemoEstimate
    var group: DemoEstimate

    subscript(metric: String) -> DemoEstimate? {
        switch metric {
        case "text": return text
        case "image": return image
        case "group": return group
        default: return nil
        }
    }
}

struct DemoEstimate {
    var value: Double
    var low: Double
    var high: Double
    var correct: Int?
}

/// B − A on the same items with the paired-bootstrap interval.
struct DemoComparison {
    var a: String
    var b: String
    var metric: String
    var difference: DemoEstimate
}

/// One fine-tune arm's outcome.
struct DemoRun {
    var name: String
    var lambda: Float
    var folder: String
    var final: String
    var losses: SDSLosses?
    var history: [(step: Int, losses: SDSLosses)]
    var seconds: Double
}

/// Everything the report shows.
struct DemoResult {
    var settings: DemoSettings
    var data: String
    var benchmark: String
    var pairs: Int
    var scored: Int
    var skipped: Int
    var runs: [DemoRun]
    var exports: [(layout: String, folder: String)]
    var scores: [(model: String, path: String, scores: DemoScores)]
    var comparisons: [DemoComparison]
    /// The teacher's own diffusion-score classifier on the same pairs; nil: not measured.
    var teacher: DemoScores?
    var timings: [(stage: String, seconds: Double)]
}

/// `sdsclip demo`: the example world → the SDS fine-tune and its λ = 0 control (same seed) → export of the
/// SDS result (hf and openclip) → Winoground scores of base, control and SDS on the swapped pairs → report.
/// Every stage calls the library code the commands use; progress goes to `log` (stderr).
struct DemoPipeline {
    static let entries = ["data", "runs", "export", "report.md", "report.json", "loss.png"]
    let settings: DemoSettings
    let log: (String) -> Void

    func run() throws -> DemoResult {
        try prepareOutput()
        let clock = Date()
        var timings: [(String, Double)] = []
        func timed<T>(_ stage: String, _ body: () throws -> T) rethrows -> T {
            let start = Date()
            let value = try body()
            timings.append((stage, Date().timeIntervalSince(start)))
            return value
        }
        let out = settings.out
        let data = path(out, "data")
        try timed("example world") { try writeExampleWorld(to: data) }

        let trainJSONL = path(data, "train.jsonl")
        let sds = try timed("fine-tune SDS") { try finetune(name: "sds", lambda: settings.lambda, data: trainJSONL, stage: 2) }
        let control = try timed("fine-tune control") { try finetune(name: "control", lambda: 0, data: trainJSONL, stage: 3) }

        stage(4, "export the SDS result (hf and openclip)")
        let exports = try timed("export") { try exportResult(sds.final) }

        stage(5, "evaluate base, control and SDS on \(settings.testPairs) swapped pairs")
        let benchmarkPath = path(data, "test-swaps.jsonl")
        let hf = exports.first { $0.layout == "hf" }?.folder ?? sds.final
        let evaluation = try timed("evaluate") {
            try DemoEvaluation(benchmark: benchmarkPath, resamples: settings.resamples, seed: settings.seed, log: log)
                .run(models: [("base", settings.clip), ("control", control.final), ("sds", hf)])
        }
        let teacher = try timed("teacher classifier") { try DemoTeacherScore.measure(teacher: settings.teacher, benchmark: benchmarkPath,
                                                                                                    resamples: settings.resamples, seed: settings.seed) }
        log(teacher == nil ? "teacher's diffusion-score classifier: no pair could be scored\n" : "")
        timings.append(("total", Date().timeIntervalSince(clock)))
        return DemoResult(settings: settings, data: data, benchmark: benchmarkPath, pairs: settings.testPairs,
                          scored: evaluation.scored, skipped: evaluation.skipped, runs: [sds, control], exports: exports,
                          scores: evaluation.scores, comparisons: evaluation.comparisons, teacher: teacher, timings: timings)
    }

    func stage(_ number: Int, _ text: String) {
        log("\n== [\(number)/6] \(text)\n")
    }

    func path(_ folder: String, _ name: String) -> String { (folder as NSString).appendingPathComponent(name) }

    /// OUT must be empty (or missing) unless overwriting; then only the demo's own entries are removed.
    func prepareOutput() throws {
        let manager = FileManager.default
        var isFolder: ObjCBool = false
        guard manager.fileExists(atPath: settings.out, isDirectory: &isFolder) else {
            try manager.createDirectory(atPath: settings.out, withIntermediateDirectories: true)
            return
        }
        guard isFolder.boolValue else { throw ConfigurationError("\(settings.out) exists and is not a folder") }
        let present = (try? manager.contentsOfDirectory(atPath: settings.out)) ?? []
        guard !present.isEmpty else { return }
        guard settings.overwrite else {
            throw ConfigurationError("\(settings.out) is not empty (\(present.count) entries); pass --overwrite to replace what demo writes there (\(Self.entries.joined(separator: ", "))), or choose another OUT")
        }
        for entry in Self.entries where present.contains(entry) {
            do {
                try manager.removeItem(atPath: path(settings.out, entry))
            } catch {
                throw ConfigurationError("\(path(settings.out, entry)): cannot remove it to overwrite: \(error.localizedDescription)")
            }
        }
    }

    func writeExampleWorld(to folder: String) throws {
        stage(1, "write the example world: \(settings.trainingSamples) training samples, \(settings.testPairs) swapped test pairs")
        var options = ExampleDataWriter.Options()
        options.count = settings.trainingSamples
        options.testPairs = settings.testPairs
        options.seed = settings.seed
        options.shardSize = max(16, settings.trainingSamples)
        let summary = try ExampleDataWriter.write(to: folder, options: options)
        log("wrote \(summary.images) samples and \(summary.testPairs) test pairs to \(folder)\n")
    }

    func finetune(name: String, lambda: Float, data: String, stage number: Int) throws -> DemoRun {
        let folder = path(path(settings.out, "runs"), name)
        stage(number, "fine-tune \(name == "sds" ? "with SDS" : "the control"): λ = \(lambda), \(settings.steps) steps of \(settings.batchSize), seed \(settings.seed)")
        let configuration = settings.finetune(lambda: lambda, data: data, out: folder)
        let start = Date()
        let trainer = try Trainer(configuration: configuration) { log($0) }
        let monitor = TrainingMonitor(folder: folder, logEvery: configuration.logEvery) { log($0) }
        let summary = try trainer.run(stop: StopRequest(), monitor: monitor)
        guard let final = summary.finalFolder else {
            throw ConfigurationError("the \(name) fine-tune stopped (\(summary.stoppedBy ?? "?")) before its final model")
        }
        return DemoRun(name: name, lambda: lambda, folder: folder, final: final, losses: summary.losses,
                       history: monitor.history, seconds: Date().timeIntervalSince(start))
    }

    func exportResult(_ final: String) throws -> [(layout: String, folder: String)] {
        var written: [(String, String)] = []
        for layout in CLIPExportLayout.allCases {
            let folder = path(path(settings.out, "export"), "sds-\(layout.rawValue)")
            let summary = try CLIPExporter.export(modelAt: final, to: folder, options: .init(layout: layout))
            for note in summary.notes { log("note: \(note)\n") }
            log("wrote \(folder): \(summary.tensorCount) tensors, \(summary.files.count) files\n")
            written.append((layout.rawValue, folder))
        }
        return written
    }
}

/// Scores the models on the swapped pairs with the same draws, and compares them in pairs.
struct DemoEvaluation {
    let benchmark: String
    let resamples: Int
    let seed: UInt64
    let log: (String) -> Void

    struct Outcome {
        var scores: [(model: String, path: String, scores: DemoScores)]
        var comparisons: [DemoComparison]
        var scored: Int
        var skipped: Int
    }

    static let metrics = ["text", "image", "group"]
    /// (A, B) pairs reported as B − A.
    static let pairs = [("base", "sds"), ("control", "sds"), ("base", "control")]

    func run(models: [(name: String, path: String)]) throws -> Outcome {
        let loaded = try BenchmarkLoader.open([BenchmarkSpec(layout: .winoground, path: benchmark)])
        let inputs = Evaluator.inputs(loaded)
        var runs: [String: ModelRun] = [:]
        for model in models {
            let clip = try CLIPLoader.load(model.path)
            let embedder = try CLIPEmbedder(model: clip.model, tokenizer: ModelTokenizer.forCLIP(at: model.path), source: model.path)
            let display = EmbeddingProgressDisplay(model: "\(model.name) (\(model.path))")
            runs[model.name] = ModelRun(label: model.name, table: try embedder.embed(images: inputs.images, captions: inputs.captions,
                                                                                   progress: display.update))
        }
        let settings = BootstrapSettings(resamples: resamples, seed: seed)
        var scores: [(String, String, DemoScores)] = []
        var comparisons: [DemoComparison] = []
        var scored = 0, skipped = 0
        for (a, b) in Self.pairs {
            guard let runA = runs[a], let runB = runs[b] else { continue }
            let report = Evaluator.report(loaded, runs: [runA, runB], bootstrap: settings)
            guard let result = report.benchmarks.first else { continue }
            scored = result.scored
            skipped = result.skipped.count
            let overall = result.scores.filter { $0.scope == .all }
            for (index, name) in [a, b].enumerated() where !scores.contains(where: { $0.0 == name }) {
                if let value = try Self.scores(overall, model: index) {
                    scores.append((name, models.first { $0.name == name }?.path ?? "", value))
                }
            }
            for score in overall {
                if let difference = score.difference {
                    comparisons.append(DemoComparison(a: a, b: b, metric: score.metric,
                                                      difference: DemoEstimate(value: difference.value, low: difference.low, high: difference.high)))
                }
            }
        }
        let order = models.map(\.name)
        scores.sort { (order.firstIndex(of: $0.0) ?? 0) < (order.firstIndex(of: $1.0) ?? 0) }
        guard scored > 0 else { throw ConfigurationError("\(benchmark): no swapped pair could be scored (\(skipped) skipped)") }
        return Outcome(scores: scores, comparisons: comparisons, scored: scored, skipped: skipped)
    }

    static func scores(_ overall: [Score], model: Int) throws -> DemoScores? {
        func estimate(_ metric: String) -> DemoEstimate? {
            guard let score = overall.first(where: { $0.metric == metric }), model < score.models.count else { return nil }
            let value = score.models[model]
            return DemoEstimate(value: value.estimate.value, low: value.estimate.low, high: value.estimate.high, correct: value.correct)
        }
        guard let text = estimate("text"), let image = estimate("image"), let group = estimate("group") else { return nil }
        return DemoScores(text: text, image: image, group: group)
    }
}

/// The teacher's own diffusion-score classifier (`eval --teacher`, default protocol: K = 10 timesteps, noise
/// shared across captions, seeded) on the same swapped pairs, Winoground text/image/group with intervals.
enum DemoTeacherScore {
    static func measure(teacher: String, benchmark: String, resamples: Int, seed: UInt64) throws -> DemoScores? {
        let loaded = try BenchmarkLoader.open([BenchmarkSpec(layout: .winoground, path: benchmark)])
        let scorer = try DiffusionScorer(teacher: EvalTeacher.load(teacher, configuration: nil, prediction: nil),
                                         settings: DiffusionScoring(seed: seed))
        let draws = try scorer.seededDraws()
        let table = try scorer.score(Evaluator.pairs(loaded), draws: draws, progress: EmbeddingProgressDisplay(model: "teacher (\(teacher))").update)
        let report = Evaluator.report(loaded, runs: [ModelRun(label: "teacher", table: table, scoring: scorer.describe(draws))],
                                      bootstrap: BootstrapSettings(resamples: resamples, seed: seed))
        guard let result = report.benchmarks.first, result.scored > 0 else { return nil }
        return try DemoEvaluation.scores(result.scores.filter { $0.scope == .all }, model: 0)
    }
}
