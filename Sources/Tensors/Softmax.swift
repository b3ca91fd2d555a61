import Foundation

/// Softmax-family lines: `outer × length × inner` with the reduced axis of stride `inner`.
private struct AxisLines {
    let outer: Int, length: Int, inner: Int
    init(_ x: Tensor, axis: Int) {
        outer = x.shape[..<axis].reduce(1, *)
        length = x.shape[axis]
        inner = x.shape[(axis + 1)...].reduce(1, *)
    }
    var count: Int { outer * inner }
    @inline(__always) func base(_ line: Int) -> Int { (line / inner) * length * inner + line % inner }
}

extension Tensor {
    /// softmax along `axis` with the max subtracted first.
    public func softmax(axis: Int = -1) throws -> Tensor {
        let a = try normalizedAxis(axis, op: "softmax")
        let lines = AxisLines(self, axis: a)
        var output = Tensor(uninitializedShape: shape)
        let px = storage.pointer, py = output.storage.pointer
        parallelFor(lines.count, grain: max(1, 2048 / max(lines.length, 1))) { range in
            for line in range {
                let b = lines.base(line), s = lines.inner
                if s == 1 {
                    _ = softmaxRow(from: px + b, to: py + b, lines.length)
                    continue
                }
                var maximum = -Float.infinity
                for j in 0..<lines.length { maximum = max(maximum, px[b + j * s]) }
                var total: Float = 0
                for j in 0..<lines.length {
                    let e = fastExp(px[b + j * s] - maximum)
                    py[b + j * s] = e
                    total += e
                }
                let inverse = 1 / total
                for j in 0..<lines.length { py[b + j * s] *= inverse }
            }
        }
        output.node = nil
        let saved = output
        return Tensor.record("softmax", output, inputs: [self]) { g, _ in
            // dx = y ⊙ (g − Σ g⊙y)
            var dx = Tensor(uninitializedShape: saved.shape)
            let y = saved.storage.pointer, pg = g.storage.pointer, pd = dx.storage.pointer
            parallelFor(lines.count, grain: max(1, 2048 / max(lines.length, 1))) { range in
                for line in range {
                    let b = lines.base(line), s = lines.inner
                    var dot: Float = 0
                    for j in 0..<lines.length { dot += pg[b + j * s] * y[b + j * s] }
                    for j in 0..<lines.length { pd[b + j * s] = y[b + j * s] * (pg[b + j * s] - dot) }
                }
            }
            dx.node = nil
            return [dx]
        }
    }

    /// log(softmax(x)) along `axis`, computed as x − max − log Σ exp(x − max).
    public func logSoftmax(axis: Int = -1) throws -> Tensor {
        let a = try normalizedAxis(axis, op: "logSoftmax")
        let lines = AxisLines(self, axis: a)
        var output = Tensor(uninitializedShape: shape)
        let px = storage.pointer, py = output.storage.pointer
        parallelFor(lines.count, grain: max(1, 2048 / max(lines.length, 1))) { range in
            for line in range {
                let b = lines.base(line), s = lines.inner
                var maximum = -Float.infinity
                for j in 0..<lines.length { maximum = max(maximum, px[b + j * s]) }
                var total: Float = 0
                for j in 0..<lines.length { total += fastExp(px[b + j * s] - maximum) }
                let shift = maximum + Foundation.log(total)
                for j in 0..<lines.length { py[b + j * s] = px[b + j * s] - shift }
            }
        }
        output.node = nil
        let saved = output
        return Tensor.record("logSoftmax", output, inputs: [self]) { g, _ in
            // dx = g − softmax ⊙ Σ g
            var dx = Tensor(uninitializedShape: saved.shape)
            let y = saved.storage.pointer, pg = g.storage.pointer, pd = dx.storage.pointer
            parallelFor(lines.count, grain: max(1, 2048 / max(lines.length, 1))) { range in
                for line in range {
                    let b = lines.base(line), s = lines.inner
                    var total: Float = 0
                    for j in 0..<lines.length { total += pg[b + j * s] }
                    for j in 0..<lines.length { pd[b + j * s] = pg[b + j * s] - fastExp(y[b + j * s]) * total }
                }
            }
            dx.node = nil
            return [dx]
        }
    }
}

/// Mean cross-entropy of `logits` [N, C] against class indices `targets` (N of them), as F.cross_entropy.
public func crossEntropy(_ logits: Tensor, targets: [Int]) throws -> Tensor {
    guard logits.rank == 2, logits.shape[0] == targets.count, logits.shape[0] > 0 else {
        throw TensorError.shapeMismatch(op: "crossEntropy", detail: "logits \(logits.shape) must be [N, C] with N = \(targets.count) targets, N > 0")
    }
    let classes = logits.shape[1]
    for (position, target) in targets.enumerated() where target < 0 || target >= classes {
        throw TensorError.indexOutOfRange(op: "crossEntropy", index: target, bound: classes, position: position)
    }
    let logProbabilities = try withNoGrad { try logits.logSoftmax(axis: 1) }
    let lp = logProbabilities.storage.pointer
    var total = 0.0
    for (row, target) in targets.enumerated() { total -= Double(lp[row * classes + target]) }
    let n = targets.count
    let output = Tensor.scalar(Float(total / Double(n)))
    let saved = logProbabilities.detached
    return Tensor.record("crossEntropy", output, inputs: [logits]) { g, _ in
        // d/dlogits = (softmax − onehot) / N, scaled by the upstream scalar.
        let scale = g.storage.pointer[0] / Float(n)
        var dx = saved.mapKernel { Foundation.exp($0) * scale }
        for (row, target) in targets.enumerated() { dx.storage.pointer[row * classes + target] -= scale }
        dx.node = nil
        return [dx]
    }
}
