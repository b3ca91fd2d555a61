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
}

/// `sdsclip finetune`: the SDS-CLIP fine-tune loop over a data set, with checkpoints and exact resume.
/// One instance runs one job from one task (its models' parameters are not shared across tasks).
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
    var random: Tensors.SplitMix64
    var contexts: [String: Tensor] = [:]
    /// `--eval` benchmarks, read before training.
    let evaluation: TrainingEvaluation?
    let out: String
    var checkpointsFolder: String { (out as NSString).appendingPathComponent("checkpoints") }

    /// Loads and checks everything before any work: models, data, sizes, the resume point.
    /// `resume` is a checkpoint folder (already resolved from `latest`), whose configuration must
    /// agree with `configuration` on everything that changes the result.
    public init(configuration: FinetuneConfiguration, resume: String? = nil, log: @escaping (String) -> Void) throws {
        try configuration.validate()
        guard let clipPath = configuration.clip, let teacherPath = configuration.teacher,
              let dataPath = configuration.data, let out = configuration.out else { throw ConfigurationError("missing inputs") }
        self.configuration = configuration
        self.log = log
        self.out = out
        let checkpoint = try resume.map { try TrainingCheckpoint.read($0) }
        if let checkpoint { try Self.checkResumable(configuration, against: checkpoint.configuration, file: resume ?? "") }

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
        let samplesPerStep = configuration.batchSize * configuration.accumulation
        if let steps = configuration.steps {
            totalSteps = steps
        } else {
            guard case .indexed(let indexed) = dataset else {
                throw ConfigurationError("webdataset shards have no known length: give --steps")
            }
            let perEpoch = indexed.items.count / samplesPerStep
            guard perEpoch > 0 else {
                throw ConfigurationError("\(dataPath) has \(indexed.items.count) samples, fewer than one step's \(samplesPerStep) (batch-size × accumulation)")
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

        let start = checkpoint?.progress ?? TrainingProgress(step: 0, epoch: 0, position: 0, randomState: configuration.seed ^ 0x5D5C_11B0_0000_0001,
                                                             samplesSeen: 0, badSamples: 0, elapsedSeconds: 0)
        progress = start
        random = Tensors.SplitMix64(seed: start.randomState)
        if let checkpoint { try restore(checkpoint, file: resume ?? "") }
    }

    /// Runs `body`, saying which setting an error came from ("--teacher: …").
    static func naming<T>(_ key: String, _ body: () throws -> T) throws -> T {
        do { return try body() } catch let error as ConfigurationError { throw error } catch {
            throw ConfigurationError("--\(key): \(error)")
        }
    }

    /// Settings that may differ between a run and its resume: they do not change the result.
    static let resumableChanges: Set<String> = ["steps", "epochs", "checkpoint-every", "keep-checkpoints", "log-every", "out",
                                                "clip", "teacher", "data", "clip-config", "teacher-config", "eval-every", "eval"]

    static func checkResumable(_ configuration: FinetuneConfiguration, against saved: [String: Any], file: String) throws {
        // Both sides through the same parser and printer, so 1e-5 read back from JSON equals 1e-5.
        var savedConfiguration = FinetuneConfiguration()
        try savedConfiguration.apply(saved, origin: file)
        let current = configuration.values, before = savedConfiguration.values
        var differing: [String] = []
        for key in Set(current.keys).union(before.keys).sorted() where !resumableChanges.contains(key) {
            let a = current[key].map { "\($0)" }, b = before[key].map { "\($0)" }
            if a != b { differing.append("\(key): checkpoint \(b ?? "unset"), now \(a ?? "unset")") }
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

    /// Runs to the last step, or until `stop` is requested (then a checkpoint is written first).
    public func run(stop: StopRequest, monitor: TrainingMonitor) throws -> FinetuneSummary {
        var loaderConfiguration = BatchLoader.Configuration(batchSize: configuration.batchSize, resolution: clip.configuration.vision.imageSize,
                                                            order: DataOrder(seed: configuration.seed, shuffleBuffer: configuration.shuffleBuffer))
        loaderConfiguration.startEpoch = progress.epoch
        loaderConfiguration.startPosition = progress.position
        loaderConfiguration.maximumBadFraction = configuration.maxBadFraction
        let badLog = BadSampleLog(log)
        let loader = try BatchLoader(dataset: dataset, configuration: loaderConfiguration) { bad in badLog.report(bad) }
        let contextLength = clip.configuration.text.contextLength
        let side = configuration.latentSize
        var lastLosses: SDSLosses?
        var lastCheckpoint = TrainingCheckpoint.list(checkpointsFolder).last?.path ?? ""
        var stoppedBy: String?
        let startSamples = progress.samplesSeen
        let badBefore = progress.badSamples   // the loader counts from zero when it starts
        let clock = ContinuousClock()
        let started = clock.now
        let elapsedBefore = progress.elapsedSeconds
        monitor.begin(totalSteps: totalSteps, resumedAt: progress.step)

        while progress.step < totalSteps {
            if let reason = stop.requested { stoppedBy = reason; break }
            var sums = SDSLosses(clip: 0, sds: 0, total: 0)
            var batches = 0
            var endOfData = false
            for _ in 0..<configuration.accumulation {
                guard let batch = try loader.next() else { endOfData = true; break }
                let ids = try tokenizer.tokenize(batch.captions, contextLength: contextLength, padID: 0)
                let pixels = try Tensor(shape: batch.shape, data: batch.pixels)
                let noise = Tensor.randn(shape: [batch.captions.count, LatentMap.channels, side, side], generator: &random)
                let span = configuration.tMax - configuration.tMin + 1
                var timesteps: [Int] = []
                for _ in batch.captions { timesteps.append(configuration.tMin + random.next(below: span)) }
                let losses = try step.run(SDSBatch(pixels: pixels, ids: ids, context: context(for: batch.captions), noise: noise, timesteps: timesteps))
                sums.clip += losses.clip; sums.sds += losses.sds; sums.total += losses.total
                batches += 1
                progress.epoch = batch.epoch
                progress.position = batch.positionAfter
                progress.samplesSeen += batch.captions.count
                progress.badSamples = badBefore + batch.badSamples.total
            }
            if endOfData || batches == 0 {
                optimizer.zeroGrad()
                if progress.step == 0 && batches == 0 { throw ConfigurationError("the data yielded no batch") }
                break
            }
            let scale = 1 / Float(batches)
            let gradientNorm = try scaleAndClipGradients(scale: scale)
            let factor = schedule.factor(step: progress.step + 1)
            for index in optimizer.groups.indices {
                optimizer.groups[index].learningRate = optimizerSettings.baseRate(ofGroup: optimizer.groups[index].name) * factor
            }
            try optimizer.step()
            optimizer.zeroGrad()
            progress.step += 1
            progress.randomState = random.state
            progress.elapsedSeconds = elapsedBefore + seconds(clock.now - started)
            let losses = SDSLosses(clip: sums.clip * scale, sds: sums.sds * scale, total: sums.total * scale)
            lastLosses = losses
            try monitor.record(TrainingMetrics(step: progress.step, epoch: progress.epoch, losses: losses,
                                               learningRateCLIP: configuration.lrClip * factor, learningRateMap: configuration.lrMap * factor,
                                               gradientNorm: gradientNorm, samplesSeen: progress.samplesSeen, badSamples: progress.badSamples,
                                               elapsedSeconds: progress.elapsedSeconds,
                                               samplesPerSecond: Double(progress.samplesSeen - startSamples) / max(seconds(clock.now - started), 1e-9)))
            // Before the checkpoint: a kill in between redoes the step and its evaluation.
            if let evaluation, evaluation.isDue(step: progress.step, totalSteps: totalSteps) {
                try evaluate(evaluation, monitor: monitor)
            }
            if progress.step % configuration.checkpointEvery == 0 || progress.step == totalSteps {
                lastCheckpoint = try writeCheckpoint()
            }
        }
        // A run that ran out of data before its last step is evaluated where it ended.
        if stoppedBy == nil, progress.step < totalSteps, progress.step > 0, let evaluation, monitor.lastEvaluatedStep != progress.step {
            try evaluate(evaluation, monitor: monitor)
        }
        if stoppedBy != nil || progress.step < totalSteps, TrainingCheckpoint.list(checkpointsFolder).last?.step != progress.step {
            lastCheckpoint = try writeCheckpoint()
        }
        monitor.finish()
        var finalFolder: String?
        if stoppedBy == nil {
            finalFolder = try DistilledCLIPWriter.write(clip: clip, latentMap: latentMap, configuration: configuration,
                                                        step: progress.step, into: (out as NSString).appendingPathComponent("final"),
                                                        tokenizer: tokenizer)
        }
        return FinetuneSummary(steps: progress.step, finalFolder: finalFolder, lastCheckpoint: lastCheckpoint, stoppedBy: stoppedBy, losses: lastLosses)
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
