extension Tensor {
    func normalizedAxis(_ axis: Int, op: String) throws -> Int {
        let resolved = axis < 0 ? axis + rank : axis
        guard resolved >= 0, resolved < max(rank, 1) else {
            throw TensorError.invalidArgument(op: op, detail: "axis \(axis) out of range for shape \(shape)")
        }
        return resolved
    }

    /// Same elements, new shape (one entry may be -1). Shares storage: no copy.
    public func reshape(_ newShape: [Int]) throws -> Tensor {
        var resolved = newShape
        let inferred = newShape.indices.filter { newShape[$0] == -1 }
        let known = newShape.filter { $0 != -1 }.reduce(1, *)
        guard inferred.count <= 1, newShape.allSatisfy({ $0 >= -1 }) else {
            throw TensorError.invalidArgument(op: "reshape", detail: "invalid target shape \(newShape)")
        }
        if let axis = inferred.first {
            guard known > 0, count % known == 0 else {
                throw TensorError.shapeMismatch(op: "reshape", detail: "cannot infer -1 in \(newShape) for \(count) elements of \(shape)")
            }
            resolved[axis] = count / known
        }
        guard Tensor.elementCount(resolved) == count else {
            throw TensorError.shapeMismatch(op: "reshape", detail: "\(shape) (\(count) elements) to \(newShape)")
        }
        let sourceShape = shape
        let output = Tensor(shape: resolved, storage: storage)
        return Tensor.record("reshape", output, inputs: [self]) { g, _ in
            [Tensor(shape: sourceShape, storage: g.storage)]
        }
    }

    /// Axes reordered (torch.permute); materialises a contiguous copy.
    public func permute(_ order: [Int]) throws -> Tensor {
        let resolved = try order.map { try normalizedAxis($0, op: "permute") }
        guard resolved.count == rank, Set(resolved).count == rank else {
            throw TensorError.invalidArgument(op: "permute", detail: "\(order) is not a permutation of the \(rank) axes of \(shape)")
        }
        var inverse = [Int](repeating: 0, count: rank)
        for (position, axis) in resolved.enumerated() { inverse[axis] = position }
        let output = permutedCopy(resolved)
        return Tensor.record("permute", output, inputs: [self]) { g, _ in [g.permutedCopy(inverse)] }
    }

    public func transpose(_ first: Int, _ second: Int) throws -> Tensor {
        var order = Array(0..<rank)
        let a = try normalizedAxis(first, op: "transpose"), b = try normalizedAxis(second, op: "transpose")
        order.swapAt(a, b)
        return try permute(order)
    }

    func permutedCopy(_ order: [Int]) -> Tensor {
        if order == Array(0..<rank) { return detached }
        let sourceStrides = Broadcast.contiguousStrides(shape)
        return gathered(shape: order.map { shape[$0] }, strides: order.map { sourceStrides[$0] })
    }

    /// Elements `start..<start+length` along `axis` (torch.narrow), as a contiguous copy.
    public func narrow(axis: Int, start: Int, length: Int) throws -> Tensor {
        let a = try normalizedAxis(axis, op: "narrow")
        guard start >= 0, length >= 0, start + length <= shape[a] else {
            throw TensorError.invalidArgument(op: "narrow", detail: "range \(start)..<\(start + length) outside axis \(a) of \(shape)")
        }
        let outer = shape[..<a].reduce(1, *), inner = shape[(a + 1)...].reduce(1, *)
        var outShape = shape
        outShape[a] = length
        var output = Tensor(uninitializedShape: outShape)
        Tensor.copyBlocks(from: storage.pointer, sourceAxis: shape[a], to: output.storage.pointer, targetAxis: length,
                          offsetAlongAxis: start, length: length, outer: outer, inner: inner, sourceIsSlice: false)
        output.node = nil
        let sourceShape = shape
        return Tensor.record("narrow", output, inputs: [self]) { g, _ in
            var full = Tensor(zeros: sourceShape)
            Tensor.copyBlocks(from: g.storage.pointer, sourceAxis: length, to: full.storage.pointer, targetAxis: sourceShape[a],
                              offsetAlongAxis: start, length: length, outer: outer, inner: inner, sourceIsSlice: true)
            full.node = nil
            return [full]
        }
    }

    /// Moves `length·inner`-element blocks between a full tensor and a slice along one axis.
    /// sourceIsSlice == false: slice ← full[offset..]; true: full[offset..] ← slice.
    static func copyBlocks(from source: UnsafePointer<Float>, sourceAxis: Int, to target: UnsafeMutablePointer<Float>,
                           targetAxis: Int, offsetAlongAxis: Int, length: Int, outer: Int, inner: Int, sourceIsSlice: Bool) {
        let block = length * inner
        parallelFor(outer, grain: max(1, 16384 / max(block, 1))) { range in
            for o in range {
                if sourceIsSlice {
                    (target + (o * targetAxis + offsetAlongAxis) * inner).update(from: source + o * block, count: block)
                } else {
                    (target + o * block).update(from: source + (o * sourceAxis + offsetAlongAxis) * inner, count: block)
                }
            }
        }
    }

    /// This tensor repeated along broadcast axes to `target` (torch.expand, materialised).
    public func broadcast(to target: [Int]) throws -> Tensor {
        guard try Broadcast.shape(shape, target, op: "broadcast") == target else {
            throw TensorError.shapeMismatch(op: "broadcast", detail: "\(shape) does not broadcast to \(target)")
        }
        let sourceShape = shape
        return Tensor.record("broadcast", expanded(to: target), inputs: [self]) { g, _ in [g.summed(to: sourceShape)] }
    }

    /// Slices `indices` of `axis`, in that order, repeats allowed (torch.index_select).
    /// CLIP's text pooling picks each sequence's end token this way from a [B·L, D] view.
    public func indexSelect(axis: Int, indices: [Int]) throws -> Tensor {
        let a = try normalizedAxis(axis, op: "indexSelect")
        let length = shape[a]
        for (position, index) in indices.enumerated() where index < 0 || index >= length {
            throw TensorError.indexOutOfRange(op: "indexSelect", index: index, bound: length, position: position)
        }
        let outer = shape[..<a].reduce(1, *), inner = shape[(a + 1)...].reduce(1, *)
        var outShape = shape
        outShape[a] = indices.count
        var output = Tensor(uninitializedShape: outShape)
        let source = storage.pointer, target = output.storage.pointer
        for o in 0..<outer {
            for (slot, index) in indices.enumerated() {
                (target + (o * indices.count + slot) * inner).update(from: source + (o * length + index) * inner, count: inner)
            }
        }
        output.node = nil
        let sourceShape = shape
        return Tensor.record("indexSelect", output, inputs: [self]) { g, _ in
            var dx = Tensor(zeros: sourceShape)
            let pg = g.storage.pointer, pd = dx.storage.pointer
            for o in 0..<outer {
                for (slot, index) in indices.enumerated() {
                    let from = pg + (o * indices.count + slot) * inner, to = pd + (o * length + index) * inner
                    for j in 0..<inner { to[j] += from[j] }
                }
            }
            dx.node = nil
            return [dx]
        }
    }

    /// Pieces of the given sizes along `axis` (torch.split with a list).
    public func split(sizes: [Int], axis: Int) throws -> [Tensor] {
        let a = try normalizedAxis(axis, op: "split")
        guard sizes.allSatisfy({ $0 >= 0 }), sizes.reduce(0, +) == shape[a] else {
            throw TensorError.invalidArgument(op: "split", detail: "sizes \(sizes) do not sum to axis \(a) of \(shape)")
        }
        var start = 0
        return try sizes.map { size in
            defer { start += size }
            return try narrow(axis: a, start: start, length: size)
        }
    }

    /// `chunks` pieces of ceil(n/chunks) elements along `axis`, the last possibly smaller (torch.chunk).
    public func chunk(_ chunks: Int, axis: Int) throws -> [Tensor] {
        let a = try normalizedAxis(axis, op: "chunk")
        guard chunks > 0 else { throw TensorError.invalidArgument(op: "chunk", detail: "chunk count \(chunks) must be positive") }
        let size = (shape[a] + chunks - 1) / chunks
        guard size > 0 else { return [self] }
        var sizes: [Int] = []
        var remaining = shape[a]
        while remaining > 0 {
            sizes.append(min(size, remaining))
            remaining -= size
        }
        return try split(sizes: sizes, axis: a)
    }
}

/// Tensors joined along `axis`; all other axes must agree.
public func concat(_ tensors: [Tensor], axis: Int) throws -> Tensor {
    guard let first = tensors.first else { throw TensorError.invalidArgument(op: "concat", detail: "no tensors given") }
    let a = try first.normalizedAxis(axis, op: "concat")
    for t in tensors {
        var expected = first.shape, actual = t.shape
        guard actual.count == expected.count else {
            throw TensorError.shapeMismatch(op: "concat", detail: "\(t.shape) vs \(first.shape)")
        }
        expected[a] = 0
        actual[a] = 0
        guard actual == expected else { throw TensorError.shapeMismatch(op: "concat", detail: "\(t.shape) vs \(first.shape) off axis \(a)") }
    }
    let lengths = tensors.map { $0.shape[a] }
    let total = lengths.reduce(0, +)
    let outer = first.shape[..<a].reduce(1, *), inner = first.shape[(a + 1)...].reduce(1, *)
    var outShape = first.shape
    outShape[a] = total
    var output = Tensor(uninitializedShape: outShape)
    var offset = 0
    for (t, length) in zip(tensors, lengths) {
        Tensor.copyBlocks(from: t.storage.pointer, sourceAxis: length, to: output.storage.pointer, targetAxis: total,
                          offsetAlongAxis: offset, length: length, outer: outer, inner: inner, sourceIsSlice: true)
        offset += length
    }
    output.node = nil
    return Tensor.record("concat", output, inputs: tensors) { g, needs in
        var start = 0
        return try lengths.enumerated().map { index, length in
            defer { start += length }
            return needs[index] ? try g.narrow(axis: a, start: start, length: length) : nil
        }
    }
}

/// Zero padding of the last two axes (height, width): (top, bottom, left, right), asymmetric allowed.
public func pad2d(_ x: Tensor, top: Int, bottom: Int, left: Int, right: Int) throws -> Tensor {
    guard x.rank >= 2, top >= 0, bottom >= 0, left >= 0, right >= 0 else {
        throw TensorError.invalidArgument(op: "pad2d", detail: "input \(x.shape) with padding (\(top), \(bottom), \(left), \(right)); need rank ≥ 2 and non-negative padding")
    }
    let h = x.shape[x.rank - 2], w = x.shape[x.rank - 1]
    let ho = h + top + bottom, wo = w + left + right
    let planes = x.count / max(h * w, 1)
    var output = Tensor(zeros: Array(x.shape.dropLast(2)) + [ho, wo])
    let source = x.storage.pointer, target = output.storage.pointer
    parallelFor(planes, grain: max(1, 8192 / max(h * w, 1))) { range in
        for p in range {
            for row in 0..<h {
                (target + p * ho * wo + (row + top) * wo + left).update(from: source + p * h * w + row * w, count: w)
            }
        }
    }
    output.node = nil
    let inputShape = x.shape
    return Tensor.record("pad2d", output, inputs: [x]) { g, _ in
        var dx = Tensor(uninitializedShape: inputShape)
        let pg = g.storage.pointer, pd = dx.storage.pointer
        parallelFor(planes, grain: max(1, 8192 / max(h * w, 1))) { range in
            for p in range {
                for row in 0..<h {
                    (pd + p * h * w + row * w).update(from: pg + p * ho * wo + (row + top) * wo + left, count: w)
                }
            }
        }
        dx.node = nil
        return [dx]
    }
}

/// Nearest-neighbour ×2 upsampling of the last two axes (F.interpolate(scale_factor=2, mode="nearest")).
public func upsampleNearest2x(_ x: Tensor) throws -> Tensor {
    guard x.rank >= 2 else { throw TensorError.invalidArgument(op: "upsampleNearest2x", detail: "input \(x.shape) needs rank ≥ 2") }
    let h = x.shape[x.rank - 2], w = x.shape[x.rank - 1]
    let planes = x.count / max(h * w, 1)
    var output = Tensor(uninitializedShape: Array(x.shape.dropLast(2)) + [2 * h, 2 * w])
    let source = x.storage.pointer, target = output.storage.pointer
    parallelFor(planes, grain: max(1, 4096 / max(h * w, 1))) { range in
        for p in range {
            let input = source + p * h * w, out = target + p * 4 * h * w
            for row in 0..<h {
                let upper = out + 2 * row * 2 * w
                for col in 0..<w {
                    let v = input[row * w + col]
                    upper[2 * col] = v
                    upper[2 * col + 1] = v
                }
                (upper + 2 * w).update(from: upper, count: 2 * w)
            }
        }
    }
    output.node = nil
    let inputShape = x.shape
    return Tensor.record("upsampleNearest2x", output, inputs: [x]) { g, _ in
        var dx = Tensor(uninitializedShape: inputShape)
        let pg = g.storage.pointer, pd = dx.storage.pointer
        parallelFor(planes, grain: max(1, 4096 / max(h * w, 1))) { range in
            for p in range {
                let grad = pg + p * 4 * h * w, out = pd + p * h * w
                for row in 0..<h {
                    let upper = grad + 2 * row * 2 * w, lower = upper + 2 * w
                    for col in 0..<w {
                        out[row * w + col] = upper[2 * col] + upper[2 * col + 1] + lower[2 * col] + lower[2 * col + 1]
                    }
                }
            }
        }
        dx.node = nil
        return [dx]
    }
}

/// Tensors of equal shape joined along a new axis (torch.stack).
public func stack(_ tensors: [Tensor], axis: Int = 0) throws -> Tensor {
    guard let first = tensors.first else { throw TensorError.invalidArgument(op: "stack", detail: "no tensors given") }
    let resolved = axis < 0 ? axis + first.rank + 1 : axis
    guard resolved >= 0, resolved <= first.rank else {
        throw TensorError.invalidArgument(op: "stack", detail: "axis \(axis) out of range for rank \(first.rank) + 1")
    }
    var expanded = first.shape
    expanded.insert(1, at: resolved)
    return try concat(tensors.map { t in
        guard t.shape == first.shape else { throw TensorError.shapeMismatch(op: "stack", detail: "\(t.shape) vs \(first.shape)") }
        return try t.reshape(expanded)
    }, axis: resolved)
}
