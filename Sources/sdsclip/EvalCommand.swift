import ArgumentParser
import Checkpoints
import Evaluation
import Foundation
import Tensors
import WeightsIO

/// `sdsclip eval`: compositional benchmarks (Winoground, SugarCrepe, multiple choice, ARO) scored with
/// CLIP similarities, with bootstrap intervals, optionally against a second model on the same items.
struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Score a CLIP (or a Stable Diffusion teacher) on Winoground, SugarCrepe, multiple choice, ARO, zero-shot, retrieval and probe benchmarks.",
        discussion: """
        Each BENCHMARK is a file or folder whose layout is detected, or named as KIND:PATH (winoground, sugarcrepe, \
        choice, aro, aro-relation, aro-attribution, zeroshot, retrieval, probe). s(c, i) is the cosine similarity of CLIP's projected caption \
        and image embeddings. Winoground: text, image and group scores with strict inequalities, overall and per \
        collapsed_tag; SugarCrepe: accuracy per file; multiple choice: accuracy; ARO: accuracy overall, per \
        relation or attribute pair, and the authors' macro average. zeroshot (a folder of class folders, \
        ImageNet-style; class names from the folder names or classnames.txt/.json, prompts from templates.txt or \
        --templates, default "a photo of a {}."): top-1 and top-5 accuracy of open_clip's mean-of-prompts \
        classifier. retrieval (a Karpathy split JSON, dataset_coco.json or dataset_flickr30k.json; --split, images \
        under --images or the JSON's folder): image→text and text→image R@1/5/10. An example-data folder gives its \
        test-swaps and a linear probe (logistic regression on the training images' embeddings) per scene \
        attribute. Every score has a percentile bootstrap \
        interval over items (seeded); --compare scores a second model on the same items and adds the \
        difference with a paired-bootstrap interval. Bad items are named on stderr, skipped and counted.

        --teacher SD_MODEL scores the same items with the teacher's diffusion-score classifier (Diffusion \
        Classifier, Li et al. 2023; DiffusionITM, Krojer et al. 2023): each image is resized (shorter side, \
        bicubic) and centre-cropped to --teacher-resolution, scaled to [-1, 1] and encoded to the VAE's posterior \
        mean × scaling_factor = z0; for K = --teacher-timesteps timesteps t_k = T/K/2 + k·T/K (default 10: 50, \
        150, …, 950 of SD's 1000) and noise ε_k drawn once per k (standard normal from --teacher-seed, shared \
        by every caption and image), s(c, i) = −mean_k ‖ε_θ(√ᾱ z0 + √(1−ᾱ) ε_k, t_k, text(c)) − target‖² \
        (target ε, or v for v-prediction teachers). The teacher is model B beside MODEL (B − A is teacher \
        minus CLIP); it cannot be combined with --compare. MODEL may be left out: a first argument that names \
        a benchmark (KIND:PATH, a .json or .jsonl file, or a folder holding a benchmark file) scores the \
        teacher alone. Cost: K UNet passes per caption-image pair (a Winoground item is 4 pairs, 40 passes \
        at the default K).
        """
    )

    @Argument(help: ArgumentHelp("The CLIP: a file or folder in any supported layout (may be left out with --teacher).", valueName: "MODEL"))
    var model: String

    @Argument(help: ArgumentHelp("Benchmarks: paths, or KIND:PATH to name the layout.", valueName: "BENCHMARK"))
    var benchmarks: [String] = []

    @Option(help: ArgumentHelp("A second CLIP to score on the same items, shown beside MODEL with the difference (OTHER − MODEL).", valueName: "OTHER"))
    var compare: String?

    @Option(help: ArgumentHelp("A Stable Diffusion checkpoint whose diffusion-score classifier is scored beside MODEL (see above).", valueName: "SD_MODEL"))
    var teacher: String?

    @Option(name: .customLong("teacher-config"), help: "A configuration folder or file for --teacher (as `finetune --teacher-config`).")
    var teacherConfig: String?

    @Option(name: .customLong("teacher-prediction"), help: "What the teacher's UNet predicts, epsilon or v_prediction (default: its scheduler_config.json, else epsilon).")
    var teacherPrediction: String?

    @Option(name: .customLong("teacher-timesteps"), help: "K: timesteps per caption-image pair (default: \(DiffusionScoring.defaultTimesteps)).")
    var teacherTimesteps: Int?

    @Option(name: .customLong("teacher-seed"), help: "Seed of the teacher's noise ε_k (default: 0).")
    var teacherSeed: UInt64?

    @Option(name: .customLong("teacher-resolution"), help: "Image side for the teacher (default: its UNet sample_size × the VAE's downsampling, 512 for SD1.5).")
    var teacherResolution: Int?

    @Option(name: .customLong("teacher-batch-size"), help: "Caption × image × timestep rows per UNet pass (default: 4).")
    var teacherBatchSize: Int?

    @Option(help: ArgumentHelp("Write every score, interval, count and skipped item to this JSON file.", valueName: "FILE"))
    var json: String?

    @Option(help: ArgumentHelp("The image folder of SugarCrepe (COCO val2017), ARO or retrieval (default: val2017/ or images/ beside the JSON files; "
                               + "retrieval: the JSON's folder, holding filepath/filename).", valueName: "DIR"))
    var images: String?

    @Option(help: ArgumentHelp("The Karpathy split retrieval scores: test, val, restval or train (default: \(KarpathyReader.defaultSplit)).", valueName: "SPLIT"))
    var split: String?

    @Option(help: ArgumentHelp("Zero-shot class names: a .txt (one a line, in sorted folder order) or .json ({\"FOLDER\": \"name\"}) file "
                               + "(default: classnames.txt/.json in the folder, else the folder names).", valueName: "FILE"))
    var classnames: String?

    @Option(help: ArgumentHelp("Zero-shot prompt templates, one a line with {} for the class name (default: templates.txt in the folder, "
                               + "else \"a photo of a {}.\").", valueName: "FILE"))
    var templates: String?

    @Option(help: "A configuration file for MODEL (transformers config.json or OpenCLIP config).")
    var config: String?

    @Option(name: .customLong("compare-config"), help: "A configuration file for --compare.")
    var compareConfig: String?

    @OptionGroup var safety: WeightSafetyOptions

    @Option(help: PrecisionHelp.text)
    var precision: Precision = .fp32

    @Option(name: .customLong("batch-size"), help: "Images or captions per CLIP forward pass.")
    var batchSize = 32

    @Option(help: "Bootstrap resamples.")
    var resamples = 1000

    @Option(help: "Bootstrap seed.")
    var seed: UInt64 = 0

    /// The CLIP and the benchmarks: with --teacher, a first argument naming a benchmark leaves MODEL out.
    var resolved: (clip: String?, benchmarks: [String]) {
        if teacher != nil, BenchmarkLoader.namesBenchmark(model) { return (nil, [model] + benchmarks) }
        return (model, benchmarks)
    }

    /// Skipped items named on stderr per benchmark; the JSON report lists them all.
    static let namedSkips = 100

    func validate() throws {
        guard !resolved.benchmarks.isEmpty else { throw ValidationError("give at least one BENCHMARK") }
        guard batchSize > 0 else { throw ValidationError("--batch-size must be positive") }
        guard teacher == nil || compare == nil else {
            throw ValidationError("--teacher and --compare each add the second model: give one of them")
        }
        if teacher == nil {
            // No silent flags: settings of the teacher's classifier mean nothing without it.
            let given = [("--teacher-config", teacherConfig != nil), ("--teacher-prediction", teacherPrediction != nil),
                         ("--teacher-timesteps", teacherTimesteps != nil), ("--teacher-seed", teacherSeed != nil),
                         ("--teacher-resolution", teacherResolution != nil), ("--teacher-batch-size", teacherBatchSize != nil)]
                .filter(\.1).map(\.0)
            if !given.isEmpty { throw ValidationError("\(given.joined(separator: ", ")) apply only with --teacher SD_MODEL") }
        }
        if compare == nil, compareConfig != nil { throw ValidationError("--compare-config applies only with --compare OTHER") }
        if let teacherBatchSize, teacherBatchSize <= 0 { throw ValidationError("--teacher-batch-size must be positive") }
        if let teacherTimesteps, teacherTimesteps <= 0 { throw ValidationError("--teacher-timesteps must be positive") }
        if let teacherResolution, teacherResolution <= 0 { throw ValidationError("--teacher-resolution must be positive") }
        guard (1...100_000).contains(resamples) else { throw ValidationError("--resamples must be 1 to 100000") }
        if let split, !KarpathyReader.splits.contains(split) {
            throw ValidationError("--split must be one of \(KarpathyReader.splits.joined(separator: ", ")), got \(split)")
        }
    }

    /// Benchmark options that only some kinds read must meet one of them.
    static func unusedOptions(_ loaded: [Benchmark], split: String?, classnames: String?, templates: String?) -> String? {
        let kinds = Set(loaded.map(\.kind))
        var unused: [String] = []
        if split != nil, !kinds.contains(.retrieval) { unused.append("--split applies to retrieval benchmarks") }
        if classnames != nil, !kinds.contains(.zeroShot) { unused.append("--classnames applies to zeroshot benchmarks") }
        if templates != nil, !kinds.contains(.zeroShot) { unused.append("--templates applies to zeroshot benchmarks") }
        return unused.isEmpty ? nil : unused.joined(separator: "; ") + ", and none was given"
    }

    func run() throws {
        try reportingErrors {
            let (clipPath, benchmarkArguments) = resolved
            try safety.admit([clipPath, compare, teacher])
            let options = BenchmarkOptions(images: images, split: split ?? KarpathyReader.defaultSplit, classNames: classnames, templates: templates)
            let loaded = try BenchmarkLoader.open(benchmarkArguments.map(BenchmarkSpec.init(argument:)), options: options)
            if let unused = Self.unusedOptions(loaded, split: split, classnames: classnames, templates: templates) {
                // Options that do not go together, found once the benchmarks are read: a usage error, as in validate().
                printError("error: \(unused)")
                throw ExitCode(64)
            }
            let inputs = Evaluator.inputs(loaded)
            let choice = precision.resolvedAnnounced()
            // The teacher is loaded first, so that a teacher that cannot work fails before any CLIP work.
            let scorer = try teacher.map { path in
                try DiffusionScorer(teacher: EvalTeacher.load(path, configuration: teacherConfig, prediction: teacherPrediction, precision: choice),
                                    settings: DiffusionScoring(timesteps: teacherTimesteps ?? DiffusionScoring.defaultTimesteps,
                                                               seed: teacherSeed ?? 0, resolution: teacherResolution,
                                                               batchSize: teacherBatchSize ?? 4))
            }
            var runs: [ModelRun] = []
            let clips = (clipPath.map { [($0, config)] } ?? []) + (compare.map { [($0, compareConfig)] } ?? [])
            for (path, configuration) in clips {
                let clip = try CLIPLoader.load(path, configuration: configuration)
                try clip.model.registry.useBFloat16(choice)
                for note in clip.notes { printError("note: \(path): \(note)") }
                let embedder = try CLIPEmbedder(model: clip.model, tokenizer: ModelTokenizer.forCLIP(at: path), batchSize: batchSize, source: path)
                let display = EmbeddingProgressDisplay(model: path)
                let table = try embedder.embed(images: inputs.images, captions: inputs.captions, progress: display.update)
                runs.append(ModelRun(label: path, table: table))
            }
            if let teacher, let scorer {
                let draws = try scorer.seededDraws()
                let display = EmbeddingProgressDisplay(model: teacher)
                let table = try scorer.score(Evaluator.pairs(loaded), draws: draws, progress: display.update)
                runs.append(ModelRun(label: teacher, table: table, scoring: scorer.describe(draws)))
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

/// Embedding (or the teacher's scoring) progress on stderr: redrawn on a terminal, otherwise a line at every tenth of a stage.
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
        var text = "\(model): \(progress.stage.activity) \(progress.done)/\(progress.total)"
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
