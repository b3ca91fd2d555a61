import Foundation
import Imaging

/// One batch of preprocessed images and their captions, all from one epoch.
public struct TrainingBatch: Sendable {
    public let keys: [String]
    public let captions: [String]
    /// `shape` = [B, 3, R, R], CLIP-normalised, channel-major per image.
    public let pixels: [Float]
    public let shape: [Int]
    public let epoch: Int
    /// Items consumed in `epoch` after this batch (good and bad): resume there with
    /// `Configuration.startEpoch = epoch, startPosition = positionAfter`.
    public let positionAfter: Int
    /// Since the loader started (not since the resumed run's beginning).
    public let badSamples: BadSampleCounts
    public let itemsSeen: Int
    /// A batch of the global sequence that another rank computes (`Configuration.share`): only its
    /// `epoch` and `positionAfter` are filled in; nothing of it was decoded.
    public var isPlaceholder = false
}

/// Decodes (`ImageDecoder`) and preprocesses (`CLIPPreprocessor`, Pillow-exact as `sdsclip embed`)
/// on a background thread, a few batches ahead of the consumer (a bounded queue), so decoding
/// overlaps compute. Bad samples are counted by kind, passed to `log` (on the loader's thread)
/// and skipped; `next()` throws once they are more than `maximumBadFraction` of the items seen.
///
/// Batches never mix epochs. With `dropLast` (the default) an epoch's last partial batch is
/// dropped, as PyTorch's `DataLoader(drop_last=True)`: every step then has the same batch size.
public final class BatchLoader {
    public struct Configuration: Sendable {
        public var batchSize: Int
        /// Side of the square CLIP input.
        public var resolution: Int
        public var order: DataOrder
        public var startEpoch = 0
        /// Items of `startEpoch` already consumed (a batch's `positionAfter`).
        public var startPosition = 0
        /// How many epochs to run from `startEpoch`; nil: until the consumer stops.
        public var epochs: Int?
        public var dropLast = true
        /// Batches prepared ahead of the consumer.
        public var prefetch = 3
        /// Share of bad items, among those seen, above which `next()` throws.
        public var maximumBadFraction = 0.05
        /// The share is judged from this many items on, and at the end of every epoch.
        public var minimumItemsForBadCheck = 20
        /// Data parallelism. Indexed layouts: batch boundaries come from checks that need no decoding
        /// (manifest records, image files present), so every rank knows the global sequence of
        /// batches; this rank decodes only the batches it owns and gets placeholders for the others.
        /// An owned image that then fails to decode shrinks its batch (the others cannot refill it
        /// without decoding everything). Webdataset: only the rank's shards are read, as usual.
        /// Bad items count towards the rank owning the batch they fall in.
        public var share: DataShare?

        public init(batchSize: Int, resolution: Int, order: DataOrder) {
            self.batchSize = batchSize
            self.resolution = resolution
            self.order = order
        }
    }

    public let configuration: Configuration
    /// Bad samples and items seen as of the last batch, or of the end of the run once `next()`
    /// has returned nil (the items after the last batch included).
    public private(set) var badSamples = BadSampleCounts()
    public private(set) var itemsSeen = 0
    private let queue: BatchQueue
    private var terminal: Result<Void, DataError>?

    public init(dataset: TrainingDataset, configuration: Configuration, log: (@Sendable (BadSample) -> Void)? = nil) throws {
        guard configuration.batchSize > 0 else {
            throw DataError(file: "batch loader", "batch size must be positive, got \(configuration.batchSize)")
        }
        guard configuration.startEpoch >= 0, configuration.startPosition >= 0, (configuration.epochs ?? 1) >= 0 else {
            throw DataError(file: "batch loader", "epoch, position and epoch count must not be negative")
        }
        let preprocessor = try CLIPPreprocessor(resolution: configuration.resolution)
        self.configuration = configuration
        let queue = BatchQueue(capacity: max(1, configuration.prefetch))
        self.queue = queue
        let producer = BatchProducer(dataset: dataset, configuration: configuration, preprocessor: preprocessor,
                                     queue: queue, log: log)
        let thread = Thread { producer.run() }
        thread.name = "sdsclip.BatchLoader"
        thread.stackSize = 8 << 20  // image codecs keep sizeable structures on the stack
        thread.start()
    }

    deinit { queue.cancel() }

    /// The next batch; nil after the last epoch. Throws `DataError` when too many samples are bad
    /// or an epoch yields no batch at all (and again on every later call).
    public func next() throws -> TrainingBatch? {
        if let terminal {
            try terminal.get()
            return nil
        }
        switch queue.pop() {
        case .batch(let batch):
            badSamples = batch.badSamples
            itemsSeen = batch.itemsSeen
            return batch
        case .end(let counts, let seen):
            badSamples = counts
            itemsSeen = seen
            terminal = .success(())
            return nil
        case .failure(let error):
            terminal = .failure(error)
            throw error
        }
    }
}

enum BatchMessage: Sendable {
    case batch(TrainingBatch)
    case failure(DataError)
    case end(BadSampleCounts, itemsSeen: Int)
}

/// A bounded FIFO between the loader thread and the consumer.
final class BatchQueue: @unchecked Sendable {
    // All state is guarded by `condition`.
    private let condition = NSCondition()
    private var messages: [BatchMessage] = []
    private var cancelled = false
    private let capacity: Int

    init(capacity: Int) { self.capacity = capacity }

    var isCancelled: Bool {
        condition.lock()
        defer { condition.unlock() }
        return cancelled
    }

    /// Blocks while full; false when the consumer has gone away.
    func push(_ message: BatchMessage) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        // The last message (end or failure) may exceed the capacity by one so it never blocks.
        let isLast: Bool
        if case .batch = message { isLast = false } else { isLast = true }
        while !cancelled && !isLast && messages.count >= capacity { condition.wait() }
        guard !cancelled else { return false }
        messages.append(message)
        condition.broadcast()
        return true
    }

    func pop() -> BatchMessage {
        condition.lock()
        defer { condition.unlock() }
        while messages.isEmpty { condition.wait() }
        let message = messages.removeFirst()
        condition.broadcast()
        return message
    }

    func cancel() {
        condition.lock()
        cancelled = true
        condition.broadcast()
        condition.unlock()
    }
}

/// The loader thread's work: stream, decode, preprocess, batch, judge the bad share.
struct BatchProducer: Sendable {
    let dataset: TrainingDataset
    let configuration: BatchLoader.Configuration
    let preprocessor: CLIPPreprocessor
    let queue: BatchQueue
    let log: (@Sendable (BadSample) -> Void)?

    /// How many bad samples an error message names.
    static let examplesKept = 5

    private struct Tally {
        var seen = 0
        var counts = BadSampleCounts()
        var examples: [BadSample] = []
    }

    func run() {
        if let share = configuration.share, case .indexed = dataset { return runShared(share) }
        var tally = Tally()
        var epoch = configuration.startEpoch
        var start = configuration.startPosition
        var epochsLeft = configuration.epochs
        while epochsLeft.map({ $0 > 0 }) ?? true {
            let stream = SampleStream(dataset: dataset, order: configuration.order, epoch: epoch, position: start,
                                      share: configuration.share)
            var pending: [(key: String, caption: String, image: RGBImage)] = []
            var batches = 0
            while let item = stream.next() {
                if queue.isCancelled { return }
                tally.seen += 1
                switch item {
                case .bad(let bad):
                    record(bad, in: &tally)
                case .sample(let sample):
                    switch SampleDecoder.decode(sample) {
                    case .success(let image): pending.append((sample.key, sample.caption, image))
                    case .failure(let bad): record(bad, in: &tally)
                    }
                }
                if tally.seen >= configuration.minimumItemsForBadCheck, let error = tooManyBad(tally) {
                    _ = queue.push(.failure(error))
                    return
                }
                if pending.count == configuration.batchSize {
                    guard send(pending, epoch: epoch, position: stream.position, tally: tally) else { return }
                    pending.removeAll(keepingCapacity: true)
                    batches += 1
                }
            }
            if !configuration.dropLast && !pending.isEmpty {
                guard send(pending, epoch: epoch, position: stream.position, tally: tally) else { return }
                batches += 1
            }
            if tally.seen > 0, let error = tooManyBad(tally) {
                _ = queue.push(.failure(error))
                return
            }
            // An epoch read from its start that gives no batch would give none ever again: stop
            // instead of spinning through empty epochs.
            if batches == 0 && start == 0 {
                let usable = stream.position - tally.counts.total
                _ = queue.push(.failure(DataError(
                    file: datasetName, at: "epoch \(epoch)",
                    "no batch: the epoch has \(stream.position) items, at most \(max(0, usable)) of them usable, "
                    + "fewer than the batch size \(configuration.batchSize)\(configuration.dropLast ? " (the last partial batch is dropped)" : "")")))
                return
            }
            epoch += 1
            start = 0
            epochsLeft = epochsLeft.map { $0 - 1 }
        }
        _ = queue.push(.end(tally.counts, itemsSeen: tally.seen))
    }

    /// Indexed data split between ranks (see `Configuration.share`).
    private func runShared(_ share: DataShare) {
        var tally = Tally()
        var epoch = configuration.startEpoch
        var start = configuration.startPosition
        var epochsLeft = configuration.epochs
        var index = 0  // global batches since the loader started: the owner of the one being filled is index % ranks
        while epochsLeft.map({ $0 > 0 }) ?? true {
            let stream = SampleStream(dataset: dataset, order: configuration.order, epoch: epoch, position: start)
            var pending: [TrainingSample] = []
            var batches = 0
            while let item = stream.next() {
                if queue.isCancelled { return }
                let owned = share.owns(index)
                if owned { tally.seen += 1 }
                switch item {
                case .bad(let bad):
                    if owned { record(bad, in: &tally) }
                case .sample(let sample):
                    if case .file(let path) = sample.image, !FileManager.default.fileExists(atPath: path) {
                        if owned { record(BadSample(key: sample.key, kind: .missingImage, detail: "\(path) does not exist"), in: &tally) }
                    } else {
                        pending.append(sample)
                    }
                }
                if owned, tally.seen >= configuration.minimumItemsForBadCheck, let error = tooManyBad(tally) {
                    _ = queue.push(.failure(error))
                    return
                }
                guard pending.count == configuration.batchSize else { continue }
                let message: TrainingBatch
                if owned {
                    var decoded: [(key: String, caption: String, image: RGBImage)] = []
                    for sample in pending {
                        switch SampleDecoder.decode(sample) {
                        case .success(let image): decoded.append((sample.key, sample.caption, image))
                        case .failure(let bad): record(bad, in: &tally)
                        }
                    }
                    message = batch(decoded, epoch: epoch, position: stream.position, tally: tally)
                } else {
                    message = TrainingBatch(keys: [], captions: [], pixels: [], shape: [0], epoch: epoch, positionAfter: stream.position,
                                            badSamples: tally.counts, itemsSeen: tally.seen, isPlaceholder: true)
                }
                guard queue.push(.batch(message)) else { return }
                pending.removeAll(keepingCapacity: true)
                batches += 1
                index += 1
            }
            if tally.seen > 0, let error = tooManyBad(tally) {
                _ = queue.push(.failure(error))
                return
            }
            if batches == 0 && start == 0 {
                _ = queue.push(.failure(DataError(
                    file: datasetName, at: "epoch \(epoch)",
                    "no batch: the epoch has \(stream.position) items, fewer than the batch size \(configuration.batchSize) of them usable")))
                return
            }
            epoch += 1
            start = 0
            epochsLeft = epochsLeft.map { $0 - 1 }
        }
        _ = queue.push(.end(tally.counts, itemsSeen: tally.seen))
    }

    private func record(_ bad: BadSample, in tally: inout Tally) {
        tally.counts.add(bad.kind)
        if tally.examples.count < Self.examplesKept { tally.examples.append(bad) }
        log?(bad)
    }

    private func send(_ pending: [(key: String, caption: String, image: RGBImage)], epoch: Int, position: Int,
                      tally: Tally) -> Bool {
        queue.push(.batch(batch(pending, epoch: epoch, position: position, tally: tally)))
    }

    private func batch(_ pending: [(key: String, caption: String, image: RGBImage)], epoch: Int, position: Int,
                       tally: Tally) -> TrainingBatch {
        let stacked = pending.isEmpty ? (values: [Float](), shape: [0, 3, configuration.resolution, configuration.resolution])
                                      : preprocessor.processBatch(pending.map(\.image))
        return TrainingBatch(keys: pending.map(\.key), captions: pending.map(\.caption), pixels: stacked.values,
                             shape: stacked.shape, epoch: epoch, positionAfter: position,
                             badSamples: tally.counts, itemsSeen: tally.seen)
    }

    private func tooManyBad(_ tally: Tally) -> DataError? {
        let bad = tally.counts.total
        guard Double(bad) > configuration.maximumBadFraction * Double(tally.seen) else { return nil }
        let share = (Double(bad) / Double(tally.seen) * 1000).rounded() / 10
        let limit = (configuration.maximumBadFraction * 1000).rounded() / 10
        let examples = tally.examples.map(\.description).joined(separator: "; ")
        return DataError(file: datasetName,
                         "too many bad samples: \(bad) of \(tally.seen) items seen (\(share)%) are bad, over the limit of \(limit)%; "
                         + "by kind: \(tally.counts); for example: \(examples)")
    }

    private var datasetName: String {
        switch dataset {
        case .indexed(let indexed): return indexed.source
        case .sharded(let sharded):
            return sharded.shards.count == 1 ? (sharded.shards.first ?? "") : "\(sharded.shards.count) shards"
        }
    }
}

/// Turns a sample's image into pixels, or says which kind of bad sample it is.
enum SampleDecoder {
    static func decode(_ sample: TrainingSample) -> Result<RGBImage, BadSample> {
        do {
            switch sample.image {
            case .file(let path):
                guard FileManager.default.fileExists(atPath: path) else {
                    return .failure(BadSample(key: sample.key, kind: .missingImage, detail: "\(path) does not exist"))
                }
                do {
                    return .success(try ImageDecoder.decode(path: path))
                } catch let error as ImagingError {
                    guard case .unrecognizedFormat = error,
                          isWebP(FileHandle(forReadingAtPath: path).flatMap { try? $0.read(upToCount: 12) } ?? Data()) else { throw error }
                    return .failure(BadSample(key: sample.key, kind: .unsupportedImage,
                                              detail: "\(path) is WebP, which the image decoder does not read (JPEG and PNG only)"))
                }
            case .bytes(let data, let name):
                if isWebP(data) {
                    return .failure(BadSample(key: sample.key, kind: .unsupportedImage,
                                              detail: "\(name) is WebP, which the image decoder does not read (JPEG and PNG only)"))
                }
                return .success(try ImageDecoder.decode(data: data, source: name))
            }
        } catch let error as ImagingError {
            return .failure(BadSample(key: sample.key, kind: kind(of: error), detail: error.description))
        } catch {
            return .failure(BadSample(key: sample.key, kind: .undecodableImage, detail: "\(error)"))
        }
    }

    static func kind(of error: ImagingError) -> BadSampleKind {
        switch error {
        case .unreadableFile: return .unreadableImage
        case .unrecognizedFormat, .corruptImage, .invalidImage, .invalidParameter: return .undecodableImage
        case .unsupportedImage, .imageTooLarge, .outOfMemory: return .unsupportedImage
        }
    }

    /// RIFF....WEBP
    static func isWebP(_ data: Data) -> Bool {
        data.count >= 12 && data.prefix(4).elementsEqual("RIFF".utf8) && data.dropFirst(8).prefix(4).elementsEqual("WEBP".utf8)
    }
}
