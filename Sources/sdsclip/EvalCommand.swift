import ArgumentParser
import Checkpoints
import Evaluation
import Foundation
import WeightsIO

/// `sdsclip eval`: compositional benchmarks (Winoground, SugarCrepe, multiple choice, ARO) scored with
/// CLIP similarities, with bootstrap intervals, optionally against a second model on the same items.
struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Score a CLIP on Winoground, SugarCrepe, multiple choice and ARO benchmarks.",
        discussion: """
        Each BENCHMARK is a file or folder whose layout is detected, or named as KIND:PATH (winoground, sugarcrepe, \
        choice, aro, aro-relation, aro-attribution). s(c, i) is the cosine similarity of CLIP's projected caption \
        and image embeddings. Winoground: text, image and group scores with strict inequalities, overall and per \
        collapsed_tag; SugarCrepe: accuracy per file; multiple choice: accuracy; ARO: accuracy overall, per \
        relation or attribute pair, and the authors' macro average. Every score has a percentile bootstrap \
        interval over items (seeded); --compare scores a second model on the same items and adds the \
        difference with a paired-bootstrap interval. Bad items are named on stderr, skipped and counted.
        """
    )

    @Argument(help: ArgumentHelp("The CLIP: a file or folder in any supported layout.", valueName: "MODEL"))
    var model: String

    @Argument(help: ArgumentHelp("Benchmarks: paths, or KIND:PATH to name the layout.", valueName: "BENCHMARK"))
    var benchmarks: [String]

    @Option(help: ArgumentHelp("A second CLIP to score on the same items, shown beside MODEL with the difference (OTHER − MODEL).", valueName: "OTHER"))
    var compare: String?

    @Option(help: ArgumentHelp("Write every score, interval, count and skipped item to this JSON file.", valueName: "FILE"))
    var json: String?

    @Option(help: ArgumentHelp("The image folder of SugarCrepe (COCO val2017) or ARO (default: val2017/ or images/ beside the JSON files).", valueName: "DIR"))
    var images: String?

    @Option(help: "A configuration file for MODEL (transformers config.json or OpenCLIP config).")
    var config: String?

    @Option(name: .customLong("compare-config"), help: "A configuration file for --compare.")
    var compareConfig: String?

    @Option(name: .customLong("batch-size"), help: "Images or captions per CLIP forward pass.")
    var batchSize = 32

    @Option(help: "Bootstrap resamples.")
    var resamples = 1000

    @Option(help: "Bootstrap seed.")
    var seed: UInt64 = 0

    /// Skipped items named on stderr per benchmark; the JSON report lists them all.
    static let namedSkips = 100

    func validate() throws {
        guard !benchmarks.isEmpty else { throw ValidationError("give at least one BENCHMARK") }
        guard batchSize > 0 else { throw ValidationError("--batch-size must be positive") }
        guard (1...100_000).contains(resamples) else { throw ValidationError("--resamples must be 1 to 100000") }
    }

    func run() throws {
        try reportingErrors {
            let loaded = try BenchmarkLoader.open(benchmarks.map(BenchmarkSpec.init(argument:)), images: images)
            let inputs = Evaluator.inputs(loaded)
            var runs: [ModelRun] = []
            for (path, configuration) in [(model, config)] + (compare.map { [($0, compareConfig)] } ?? []) {
                let clip = try CLIPLoader.load(path, configuration: configuration)
                for note in clip.notes { printError("note: \(path): \(note)") }
                let embedder = try CLIPEmbedder(model: clip.model, tokenizer: ModelTokenizer.forCLIP(at: path), batchSize: batchSize, source: path)
                let display = EmbeddingProgressDisplay(model: path)
                let table = try embedder.embed(images: inputs.images, captions: inputs.captions, progress: display.update)
                runs.append(ModelRun(label: path, table: table))
            }
            let report = Evaluator.report(loaded, runs: runs, bootstrap: BootstrapSettings(resamples: resamples, seed: seed))
            for benchmark in report.benchmarks {
                for skip in benchmark.skipped.prefix(Self.namedSkips) { printError("skipped \(benchmark.name) \(skip)") }
                if benchmark.skipped.count > Self.namedSkips {
                    printError("skipped \(benchmark.name): \(benchmark.skipped.count - Self.namedSkips) more" + (json == nil ? "" : " (all in \(json ?? ""))"))
                }
            }
            print(ReportTable.render(report), terminator: "")
            if let json {
                try AtomicFile.write(ReportJSON.encode(report), to: json)
                printError("wrote \(json)")
            }
            if report.benchmarks.allSatisfy({ $0.scored == 0 }) {
                throw ValidationError("no item of any benchmark could be scored")
            }
        }
    }
}

/// Embedding progress on stderr: redrawn on a terminal, otherwise a line at every tenth of a stage.
final class EmbeddingProgressDisplay {
    private let model: String
    private let isTerminal = isatty(STDERR_FILENO) != 0
    private var stage: EmbeddingProgress.Stage?
    private var stageStart = Date()
    private var lastTenth = -1
    private var lastDraw = Date.distantPast

    init(model: String) { self.model = model }

    func update(_ progress: EmbeddingProgress) {
        guard progress.total > 0 else { return }
        if progress.stage != stage {
            stage = progress.stage
            stageStart = Date()
            lastTenth = -1
        }
        let finished = progress.done == progress.total
        let elapsed = Date().timeIntervalSince(stageStart)
        let rate = elapsed > 0 ? Double(progress.done) / elapsed : 0
        var text = "\(model): embedding \(progress.stage.rawValue) \(progress.done)/\(progress.total)"
        if rate > 0 { text += String(format: "  %.1f/s", rate) }
        if rate > 0, !finished { text += String(format: "  ETA %.0fs", Double(progress.total - progress.done) / rate) }
        if isTerminal {
            guard finished || Date().timeIntervalSince(lastDraw) > 0.1 else { return }
            lastDraw = Date()
            FileHandle.standardError.write(Data(("\r\u{1B}[K" + text + (finished ? "\n" : "")).utf8))
        } else {
            let tenth = progress.done * 10 / progress.total
            guard tenth != lastTenth, progress.done > 0 else { return }
            lastTenth = tenth
            FileHandle.standardError.write(Data((text + "\n").utf8))
        }
    }
}
