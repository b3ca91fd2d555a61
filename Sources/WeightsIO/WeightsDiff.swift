import Foundation

/// What differs between two weight stores: tensors only in one, and for tensors in both, dtype and
/// shape changes and how far the values moved. Values are streamed in chunks straight from the
/// (memory-mapped) files, tensors are compared in parallel, and each chunk's pages are dropped once read,
/// so two multi-GB checkpoints are compared without copying either into memory.
public struct WeightsDiff: Sendable {
    /// A tensor present on one side only.
    public struct Tensor: Sendable, Equatable {
        public let name: String
        public let dtype: DType
        public let shape: [Int]
    }

    /// A tensor present on both sides.
    public struct Pair: Sendable, Equatable {
        public let name: String
        public let dtypeA: DType
        public let dtypeB: DType
        public let shapeA: [Int]
        public let shapeB: [Int]
        /// Value statistics, nil when the shapes differ (or a dtype has no numeric comparison).
        public let values: ValueDifference?
        /// Why `values` is nil.
        public let notCompared: String?

        public var dtypeChanged: Bool { dtypeA != dtypeB }
        public var shapeChanged: Bool { shapeA != shapeB }
        /// Same dtype, shape and every value.
        public var isIdentical: Bool { !dtypeChanged && !shapeChanged && values?.changedElements == 0 }
    }

    /// How the values of B differ from those of A, element by element in row-major order.
    public struct ValueDifference: Sendable, Equatable {
        public let elementCount: Int
        /// Elements whose values differ (NaN against NaN counts as equal; NaN against a number does not).
        public let changedElements: Int
        /// max |b − a| over elements where both are numbers.
        public let maxAbs: Double
        /// maxAbs / max |a|; nil when A is all zeros (then any change is infinitely relative).
        public let relative: Double?
        /// max |a|, the scale `relative` is measured against.
        public let maxAbsA: Double
    }

    public let onlyInA: [Tensor]
    public let onlyInB: [Tensor]
    /// In A's order.
    public let inBoth: [Pair]

    public var changed: [Pair] { inBoth.filter { !$0.isIdentical } }
    public var identicalCount: Int { inBoth.count - changed.count }
    public var hasDifferences: Bool { !onlyInA.isEmpty || !onlyInB.isEmpty || identicalCount != inBoth.count }

    public struct Options: Sendable {
        /// Only names for which this returns true take part (`--filter`).
        public var include: @Sendable (String) -> Bool = { _ in true }
        /// Worker threads comparing tensors side by side.
        public var threads = max(1, ProcessInfo.processInfo.activeProcessorCount)
        /// Elements per streamed chunk.
        public var chunkElements = 1 << 16
        /// Called after each tensor with (bytes compared so far, total bytes), from any thread.
        public var progress: (@Sendable (Int64, Int64) -> Void)?
        public init() {}
    }

    /// Compares `a` with `b`. Throws on a tensor whose view does not fit its storage (naming it).
    public static func compare(_ a: WeightStore, _ b: WeightStore, options: Options = Options()) throws -> WeightsDiff {
        let namesA = a.names.filter(options.include)
        let namesB = b.names.filter(options.include)
        let setA = Set(namesA)
        let setB = Set(namesB)
        let onlyA = namesA.filter { !setB.contains($0) }.compactMap { a[$0] }.map { Tensor(name: $0.name, dtype: $0.dtype, shape: $0.shape) }
        let onlyB = namesB.filter { !setA.contains($0) }.compactMap { b[$0] }.map { Tensor(name: $0.name, dtype: $0.dtype, shape: $0.shape) }
        let pairs: [(TensorRecord, TensorRecord)] = namesA.compactMap { name in
            guard let recordA = a[name], let recordB = b[name] else { return nil }
            return (recordA, recordB)
        }
        for (recordA, recordB) in pairs {
            try StridedGather.validate(recordA, file: a.sources.first ?? "")
            try StridedGather.validate(recordB, file: b.sources.first ?? "")
        }
        let total = pairs.reduce(Int64(0)) { $0 + Int64($1.0.byteCount) + Int64($1.1.byteCount) }
        let results = ResultSlots<Pair>(count: pairs.count)
        let next = WorkCounter()
        let done = WorkCounter()
        let workers = max(1, min(options.threads, pairs.count))
        // Largest tensors first, so no worker is left with one big tensor at the end.
        let order = pairs.indices.sorted { pairs[$0].0.byteCount > pairs[$1].0.byteCount }
        DispatchQueue.concurrentPerform(iterations: workers) { _ in
            let scratch = ChunkScratch(elements: options.chunkElements)
            while true {
                let position = next.increment()
                guard position < order.count else { break }
                let index = order[position]
                let (recordA, recordB) = pairs[index]
                results.set(index, comparePair(recordA, recordB, chunk: options.chunkElements, scratch: scratch))
                let bytes = done.add(recordA.byteCount + recordB.byteCount)
                options.progress?(Int64(bytes), total)
            }
        }
        return WeightsDiff(onlyInA: onlyA, onlyInB: onlyB, inBoth: results.values())
    }

    private static func comparePair(_ a: TensorRecord, _ b: TensorRecord, chunk: Int, scratch: ChunkScratch) -> Pair {
        func pair(_ values: ValueDifference?, _ reason: String?) -> Pair {
            Pair(name: a.name, dtypeA: a.dtype, dtypeB: b.dtype, shapeA: a.shape, shapeB: b.shape, values: values, notCompared: reason)
        }
        guard a.shape == b.shape else { return pair(nil, "the shapes differ") }
        let comparable = DTypeConversion.convertsToFloat32(a.dtype) && DTypeConversion.convertsToFloat32(b.dtype)
        guard comparable || a.dtype == b.dtype else {
            return pair(nil, "\(a.dtype.rawValue) and \(b.dtype.rawValue) have no common numeric form")
        }
        var statistics = RunningDifference()
        let count = a.elementCount
        var start = 0
        while start < count {
            let elements = start..<min(count, start + chunk)
            let bytesA = scratch.gathered(a, elements: elements, side: 0)
            let bytesB = scratch.gathered(b, elements: elements, side: 1)
            if a.dtype == b.dtype, bytesA.count == bytesB.count, let baseA = bytesA.baseAddress, let baseB = bytesB.baseAddress,
               memcmp(baseA, baseB, bytesA.count) == 0 {
                // Identical bytes: only the scale of A is still needed.
                if comparable, let floats = scratch.floats(bytesA, dtype: a.dtype, side: 0) {
                    statistics.addUnchanged(floats)
                }
            } else if comparable, let floatsA = scratch.floats(bytesA, dtype: a.dtype, side: 0),
                      let floatsB = scratch.floats(bytesB, dtype: b.dtype, side: 1) {
                statistics.add(floatsA, floatsB)
            } else {
                statistics.addBytewise(bytesA, bytesB, elementSize: a.dtype.byteSize)
            }
            start = elements.upperBound
        }
        // Streaming: this process's copy of the pages goes once the tensor is compared (the page cache keeps them).
        for record in [a, b] where record.storage.owner.isFileMapping {
            MappedFile.releaseResidentPages(of: record.storage.owner, range: record.storage.range)
        }
        return pair(statistics.result(elementCount: count, numeric: comparable), nil)
    }
}

/// Max-abs, changed count and max |a| accumulated chunk by chunk.
private struct RunningDifference {
    var changed = 0
    var maxAbs: Float = 0
    var maxAbsA: Float = 0

    mutating func add(_ a: UnsafeBufferPointer<Float>, _ b: UnsafeBufferPointer<Float>) {
        var changed = 0
        var maxAbs = self.maxAbs
        var maxAbsA = self.maxAbsA
        for i in 0..<a.count {
            let x = a[i], y = b[i]
            let magnitude = abs(x)
            if magnitude > maxAbsA { maxAbsA = magnitude }   // false for NaN
            if x != y {
                if x.isNaN && y.isNaN { continue }
                changed += 1
                let delta = abs(y - x)
                if delta > maxAbs { maxAbs = delta }          // NaN and inf − inf never raise it
            }
        }
        self.changed += changed
        self.maxAbs = maxAbs
        self.maxAbsA = maxAbsA
    }

    mutating func addUnchanged(_ a: UnsafeBufferPointer<Float>) {
        var maxAbsA = self.maxAbsA
        for x in a { let magnitude = abs(x); if magnitude > maxAbsA { maxAbsA = magnitude } }
        self.maxAbsA = maxAbsA
    }

    mutating func addBytewise(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer, elementSize: Int) {
        guard elementSize > 0, let baseA = a.baseAddress, let baseB = b.baseAddress else { return }
        for offset in stride(from: 0, to: min(a.count, b.count), by: elementSize)
        where memcmp(baseA + offset, baseB + offset, elementSize) != 0 {
            changed += 1
        }
    }

    func result(elementCount: Int, numeric: Bool) -> WeightsDiff.ValueDifference {
        let maxAbs = Double(numeric ? maxAbs : 0)
        let scale = Double(maxAbsA)
        return WeightsDiff.ValueDifference(elementCount: elementCount, changedElements: changed, maxAbs: maxAbs,
                                           relative: scale > 0 ? maxAbs / scale : (maxAbs == 0 && changed == 0 ? 0 : nil),
                                           maxAbsA: scale)
    }
}

/// Per-worker buffers: a chunk of each side packed in its dtype, and as Float32.
private final class ChunkScratch {
    private let packed: [UnsafeMutableRawBufferPointer]
    private let floats: [UnsafeMutableBufferPointer<Float>]

    init(elements: Int) {
        packed = (0..<2).map { _ in UnsafeMutableRawBufferPointer.allocate(byteCount: elements * 8, alignment: 64) }
        floats = (0..<2).map { _ in UnsafeMutableBufferPointer<Float>.allocate(capacity: elements) }
    }

    deinit {
        packed.forEach { $0.deallocate() }
        floats.forEach { $0.deallocate() }
    }

    /// The bytes of `elements` of `record` in row-major order: a slice of the mapping when contiguous.
    func gathered(_ record: TensorRecord, elements: Range<Int>, side: Int) -> UnsafeRawBufferPointer {
        let size = record.dtype.byteSize
        if record.shape.isEmpty || record.isContiguous, let base = record.storage.buffer.baseAddress {
            let start = (record.storageOffset + elements.lowerBound) * size
            return UnsafeRawBufferPointer(start: base + start, count: elements.count * size)
        }
        guard let destination = packed[side].baseAddress else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        StridedGather.gather(record, elements: elements, into: destination)
        return UnsafeRawBufferPointer(start: destination, count: elements.count * size)
    }

    func floats(_ bytes: UnsafeRawBufferPointer, dtype: DType, side: Int) -> UnsafeBufferPointer<Float>? {
        let count = bytes.count / max(dtype.byteSize, 1)
        let destination = UnsafeMutableBufferPointer(rebasing: floats[side][0..<count])
        guard (try? DTypeConversion.toFloat32(bytes, dtype: dtype, into: destination)) != nil else { return nil }
        return UnsafeBufferPointer(destination)
    }
}

/// Results written by index from worker threads; each slot is written once.
private final class ResultSlots<Value: Sendable>: @unchecked Sendable {
    private var slots: [Value?]
    private let lock = NSLock()
    init(count: Int) { slots = Array(repeating: nil, count: count) }
    func set(_ index: Int, _ value: Value) { lock.lock(); slots[index] = value; lock.unlock() }
    func values() -> [Value] { lock.lock(); defer { lock.unlock() }; return slots.compactMap { $0 } }
}

private final class WorkCounter: @unchecked Sendable {
    private var value = 0
    private let lock = NSLock()
    /// The value before adding one.
    func increment() -> Int { lock.lock(); defer { lock.unlock() }; value += 1; return value - 1 }
    /// The value after adding `amount`.
    func add(_ amount: Int) -> Int { lock.lock(); defer { lock.unlock() }; value += amount; return value }
}
