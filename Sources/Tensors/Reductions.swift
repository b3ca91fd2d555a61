extension Tensor {
    /// Sum over `axes` (all axes when nil), keeping them as size 1 when `keepDims`.
    public func sum(axes: [Int]? = nil, keepDims: Bool = false) throws -> Tensor {
        let reduced = try Set((axes ?? Array(0..<rank)).map { try normalizedAxis($0, op: "sum") })
        var kept = shape
        for axis in reduced { kept[axis] = 1 }
        let finalShape = keepDims ? kept : shape.indices.filter { !reduced.contains($0) }.map { shape[$0] }
        let total = reduceSum(keeping: kept)
        let output = Tensor(shape: finalShape, storage: total.storage)
        let inputShape = shape
        return Tensor.record("sum", output, inputs: [self]) { g, _ in
            [Tensor(shape: kept, storage: g.storage).expanded(to: inputShape)]
        }
    }

    /// Mean over `axes` (all axes when nil).
    public func mean(axes: [Int]? = nil, keepDims: Bool = false) throws -> Tensor {
        let reduced = try Set((axes ?? Array(0..<rank)).map { try normalizedAxis($0, op: "mean") })
        let n = reduced.reduce(1) { $0 * shape[$1] }
        return try sum(axes: Array(reduced), keepDims: keepDims) / Float(max(n, 1))
    }

    /// Index of the largest element along `axis`, first occurrence on ties (torch.argmax), flattened
    /// in row-major order of the remaining axes. NaN counts as the largest, like torch.
    public func argmax(axis: Int) throws -> [Int] {
        let a = try normalizedAxis(axis, op: "argmax")
        guard shape[a] > 0 else { throw TensorError.invalidArgument(op: "argmax", detail: "axis \(a) of \(shape) is empty") }
        let outer = shape[..<a].reduce(1, *), length = shape[a], inner = shape[(a + 1)...].reduce(1, *)
        let p = storage.pointer
        var result = [Int](repeating: 0, count: outer * inner)
        for o in 0..<outer {
            for i in 0..<inner {
                let base = p + o * length * inner + i
                var best = 0
                var bestValue = base[0]
                if !bestValue.isNaN {
                    for j in 1..<max(length, 1) where j < length {
                        let v = base[j * inner]
                        if v.isNaN { best = j; break }
                        if v > bestValue { best = j; bestValue = v }
                    }
                }
                result[o * inner + i] = best
            }
        }
        return result
    }
}

/// Rows of `table` [vocabulary, width] picked by `ids` (laid out as `idsShape`); output idsShape + [width].
public func embedding(ids: [Int], idsShape: [Int], table: Tensor) throws -> Tensor {
    guard table.rank == 2 else { throw TensorError.invalidArgument(op: "embedding", detail: "table \(table.shape) must be [vocabulary, width]") }
    guard Tensor.elementCount(idsShape) == ids.count else {
        throw TensorError.shapeMismatch(op: "embedding", detail: "\(ids.count) ids for shape \(idsShape)")
    }
    let vocabulary = table.shape[0], width = table.shape[1]
    for (position, id) in ids.enumerated() where id < 0 || id >= vocabulary {
        throw TensorError.indexOutOfRange(op: "embedding", index: id, bound: vocabulary, position: position)
    }
    var output = Tensor(uninitializedShape: idsShape + [width])
    let source = table.storage.pointer, target = output.storage.pointer
    for (row, id) in ids.enumerated() { (target + row * width).update(from: source + id * width, count: width) }
    output.node = nil
    return Tensor.record("embedding", output, inputs: [table]) { g, _ in
        var grad = Tensor(zeros: [vocabulary, width])
        let pg = g.storage.pointer, pd = grad.storage.pointer
        for (row, id) in ids.enumerated() {
            let destination = pd + id * width, incoming = pg + row * width
            for j in 0..<width { destination[j] += incoming[j] }
        }
        grad.node = nil
        return [grad]
    }
}

/// x / max(‖x‖₂, eps) along `axis` (torch.nn.functional.normalize with p=2).
public func l2Normalize(_ x: Tensor, axis: Int = -1, eps: Float = 1e-12) throws -> Tensor {
    let norm = sqrt(try (x * x).sum(axes: [axis], keepDims: true))
    return try x / clampMin(norm, eps)
}

/// mean((a - b)²) over all elements.
public func mseLoss(_ a: Tensor, _ b: Tensor) throws -> Tensor {
    let difference = try a - b
    return try (difference * difference).mean()
}
