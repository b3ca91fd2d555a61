import ArgumentParser
import DataParallel
import Foundation
import SDSTraining

/// `sdsclip finetune`: the SDS-CLIP fine-tune. Every setting is a flag and a config-file key of the same
/// name; the order of precedence is flags, then `--config FILE`, then (on resume) the checkpoint's
/// settings, then the defaults.
struct FinetuneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "finetune",
        abstract: "Fine-tune CLIP with SDS-CLIP: L = L_CLIP + λ·L_SDS through a frozen Stable Diffusion teacher.",
        discussion: """
        Trains CLIP's LayerNorms (or --trainable) and a latent map h_w so that a frozen SD UNet, conditioned \
        on the caption, denoises the latent h_w makes from the image. OUT receives checkpoints/step-N/ (the \
        last --keep-checkpoints), final/ (the distilled CLIP, loadable by every sdsclip command, with h_w in \
        final/latent_map/), metrics.jsonl and loss.png. SIGINT or SIGTERM writes a checkpoint and exits \
        with status 130 or 143; --resume latest continues exactly where it stopped. --eval BENCH… (as sdsclip \
        eval takes them) scores the CLIP every --eval-every steps and at the end, into metrics.jsonl beside \
        the losses, without touching the training's randomness.
        """
    )

    /// The setting's help with its default appended (the defaults live in FinetuneConfiguration only).
    static func help(_ key: String) -> ArgumentHelp {
        let text = FinetuneConfiguration.settings.first { $0.key == key }?.help ?? ""
        guard let value = FinetuneConfiguration().values[key] else { return ArgumentHelp(text) }
        // "(ours)" marks a default this implementation chose (the paper publishes none).
        let ours = text.contains(" (ours)")
        var sentence = text.replacingOccurrences(of: " (ours)", with: "")
        if sentence.hasSuffix(".") { sentence.removeLast() }
        return ArgumentHelp("\(sentence) (default: \(value)\(ours ? ", ours" : "")).")
    }

    @Option(name: .customLong("clip"), help: help("clip")) var clip: String?
    @Option(name: .customLong("teacher"), help: help("teacher")) var teacher: String?
    @Option(name: .customLong("data"), help: help("data")) var data: String?
    @Option(name: .customLong("out"), help: help("out")) var out: String?
    @Option(name: .customLong("clip-config"), help: help("clip-config")) var clipConfig: String?
    @Option(name: .customLong("teacher-config"), help: help("teacher-config")) var teacherConfig: String?
    @Option(name: .customLong("data-layout"), help: help("data-layout")) var dataLayout: String?
    @Option(name: .customLong("steps"), help: help("steps")) var steps: String?
    @Option(name: .customLong("epochs"), help: help("epochs")) var epochs: String?
    @Option(name: .customLong("batch-size"), help: help("batch-size")) var batchSize: String?
    @Option(name: .customLong("micro-batch"), help: help("micro-batch")) var microBatch: String?
    @Option(name: .customLong("accumulation"), help: help("accumulation")) var accumulation: String?
    @Option(name: .customLong("lambda"), help: help("lambda")) var lambda: String?
    @Option(name: .customLong("sds-gradient"), help: help("sds-gradient")) var sdsGradient: String?
    @Option(name: .customLong("mapper"), help: help("mapper")) var mapper: String?
    @Option(name: .customLong("trainable"), help: help("trainable")) var trainable: String?
    @Option(name: .customLong("latent-size"), help: help("latent-size")) var latentSize: String?
    @Option(name: .customLong("t-min"), help: help("t-min")) var tMin: String?
    @Option(name: .customLong("t-max"), help: help("t-max")) var tMax: String?
    @Option(name: .customLong("prediction-type"), help: help("prediction-type")) var predictionType: String?
    @Option(name: .customLong("precision"), help: help("precision")) var precision: String?
    @Option(name: .customLong("lr-clip"), help: help("lr-clip")) var lrClip: String?
    @Option(name: .customLong("lr-map"), help: help("lr-map")) var lrMap: String?
    @Option(name: .customLong("weight-decay"), help: help("weight-decay")) var weightDecay: String?
    @Option(name: .customLong("beta1"), help: help("beta1")) var beta1: String?
    @Option(name: .customLong("beta2"), help: help("beta2")) var beta2: String?
    @Option(name: .customLong("adam-eps"), help: help("adam-eps")) var adamEps: String?
    @Option(name: .customLong("warmup-steps"), help: help("warmup-steps")) var warmupSteps: String?
    @Option(name: .customLong("grad-clip"), help: help("grad-clip")) var gradClip: String?
    @Option(name: .customLong("seed"), help: help("seed")) var seed: String?
    @Option(name: .customLong("checkpoint-every"), help: help("checkpoint-every")) var checkpointEvery: String?
    @Option(name: .customLong("keep-checkpoints"), help: help("keep-checkpoints")) var keepCheckpoints: String?
    @Option(name: .customLong("log-every"), help: help("log-every")) var logEvery: String?
    @Option(name: .customLong("max-bad-fraction"), help: help("max-bad-fraction")) var maxBadFraction: String?
    @Option(name: .customLong("shuffle-buffer"), help: help("shuffle-buffer")) var shuffleBuffer: String?
    @Option(name: .customLong("collective-timeout"), help: help("collective-timeout")) var collectiveTimeout: String?
    @Option(name: .customLong("eval-every"), help: help("eval-every")) var evalEvery: String?
    @Option(name: .customLong("eval"), parsing: .upToNextOption, help: help("eval")) var eval: [String] = []

    @Option(help: "A JSON or YAML file of settings (the same keys as the flags, e.g. batch-size: 16).")
    var config: String?

    @Option(help: "Continue a run: 'latest' (the newest checkpoint in --out) or a checkpoint folder.")
    var resume: String?

    @Flag(name: .customLong("print-config"), help: "Print the effective configuration as JSON and exit.")
    var printConfig = false

    @OptionGroup var safety: WeightSafetyOptions

    var givenFlags: [String: Any] {
        let pairs: [(String, String?)] = [
            ("clip", clip),
            ("teacher", teacher),
            ("data", data),
            ("out", out),
            ("clip-config", clipConfig),
            ("teacher-config", teacherConfig),
            ("data-layout", dataLayout),
            ("steps", steps),
            ("epochs", epochs),
            ("batch-size", batchSize),
            ("micro-batch", microBatch),
            ("accumulation", accumulation),
            ("lambda", lambda),
            ("sds-gradient", sdsGradient),
            ("mapper", mapper),
            ("trainable", trainable),
            ("latent-size", latentSize),
            ("t-min", tMin),
            ("t-max", tMax),
            ("prediction-type", predictionType),
            ("precision", precision),
            ("lr-clip", lrClip),
            ("lr-map", lrMap),
            ("weight-decay", weightDecay),
            ("beta1", beta1),
            ("beta2", beta2),
            ("adam-eps", adamEps),
            ("warmup-steps", warmupSteps),
            ("grad-clip", gradClip),
            ("seed", seed),
            ("checkpoint-every", checkpointEvery),
            ("keep-checkpoints", keepCheckpoints),
            ("log-every", logEvery),
            ("max-bad-fraction", maxBadFraction),
            ("shuffle-buffer", shuffleBuffer),
            ("collective-timeout", collectiveTimeout),
            ("eval-every", evalEvery)
        ]
        var values: [String: Any] = [:]
        for (key, value) in pairs { if let value { values[key] = value } }
        if !eval.isEmpty { values["eval"] = eval }
        return values
    }

    func run() throws {
        // Under mpirun every rank runs this; without it, MPI is never touched (the same run as ever).
        guard MPIProcessGroup.isLaunched() else {
            var interruptedStatus: Int32?
            try reportingErrors { interruptedStatus = try job(group: SingleProcess(), mpi: nil) }
            if let interruptedStatus { throw ExitCode(interruptedStatus) }
            return
        }
        let mpi: MPIProcessGroup
        do { mpi = try MPIProcessGroup() } catch {
            printError("error: \(error)")
            throw ExitCode(1)
        }
        let status: Int32?
        do {
            status = try job(group: mpi, mpi: mpi)
        } catch let exit as CleanExit {
            mpi.finish()
            throw exit
        } catch {
            // One rank's failure ends every rank, named, instead of leaving the others in a collective.
            printError("rank \(mpi.rank) failed: \(error)")
            mpi.abort(code: 1)
        }
        mpi.finish()
        if let status { throw ExitCode(status) }
    }

    /// The fine-tune on one rank (of one, or of an mpirun job). Returns the exit status of an interrupted run.
    func job(group: ProcessGroup, mpi: MPIProcessGroup?) throws -> Int32? {
        let reporting = group.rank == 0
        var configuration = FinetuneConfiguration()
        let flags = givenFlags
        var checkpointPath: String?
        if let resume {
            // The checkpoint's settings first, so a resume needs nothing but --out and --resume.
            let out = (flags["out"] as? String) ?? ""
            if resume == "latest", !Trainer.hasCheckpoint(in: out), flags["clip"] != nil, flags["teacher"] != nil, flags["data"] != nil {
                // Stopped before its first checkpoint: the full command starts again from step 0.
                if reporting { printError("no checkpoint in \(out)/checkpoints yet: starting from step 0") }
            } else {
                let path = resume == "latest" ? try Trainer.latestCheckpoint(in: out) : resume
                let saved = try TrainingCheckpoint.read(path)
                try configuration.apply(saved.configuration, origin: path + "/state.json")
                checkpointPath = path
            }
        }
        if let config { try configuration.apply(FinetuneConfiguration.readFile(config), origin: config) }
        try configuration.apply(flags, origin: "command line")
        if printConfig {
            if reporting { print(configuration.json) }
            return nil
        }
        try configuration.validate()
        try safety.admit([configuration.clip, configuration.teacher])
        // Rank 0 alone judges the folder: the others might already see its first metrics file.
        if reporting, checkpointPath == nil, resume == nil, let out = configuration.out, !TrainingCheckpointFolder.isFresh(out) {
            throw ConfigurationError("\(out) already holds a fine-tune run; continue it with --resume latest, or choose another --out")
        }
        mpi?.timeout = Double(configuration.collectiveTimeout)
        let prefix = group.size > 1 ? "rank \(group.rank): " : ""
        let trainer = try Trainer(configuration: configuration, resume: checkpointPath, group: group) { printError(prefix + $0) }
        if let mpi, reporting {
            printError("data parallel: global batch \(mpi.size * configuration.batchSize * configuration.accumulation) = \(mpi.size) ranks × batch-size \(configuration.batchSize) × accumulation \(configuration.accumulation) (rank 0 on \(mpi.hostName))")
        }
        let stop = StopRequest()
        // mpirun forwards SIGUSR1 to every rank (not SIGINT/SIGTERM, which it turns into a kill): under it,
        // SIGUSR1 is the clean stop.
        let names: [Int32: String] = [SIGINT: "SIGINT", SIGTERM: "SIGTERM", SIGUSR1: "SIGUSR1"]
        let signals = (mpi == nil ? [SIGINT, SIGTERM] : [SIGINT, SIGTERM, SIGUSR1]).map { number -> DispatchSourceSignal in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { stop.request(names[number] ?? "a signal") }
            source.resume()
            return source
        }
        defer { signals.forEach { $0.cancel() } }
        let monitor = TrainingMonitor(folder: configuration.out ?? ".", logEvery: configuration.logEvery) {
            FileHandle.standardError.write(Data($0.utf8))
        }
        let summary = try trainer.run(stop: stop, monitor: monitor)
        guard reporting else { return summary.stoppedBy.map(Self.status) }
        if let reason = summary.stoppedBy {
            printError("stopped by \(reason) after step \(summary.steps); checkpoint \(summary.lastCheckpoint)")
            printError("continue with: sdsclip finetune --out \(configuration.out ?? "OUT") --resume latest")
            return Self.status(reason)
        }
        if let losses = summary.losses {
            print(String(format: "finished %d steps: loss %.4f (L_CLIP %.4f, L_SDS %.4f)", summary.steps, losses.total, losses.clip, losses.sds))
        }
        if mpi != nil, summary.stepSeconds > 0 {
            print(String(format: "all-reduce:     %.3f s of %.3f s in steps (%.1f %%, rank 0)", summary.allReduceSeconds, summary.stepSeconds,
                         100 * summary.allReduceSeconds / summary.stepSeconds))
        }
        if let final = summary.finalFolder { print("distilled CLIP: \(final) (h_w in \(final)/latent_map/)") }
        print("checkpoint:     \(summary.lastCheckpoint)")
        print("metrics:        \(monitor.metricsPath)")
        print("loss plot:      \(monitor.plotPath)")
        return nil
    }

    /// The shell's 128 + N for the signal that stopped the run.
    static func status(_ reason: String) -> Int32 {
        switch reason {
        case "SIGINT": return 130
        case "SIGUSR1": return 138
        default: return 143
        }
    }
}
