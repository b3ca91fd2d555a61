import Checkpoints
import Foundation
import Imaging
import Models
import Tensors
import WeightsIO

/// Asked from another thread (a signal handler) to stop after the current step.
public final class StopRequest: @unchecked Sendable {
    private let lock = NSLock()
    private var reason: String?
    public init() {}
    public func request(_ why: String) { lock.withLock { if reason == nil { reason = why } } }
    public var requested: String? { lock.withLock { reason } }
}

/// Forwards bad-sample reports from the loader's thread, one at a time.
final class BadSampleLog: @unchecked Sendable {
    private let lock = NSLock()
    private let log: (String) -> Void
    init(_ log: @escaping (String) -> Void) { self.log = log }
    func report(_ bad: BadSample) { lock.withLock { log("skipped \(bad)\n") } }
}

/// What a finished (or stopped) run produced.
public struct FinetuneSummary: Sendable {
    public let steps: Int
    public let finalFolder: String?
    public let lastCheckpoint: String
    public let stoppedBy: String?
    public let losses: SDSLosses?
    /// Seconds spent in the gradient and statistics all-reduces, and in whole steps (0 and the step
    /// time in a one-process run).
    public let allReduceSeconds: Double
    public let stepSeconds: Double
}

/// `sdsclip finetune`: the SDS-CLIP fine-tune loop over a data set, with checkpoints and exact resume.
/// One instance runs one job from one task (its models' parameters are not shared across tasks).
///
/// Data parallelism (`group.size` = N ranks): the global sequence of batches is the one-process one,
/// and each optimiser step consumes K = N × accumulation consecutive batches, rank r computing batches
/// r, r + N, …; gradients are summed over ranks and divided by the global number of batches, so N
/// ranks with accumulation A equal one process with accumulation N × A up to the summation order.
/// Noise and timesteps are a function of (seed, step, batch within the step), not of a running
/// stream, so every rank draws what one process would have drawn.
public final class Trainer {
    public let configuration: FinetuneConfiguration
    let log: (String) -> Void
    let clip: CLIPModel
    let clipTrainable: [RegisteredParameter]
    let latentMap: LatentMap
    let teacher: SDSTeacher
    let step: SDSStep
    let optimizer: AdamW
    let optimizerSettings: OptimizerSettings
    let dataset: TrainingDataset
    let totalSteps: Int
    let schedule: LearningRateSchedule
    /// CLIP's and the teacher's own tokenizers (their folders' vocabularies, or the built-in one).
    let tokenizer: CLIPTokenizer
    let teacherTokenizer: CLIPTokenizer
    let teacherPadID: Int
    var progress: TrainingProgress
    let group: ProcessGroup
    var contexts: [String: Tensor] = [:]
    /// `--eval` benchmarks, read before training.
    let evaluation: TrainingEvaluation?
    let out: String
    var checkpointsFolder: String { (out as NSString).appendingPathComponent("checkpoints") }

    /// Loads and checks everything before any work: models, data, sizes, the resume point.
    /// `resume` is a checkpoint folder (already resolved from `latest`), whose configuration must
    /// agree with `configuration` on everything that changes the result.
    public init(configuration: FinetuneConfiguration, resume: String? = nil, group: ProcessGroup = SingleProcess(),
                log: @escaping (String) -> Void) throws {
        try configuration.validate()
        self.group = group
        guard let clipPath = configuration.clip, let teacherPath = configuration.teacher,
              let dataPath = configuration.data, let out = configuration.out else { throw ConfigurationError("missing inputs") }
        self.configuration = configuration
        self.log = log
        self.out = out
        // Before any model loads: an --out that names a file can hold neither checkpoints nor the log.
        var isFolder: ObjCBool = false
        if FileManager.default.fileExists(atPath: out, isDirectory: &isFolder), !isFolder.boolValue {
            throw ConfigurationError("--out: \(out) is a file, not a folder")
        }
        let checkpoint = try resume.map { try TrainingCheckpoint.read($0) }
        if let checkpoint {
            try Self.checkResumable(configuration, ranks: group.size, against: checkpoint.configuration, ranks: checkpoint.progress.ranks, file: resume ?? "")
        }

        let loaded = try Self.naming("clip") { try CLIPLoader.load(clipPath, configuration: configuration.clipConfig) }
        clip = loaded.model
        clipTrainable = configuration.trainable.select(in: clip.registry)
        guard !clipTrainable.isEmpty else {
            throw CheckpointError(file: clipPath, "this CLIP has no parameters of the '\(configuration.trainable.rawValue)' set (no LayerNorms found)")
        }
        clip.registry.unfreeze(clipTrainable)
        let model = loaded.model
        evaluation = configuration.eval.isEmpty ? nil : try Self.naming("eval") {
            try TrainingEvaluation(specs: configuration.eval, every: configuration.evalEvery, clip: model, source: clipPath)
        }
        teacher = try Self.naming("teacher") {
            try SDSTeacher.load(teacherPath, configuration: configuration.teacherConfig, prediction: configuration.predictionType)
        }
        let precision = configuration.precision.resolved()
        if configuration.precision != .fp32 {
            var line = precision.summary
            if precision.usesBFloat16 { line += "\n\(try clip.registry.apply(precision, model: "CLIP")); \(try teacher.apply(precision))" }
            log(line + "\n")
        }
        guard configuration.latentSize % teacher.unet.sizeMultiple == 0 else {
            throw ConfigurationError("latent-size \(configuration.latentSize) cannot go through this UNet: it must be a multiple of \(teacher.unet.sizeMultiple) (one halving per down block)")
        }
        guard configuration.tMax < teacher.schedule.stepCount else {
            throw ConfigurationError("t-max \(configuration.tMax) is outside the teacher's \(teacher.schedule.stepCount)-step schedule")
        }
        let vision = clip.configuration.vision
        let inputWidth = configuration.mapper == .pooled ? clip.configuration.embedDimension : vision.width
        latentMap = try LatentMap(kind: configuration.mapper, side: configuration.latentSize, inputWidth: inputWidth,
                                  grid: vision.gridSize, seed: configuration.seed)
        optimizerSettings = OptimizerSettings(clipLearningRate: configuration.lrClip, mapLearningRate: configuration.lrMap,
                                              weightDecay: configuration.weightDecay, beta1: configuration.beta1,
                                              beta2: configuration.beta2, epsilon: configuration.adamEps)
        optimizer = try optimizerSettings.makeOptimizer(clip: clipTrainable, latentMap: latentMap.registry.entries)
        step = SDSStep(clip: clip, latentMap: latentMap, teacher: teacher, lambda: configuration.lambda,
                       gradient: configuration.sdsGradient, microBatch: configuration.microBatch)

        dataset = try Self.naming("data") {
            try TrainingDataset.open(dataPath, layout: configuration.dataLayout.flatMap(DatasetLayout.init(rawValue:)))
        }
        let samplesPerStep = configuration.batchSize * configuration.accumulation * group.size
        if case .sharded(let sharded) = dataset, sharded.shards.count < group.size {
            throw ConfigurationError("--data: \(sharded.shards.count) webdataset shards for \(group.size) ranks: each rank reads whole shards, so give at least as many shards as ranks")
        }
        if let checkpoint, case .sharded = dataset, checkpoint.progress.ranks != group.size {
            throw ConfigurationError("\(resume ?? ""): a webdataset run resumes with the ranks it had (\(checkpoint.progress.ranks), now \(group.size)): each rank's place in its own shards is what the checkpoint records")
        }
        if let steps = configuration.steps {
            totalSteps = steps
        } else {
            guard case .indexed(let indexed) = dataset else {
                throw ConfigurationError("webdataset shards have no known length: give --steps")
            }
            let perEpoch = indexed.items.count / samplesPerStep
            guard perEpoch > 0 else {
                throw ConfigurationError("\(dataPath) has \(indexed.items.count) samples, fewer than one step's \(samplesPerStep) (ranks × batch-size × accumulation)")
            }
            totalSteps = perEpoch * (configuration.epochs ?? 1)
        }
        schedule = LearningRateSchedule(warmupSteps: configuration.warmupSteps, totalSteps: totalSteps)
        tokenizer = try Self.naming("clip") { try ModelTokenizer.forCLIP(at: clipPath) }
        teacherTokenizer = try Self.naming("teacher") { try ModelTokenizer.forTextEncoder(at: teacherPath, configuration: configuration.teacherConfig) }
        for (key, tokens, width) in [("clip", tokenizer.vocabulary.tokenCount, clip.configuration.text.vocabularySize),
                                     ("teacher", teacherTokenizer.vocabulary.tokenCount, teacher.textEncoder.configuration.vocabularySize)]
            where tokens > width {
            throw ConfigurationError("--\(key): its tokenizer has \(tokens) tokens but its text encoder only \(width) embeddings (give the model folder its own vocab.json and merges.txt)")
        }
        teacherPadID = teacher.padID(with: teacherTokenizer)

        progress = checkpoint?.progress ?? TrainingProgress(step: 0, epoch: 0, position: 0, ranks: group.size, shardPositions: nil,
                                                            samplesSeen: 0, badSamples: 0, elapsedSeconds: 0)
        progress.ranks = group.size
        if let checkpoint { try restore(checkpoint, file: resume ?? "") }
    }

    /// Runs `body`, saying which setting an error came from ("--teacher: …").
    static func naming<T>(_ key: String, _ body: () throws -> T) throws -> T {
        do { return try body() } catch let error as ConfigurationError { throw error } catch {
            throw ConfigurationError("--\(key): \(error)")
        }
    }

    /// Settings that may differ between a run and its resume: they do not change the result.
    /// (`accumulation` may change with the rank count as long as the global batch stays.)
    static let resumableChanges: Set<String> = ["steps", "epochs", "checkpoint-every", "keep-checkpoints", "log-every", "out",
                                                "clip", "teacher", "data", "clip-config", "teacher-config", "eval-every", "eval",
                                                "collective-timeout", "accumulation"]

    static func checkResumable(_ configuration: FinetuneConfiguration, ranks: Int, against saved: [String: Any], ranks savedRanks: Int,
                               file: String) throws {
        // Both sides through the same parser and printer, so 1e-5 read back from JSON equals 1e-5.
        var savedConfiguration = FinetuneConfiguration()
        try savedConfiguration.apply(saved, origin: file)
        let current = configuration.values, before = savedConfiguration.values
        var differing: [String] = []
        for key in Set(current.keys).union(before.keys).sorted() where !resumableChanges.contains(key) {
            let a = current[key].map { "\($0)" }, b = before[key].map { "\($0)" }
            if a != b { differing.append("\(key): checkpoint \(b ?? "unset"), now \(a ?? "unset")") }
        }
        // The optimiser step's batch count is what must stay, not how it is split between ranks.
        let savedBatches = savedRanks * savedConfiguration.accumulation, batches = ranks * configuration.accumulation
        if savedBatches != batches {
            differing.append("global batch: checkpoint \(savedRanks) ranks × batch-size \(savedConfiguration.batchSize) × accumulation \(savedConfiguration.accumulation), "
                             + "now \(ranks) × \(configuration.batchSize) × \(configuration.accumulation)"
                             + (savedBatches % ranks == 0 ? " (with \(ranks) ranks give --accumulation \(savedBatches / ranks))" : ""))
        }
        guard differing.isEmpty else {
            throw ConfigurationError("\(file): the checkpoint was made with other settings, so resuming would not continue the same run: \(differing.joined(separator: "; "))")
        }
    }

    func restore(_ checkpoint: TrainingCheckpoint, file: String) throws {
        let expected = clipTrainable + latentMap.registry.entries
        for entry in expected {
            guard let value = checkpoint.tensors[entry.name] else {
                throw CheckpointError(file: file, "the checkpoint has no '\(entry.name)', which this run trains")
            }
            guard value.shape == entry.parameter.shape else {
                throw CheckpointError(file: file, "'\(entry.name)' is \(value.shape) in the checkpoint, \(entry.parameter.shape) here")
            }
            entry.parameter.value = value
        }
        if let extra = Set(checkpoint.tensors.keys).subtracting(expected.map(\.name)).sorted().first {
            throw CheckpointError(file: file, "the checkpoint holds '\(extra)', which this run does not train")
        }
        try optimizer.loadStates(checkpoint.optimizerStates)
    }

    var trainedEntries: [RegisteredParameter] { clipTrainable + latentMap.registry.entries }

    /// The teacher's conditioning for each caption, computed one caption at a time (so its bits never
    /// depend on which captions share a batch) and cached.
    func context(for captions: [String]) throws -> Tensor {
        var rows: [Tensor] = []
        for caption in captions {
            if let cached = contexts[caption] { rows.append(cached); continue }
            let ids = try teacherTokenizer.tokenize(caption, contextLength: teacher.textEncoder.configuration.contextLength, padID: teacherPadID)
            let states = try teacher.context([ids])
            contexts[caption] = states
            rows.append(states)
        }
        return try concat(rows, axis: 0)
    }

    /// Signals that stop a run, in the order a stop is named when several ranks saw different ones.
    static let stopReasons = ["SIGINT", "SIGTERM", "SIGUSR1"]

    /// Layout of the per-step statistics all-reduce (one small vector of sums).
    enum Statistic: Int, CaseIterable {
        case lossCLIP, lossSDS, lossTotal, batches, samples, badSamples, endOfData, stopINT, stopTERM, stopUSR1
    }

    /// The noise and timesteps of one batch: a function of (seed, step, batch within the step) only, so a
    /// rank computing batch `index` draws what a single process computing all of them would.
    func draws(step: Int, index: Int, count: Int) -> (noise: Tensor, timesteps: [Int]) {
        var random = Tensors.SplitMix64(seed: SeedMixer.derive(configuration.seed, 0x5D5C_11B0_0000_0002, UInt64(step), UInt64(index)))
        let side = configuration.latentSize
        let noise = Tensor.randn(shape: [count, LatentMap.channels, side, side], generator: &random)
        let span = configuration.tMax - configuration.tMin + 1
        let timesteps = (0..<count).map { _ in configuration.tMin + random.next(below: span) }
        return (noise, timesteps)
    }

    /// Runs to the last step, or until `stop` is requested on any rank (then rank 0 writes a checkpoint
    /// first). Only rank 0 reports to `monitor` and writes files.
    public func run(stop: StopRequest, monitor: TrainingMonitor) throws -> FinetuneSummary {
        let share = DataShare(rank: group.rank, ranks: group.size)
        let reporting = group.rank == 0
        let indexed: Bool
        if case .indexed = dataset { indexed = true } else { indexed = false }
        var loaderConfiguration = BatchLoader.Configuration(batchSize: configuration.batchSize, resolution: clip.configuration.vision.imageSize,
                                                            order: DataOrder(seed: configuration.seed, shuffleBuffer: configuration.shuffleBuffer))
        // Indexed layouts: the global position, the same on every rank. Webdataset: this rank's own.
        var local = (epoch: progress.epoch, position: progress.position)
        if !indexed, let positions = progress.shardPositions {
            guard share.rank < positions.count, positions[share.rank].count == 2 else {
                throw ConfigurationError("the checkpoint's shard positions do not cover rank \(share.rank)")
            }
            local = (positions[share.rank][0], positions[share.rank][1])
        }
        loaderConfiguration.startEpoch = local.epoch
        loaderConfiguration.startPosition = local.position
        loaderConfiguration.maximumBadFraction = configuration.maxBadFraction
        loaderConfiguration.share = share
        let badLog = BadSampleLog(log)
        let loader = try BatchLoader(dataset: dataset, configuration: loaderConfiguration) { bad in badLog.report(bad) }
        let contextLength = clip.configuration.text.contextLength
        let batchesPerStep = group.size * configuration.accumulation
        var lastLosses: SDSLosses?
        var lastCheckpoint = TrainingCheckpoint.list(checkpointsFolder).last?.path ?? ""
        var stoppedBy: String?
        let startSamples = progress.samplesSeen
        var localBad = 0   // this rank's loader counts from zero when it starts
        let clock = ContinuousClock()
        let started = clock.now
        let elapsedBefore = progress.elapsedSeconds
        var allReduceSeconds = 0.0, stepSeconds = 0.0
        if reporting { try monitor.begin(totalSteps: totalSteps, resumedAt: progress.step) }

        while progress.step < totalSteps {
            let stepStarted = clock.now
            var sums = SDSLosses(clip: 0, sds: 0, total: 0)
            var batches = 0, samples = 0
            var endOfData = false
            let badBefore = localBad
            for index in 0..<batchesPerStep {
                let owned = share.owns(index)
                guard indexed || owned else { continue }   // webdataset: a rank's loader holds only its own batches
                guard let batch = try loader.next() else { endOfData = true; break }
                if indexed { (progress.epoch, progress.position) = (batch.epoch, batch.positionAfter) }
                local = (batch.epoch, batch.positionAfter)
                localBad = batch.badSamples.total
                // A batch shrunk below two pairs by undecodable images has no contrastive set: skipped on every N alike.
                guard owned, !batch.isPlaceholder, batch.captions.count >= 2 else { continue }
                let ids = try tokenizer.tokenize(batch.captions, contextLength: contextLength, padID: 0)
                let pixels = try Tensor(shape: batch.shape, data: batch.pixels)
                let (noise, timesteps) = draws(step: progress.step, index: index, count: batch.captions.count)
                let losses = try step.run(SDSBatch(pixels: pixels, ids: ids, context: context(for: batch.captions), noise: noise, timesteps: timesteps))
                sums.clip += losses.clip; sums.sds += losses.sds; sums.total += losses.total
                batches += 1
                samples += batch.captions.count
            }
            // One small all-reduce a step: the sums behind the metrics, and whether any rank must stop.
            var statistics = [Double](repeating: 0, count: Statistic.allCases.count + (indexed ? 0 : 2 * group.size))
            func set(_ key: Statistic, _ value: Double) { statistics[key.rawValue] = value }
            set(.lossCLIP, Double(sums.clip)); set(.lossSDS, Double(sums.sds)); set(.lossTotal, Double(sums.total))
            set(.batches, Double(batches)); set(.samples, Double(samples)); set(.badSamples, Double(localBad - badBefore))
            set(.endOfData, endOfData ? 1 : 0)
            if let reason = stop.requested {
                let slot = Self.stopReasons.firstIndex(of: reason) ?? 0
                statistics[Statistic.stopINT.rawValue + slot] = 1
            }
            if !indexed {
                statistics[Statistic.allCases.count + 2 * share.rank] = Double(local.epoch)
                statistics[Statistic.allCases.count + 2 * share.rank + 1] = Double(local.position)
            }
            let reduceStarted = clock.now
            try group.sum(&statistics, what: "the statistics all-reduce of step \(progress.step + 1)")
            let globalBatches = Int(statistics[Statistic.batches.rawValue])
            if statistics[Statistic.endOfData.rawValue] > 0 || globalBatches == 0 {
                optimizer.zeroGrad()
                if progress.step == 0 && globalBatches == 0 { throw ConfigurationError("the data yielded no batch") }
                break
            }
            if group.size > 1 { try sumGradients(what: "the gradient all-reduce of step \(progress.step + 1)") }
            let reduced = seconds(clock.now - reduceStarted)
            let scale = 1 / Float(globalBatches)
            let gradientNorm = try scaleAndClipGradients(scale: scale)
            let factor = schedule.factor(step: progress.step + 1)
            for index in optimizer.groups.indices {
                optimizer.groups[index].learningRate = optimizerSettings.baseRate(ofGroup: optimizer.groups[index].name) * factor
            }
            try optimizer.step()
            optimizer.zeroGrad()
            progress.step += 1
            progress.samplesSeen += Int(statistics[Statistic.samples.rawValue])
            progress.badSamples += Int(statistics[Statistic.badSamples.rawValue])
            if !indexed {
                let base = Statistic.allCases.count
                let positions = (0..<group.size).map { [Int(statistics[base + 2 * $0]), Int(statistics[base + 2 * $0 + 1])] }
                progress.shardPositions = positions
                (progress.epoch, progress.position) = (positions[0][0], positions[0][1])   // rank 0's, for the metrics
            }
            progress.elapsedSeconds = elapsedBefore + seconds(clock.now - started)
            allReduceSeconds += reduced
            stepSeconds += seconds(clock.now - stepStarted)
            let global = SDSLosses(clip: Float(statistics[Statistic.lossCLIP.rawValue]), sds: Float(statistics[Statistic.lossSDS.rawValue]),
                                   total: Float(statistics[Statistic.lossTotal.rawValue]))
            let losses = SDSLosses(clip: global.clip * scale, sds: global.sds * scale, total: global.total * scale)
            lastLosses = losses
            if reporting {
                try monitor.record(TrainingMetrics(step: progress.step, epoch: progress.epoch, losses: losses,
                                                   learningRateCLIP: configuration.lrClip * factor, learningRateMap: configuration.lrMap * factor,
                                                   gradientNorm: gradientNorm, samplesSeen: progress.samplesSeen, badSamples: progress.badSamples,
                                                   elapsedSeconds: progress.elapsedSeconds,
                                                   samplesPerSecond: Double(progress.samplesSeen - startSamples) / max(seconds(clock.now - started), 1e-9),
                                                   allReduceSeconds: group.size > 1 ? reduced : nil))
                // Before the checkpoint: a kill in between redoes the step and its evaluation.
                if let evaluation, evaluation.isDue(step: progress.step, totalSteps: totalSteps) {
                    try evaluate(evaluation, monitor: monitor)
                }
                if progress.step % configuration.checkpointEvery == 0 || progress.step == totalSteps {
                    lastCheckpoint = try writeCheckpoint()
                }
            }
            if progress.step < totalSteps,
               let slot = (0..<Self.stopReasons.count).first(where: { statistics[Statistic.stopINT.rawValue + $0] > 0 }) {
                stoppedBy = Self.stopReasons[slot]
                break
            }
        }
        if reporting {
            // A run that ran out of data before its last step is evaluated where it ended.
            if stoppedBy == nil, progress.step < totalSteps, progress.step > 0, let evaluation, monitor.lastEvaluatedStep != progress.step {
                try evaluate(evaluation, monitor: monitor)
            }
            if stoppedBy != nil || progress.step < totalSteps, TrainingCheckpoint.list(checkpointsFolder).last?.step != progress.step {
                lastCheckpoint = try writeCheckpoint()
            }
            monitor.finish()
        }
        var finalFolder: String?
        if stoppedBy == nil, reporting {
            finalFolder = try DistilledCLIPWriter.write(clip: clip, latentMap: latentMap, configuration: configuration,
                                                        step: progress.step, into: (out as NSString).appendingPathComponent("final"),
                                                        tokenizer: tokenizer)
        }
        return FinetuneSummary(steps: progress.step, finalFolder: finalFolder, lastCheckpoint: lastCheckpoint, stoppedBy: stoppedBy,
                               losses: lastLosses, allReduceSeconds: allReduceSeconds, stepSeconds: stepSeconds)
    }

    /// Sums every trainable gradient over the ranks, in one buffer (the group splits it into buckets).
    /// Each tensor carries a presence count, so a gradient no rank produced stays nil as in one process.
    func sumGradients(what: String) throws {
        let entries = trainedEntries
        var buffer: [Float] = []
        buffer.reserveCapacity(entries.reduce(entries.count) { $0 + $1.parameter.value.count })
        for entry in entries {
            if let grad = entry.parameter.grad {
                buffer.append(1)
                grad.withUnsafeBufferPointer { buffer.append(contentsOf: $0) }
            } else {
                buffer.append(0)
                buffer.append(contentsOf: repeatElement(0, count: entry.parameter.value.count))
            }
        }
        try group.sum(&buffer, what: what)
        var offset = 0
        for entry in entries {
            let count = entry.parameter.value.count
            let present = buffer[offset] > 0
            entry.parameter.grad = present ? try Tensor(shape: entry.parameter.value.shape, data: Array(buffer[(offset + 1)..<(offset + 1 + count)])) : nil
            offset += 1 + count
        }
    }

    func evaluate(_ evaluation: TrainingEvaluation, monitor: TrainingMonitor) throws {
        let (records, skipped) = try withNoGrad { try evaluation.evaluate(step: progress.step) }
        monitor.record(evaluation: records, step: progress.step, summary: TrainingEvaluation.summary(records, skipped: skipped))
    }

    func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) * 1e-18
    }

    /// Averages accumulated gradients, then clips their global norm; returns the norm before clipping.
    func scaleAndClipGradients(scale: Float) throws -> Float {
        var sumOfSquares: Double = 0
        for entry in trainedEntries {
            guard var grad = entry.parameter.grad else { continue }
            if scale != 1 { grad = grad * scale; entry.parameter.grad = grad }
            grad.withUnsafeBufferPointer { values in for v in values { sumOfSquares += Double(v) * Double(v) } }
        }
        let norm = Float(sumOfSquares.squareRoot())
        guard norm.isFinite else {
            throw ModelError.invalidInput("the gradient norm is \(norm) at step \(progress.step + 1): the run diverged (try a smaller lr-clip / lr-map or lambda)")
        }
        if configuration.gradClip > 0, norm > configuration.gradClip {
            let factor = configuration.gradClip / (norm + 1e-6)
            for entry in trainedEntries { if let grad = entry.parameter.grad { entry.parameter.grad = grad * factor } }
        }
        return norm
    }

    func writeCheckpoint() throws -> String {
        var tensors: [String: Tensor] = [:]
        for entry in trainedEntries { tensors[entry.name] = entry.parameter.value }
        let checkpoint = TrainingCheckpoint(progress: progress, configuration: configuration.values, tensors: tensors,
                                            optimizerStates: optimizer.states)
        return try checkpoint.write(into: checkpointsFolder, keep: configuration.keepCheckpoints)
    }

    public static func hasCheckpoint(in out: String) -> Bool {
        !TrainingCheckpoint.list((out as NSString).appendingPathComponent("checkpoints")).isEmpty
    }

    /// The newest complete checkpoint of an output folder (for `--resume latest`).
    public static func latestCheckpoint(in out: String) throws -> String {
        let folder = (out as NSString).appendingPathComponent("checkpoints")
        guard let latest = TrainingCheckpoint.list(folder).last else {
            throw CheckpointError(file: folder, "no checkpoint to resume from (expected checkpoints/step-N/ folders); a run stopped before its first checkpoint starts again with its full command plus --resume latest")
        }
        return latest.path
    }
}
