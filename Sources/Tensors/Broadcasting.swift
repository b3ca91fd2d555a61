import Foundation

/// Numpy/torch broadcasting: shapes align on the right; a dimension of 1 (or a missing one) repeats.
enum Broadcast {
    static func shape(_ a: [Int], _ b: [Int], op: String) throws -> [Int] {
        let rank = max(a.count, b.count)
        var result = [Int](repeating: 1, count: rank)
        for axis in 0..<rank {
            let da = axis < rank - a.count ? 1 : a[axis - (rank - a.count)]
            let db = axis < rank - b.count ? 1 : b[axis - (rank - b.count)]
            guard da == db || da == 1 || db == 1 else {
                throw TensorError.shapeMismatch(op: op, detail: "cannot broadcast \(a) with \(b) (axis \(axis): \(da) vs \(db))")
            }
            result[axis] = da == 1 ? db : da
        }
        return result
    }

    /// Element strides of a contiguous tensor of `shape` when read as `target` (0 on repeated axes).
    static func strides(of shape: [Int], readAs target: [Int]) -> [Int] {
        let offset = target.count - shape.count
        var strides = [Int](repeating: 0, count: target.count)
        var running = 1
        for axis in stride(from: shape.count - 1, through: 0, by: -1) {
            strides[axis + offset] = shape[axis] == 1 ? 0 : running
            running *= shape[axis]
        }
        return strides
    }

    static func contiguousStrides(_ shape: [Int]) -> [Int] {
        var strides = [Int](repeating: 1, count: shape.count)
        var running = 1
        for axis in stride(from: shape.count - 1, through: 0, by: -1) {
            strides[axis] = running
            running *= shape[axis]
        }
        return strides
    }

    /// Offset of row `row` (all axes except the last) under `strides`, for a tensor of `shape`.
    @inline(__always)
    static func rowOffset(_ row: Int, shape: UnsafeBufferPointer<Int>, strides: UnsafeBufferPointer<Int>) -> Int {
        var remainder = row
        var offset = 0
        var axis = shape.count - 2
        while axis >= 0 {
            let dim = shape[axis]
            offset += (remainder % dim) * strides[axis]
            remainder /= dim
            axis -= 1
        }
        return offset
    }
}

extension Tensor {
    /// Reads this tensor as `target` (which it must broadcast to) into a new contiguous tensor.
    func expanded(to target: [Int]) -> Tensor {
        if shape == target { return self.detached }
        return gathered(shape: target, strides: Broadcast.strides(of: shape, readAs: target))
    }

    /// A new contiguous tensor of `shape` whose element at index i reads this storage at
    /// Σ iₖ·strides[k]: the one strided copy behind broadcasting and permutes.
    func gathered(shape outShape: [Int], strides readStrides: [Int]) -> Tensor {
        let result = Tensor(uninitializedShape: outShape)
        let inner = outShape.last ?? 1
        let rows = inner == 0 ? 0 : result.count / inner
        let step = readStrides.last ?? 0
        let source = storage.pointer, destination = result.storage.pointer
        outShape.withUnsafeBufferPointer { shapeBuffer in
            readStrides.withUnsafeBufferPointer { strideBuffer in
                parallelFor(rows, grain: max(1, 4096 / max(inner, 1))) { range in
                    for row in range {
                        let base = Broadcast.rowOffset(row, shape: shapeBuffer, strides: strideBuffer)
                        let out = destination + row * inner
                        for j in 0..<inner { out[j] = source[base + j * step] }
                    }
                }
            }
        }
        return result
    }

    /// Sums this tensor down to `target`, the inverse of broadcasting (used by backward passes).
    func summed(to target: [Int]) -> Tensor {
        if shape == target { return self.detached }
        // Reduce to the same rank with 1s on the summed axes, then drop the leading axes.
        let offset = shape.count - target.count
        var kept = [Int](repeating: 1, count: shape.count)
        for axis in 0..<target.count { kept[axis + offset] = target[axis] }
        let reduced = reduceSum(keeping: kept)
        return Tensor(shape: target, storage: reduced.storage)
    }

    /// Sums over every axis where `kept` is 1 and `shape` is not; `kept` has this tensor's rank.
    /// Rows are split among workers, each with its own Double accumulator (merged once), so long
    /// reductions (bias gradients over a whole batch) are parallel and exact to fp32.
    func reduceSum(keeping kept: [Int]) -> Tensor {
        let targetStrides = Broadcast.strides(of: kept, readAs: shape)
        let outCount = Tensor.elementCount(kept)
        let inner = shape.last ?? 1
        let rows = inner == 0 ? 0 : count / inner
        let innerStride = targetStrides.last ?? 0
        let source = storage.pointer
        let merged = SumAccumulator(count: outCount)
        // Private accumulators cost outCount each: only worth it when the output is small.
        let grain = outCount <= 1 << 16 ? max(1, 16384 / max(inner, 1)) : Int.max
        shape.withUnsafeBufferPointer { shapeBuffer in
            targetStrides.withUnsafeBufferPointer { strideBuffer in
                parallelFor(rows, grain: grain) { range in
                    var local = [Double](repeating: 0, count: outCount)
                    local.withUnsafeMutableBufferPointer { acc in
                        for row in range {
                            let base = Broadcast.rowOffset(row, shape: shapeBuffer, strides: strideBuffer)
                            let input = source + row * inner
                            if innerStride == 0 {
                                acc[base] += blockedSum(input, inner)
                            } else {
                                for j in 0..<inner { acc[base + j] += Double(input[j]) }
                            }
                        }
                    }
                    merged.add(local)
                }
            }
        }
        return Tensor(doubles: merged.values).reshapedUnchecked(kept)
    }
}

/// Adds per-worker partial sums under a lock.
final class SumAccumulator: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var values: [Double]
    init(count: Int) { values = [Double](repeating: 0, count: count) }
    func add(_ partial: [Double]) {
        lock.lock()
        defer { lock.unlock() }
        for i in values.indices { values[i] += partial[i] }
    }
}
