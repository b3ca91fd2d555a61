/// The order samples are seen in, per epoch. Indexed layouts: a seeded permutation of all
/// records. Webdataset: a seeded shard order, and within each shard a shuffle buffer (fill
/// `shuffleBuffer` items, then each new item swaps with a random one, which is yielded).
/// Each epoch's randomness is derived from (seed, epoch) through SplitMix64, so an epoch's
/// order does not depend on what happened in earlier epochs.
public struct DataOrder: Sendable, Equatable {
    public var seed: UInt64
    /// false: file order (shards in list order, no buffer), e.g. for evaluation.
    public var shuffle: Bool
    public var shuffleBuffer: Int

    public init(seed: UInt64, shuffle: Bool = true, shuffleBuffer: Int = 64) {
        self.seed = seed
        self.shuffle = shuffle
        self.shuffleBuffer = max(1, shuffleBuffer)
    }

    // Purposes keep the streams for records, shards and buffers apart.
    private enum Purpose: UInt64 { case records = 1, shards = 2, buffer = 3 }

    /// The order of `count` records in `epoch`.
    public func permutation(count: Int, epoch: Int) -> [Int] {
        permutation(count: count, epoch: epoch, purpose: .records)
    }

    /// The order of `count` shards in `epoch`.
    public func shardOrder(count: Int, epoch: Int) -> [Int] {
        permutation(count: count, epoch: epoch, purpose: .shards)
    }

    private func permutation(count: Int, epoch: Int, purpose: Purpose) -> [Int] {
        var order = Array(0..<max(0, count))
        guard shuffle else { return order }
        var random = SeededGenerator(seed: SeedMixer.derive(seed, UInt64(bitPattern: Int64(epoch)), purpose.rawValue))
        random.shuffle(&order)
        return order
    }

    /// The shuffle buffer's generator for the `slot`-th shard of the epoch's order.
    func bufferGenerator(epoch: Int, slot: Int) -> SeededGenerator {
        SeededGenerator(seed: SeedMixer.derive(seed, UInt64(bitPattern: Int64(epoch)), Purpose.buffer.rawValue,
                                                UInt64(bitPattern: Int64(slot))))
    }
}

/// The items of one epoch in `DataOrder`'s order, starting after `position` items (the number
/// already consumed in this epoch): resuming at P yields exactly what an uninterrupted epoch
/// yields after its first P items. Webdataset streams get there by reading (not decoding) the
/// skipped items again. Bad items count as positions like good ones.
public final class SampleStream: Sequence, IteratorProtocol {
    public let epoch: Int
    /// Items consumed in this epoch so far, including skipped ones.
    public private(set) var position: Int = 0

    private let source: Source

    private enum Source {
        case indexed(IndexedDataset, order: [Int])
        case sharded(ShardCursor)
    }

    /// `share`: webdataset only, the shards at this rank's places of the epoch's shard order.
    public init(dataset: TrainingDataset, order: DataOrder, epoch: Int, position start: Int = 0, share: DataShare? = nil) {
        self.epoch = epoch
        switch dataset {
        case .indexed(let indexed):
            source = .indexed(indexed, order: order.permutation(count: indexed.items.count, epoch: epoch))
            position = Swift.min(Swift.max(0, start), indexed.items.count)
        case .sharded(let sharded):
            source = .sharded(ShardCursor(dataset: sharded, order: order, epoch: epoch, share: share))
            while position < start, next() != nil {}
        }
    }

    public func next() -> DataItem? {
        let item: DataItem?
        switch source {
        case .indexed(let dataset, let order):
            item = position < order.count ? dataset.items[order[position]] : nil
        case .sharded(let cursor):
            item = cursor.next()
        }
        if item != nil { position += 1 }
        return item
    }
}

/// Walks the epoch's shard order, each shard through its own shuffle buffer.
final class ShardCursor {
    private let dataset: ShardedDataset
    private let order: DataOrder
    private let epoch: Int
    private let shardOrder: [Int]
    /// The places of `shardOrder` this cursor reads (all, or one rank's share).
    private let slots: [Int]
    private var place = -1
    private var current: ShuffleBuffer?

    init(dataset: ShardedDataset, order: DataOrder, epoch: Int, share: DataShare? = nil) {
        self.dataset = dataset
        self.order = order
        self.epoch = epoch
        self.shardOrder = order.shardOrder(count: dataset.shards.count, epoch: epoch)
        self.slots = shardOrder.indices.filter { share?.owns($0) ?? true }
    }

    func next() -> DataItem? {
        while true {
            if let item = current?.next() { return item }
            place += 1
            guard place < slots.count else {
                current = nil
                return nil
            }
            // The buffer's randomness follows the shard's place in the epoch order, whoever reads it.
            let slot = slots[place]
            let items = dataset.items(ofShard: shardOrder[slot])
            current = ShuffleBuffer(items, capacity: order.shuffle ? order.shuffleBuffer : 1,
                                    random: order.bufferGenerator(epoch: epoch, slot: slot))
        }
    }
}

/// webdataset's shuffle: keep up to `capacity` items; once full, each incoming item is added,
/// swapped with a random one, and the last is yielded; at the end the rest drain at random.
/// Capacity 1 keeps file order.
struct ShuffleBuffer {
    private let source: ShardItems
    private let capacity: Int
    private var random: SeededGenerator
    private var buffer: [DataItem] = []
    private var sourceDone = false

    init(_ source: ShardItems, capacity: Int, random: SeededGenerator) {
        self.source = source
        self.capacity = capacity
        self.random = random
    }

    mutating func next() -> DataItem? {
        while !sourceDone && buffer.count < capacity {
            guard let item = source.next() else {
                sourceDone = true
                break
            }
            buffer.append(item)
        }
        guard !buffer.isEmpty else { return nil }
        buffer.swapAt(random.below(buffer.count), buffer.count - 1)  // below(1) is 0 and draws nothing
        return buffer.removeLast()
    }
}
