import CTensorKernels
import Foundation

/// Layout shared by LayerNorm and GroupNorm: `segments` contiguous runs of `length` elements are each
/// normalised to zero mean and unit (biased) variance; within a segment, `channelsPerSegment` channels
/// of `spatial` consecutive elements each get their own affine weight and bias.
private struct NormLayout {
    let segments: Int          // rows (LayerNorm) or (batch, group) pairs (GroupNorm)
    let length: Int            // elements per segment
    let channelsPerSegment: Int
    let spatial: Int
    let channels: Int          // affine parameter count
    /// LayerNorm: each segment is a row whose elements map one-to-one onto the affine parameters.
    var isRowwise: Bool { channelsPerSegment == channels && spatial == 1 }

    /// Affine channel of the first element of local channel `local` in segment `s`.
    @inline(__always) func channel(segment s: Int, local: Int) -> Int { (s * channelsPerSegment) % channels + local }
}

/// Forward pass for both norms. Statistics use blocked sums combined in Double (`sds_moments`: two
/// passes for rows, one pilot-shifted pass for long groups), so groups of 10⁵ elements (UNet GroupNorm)
/// keep fp32 accuracy. Saves mean and 1/σ per segment for backward.
private func normalize(_ x: Tensor, weight: Tensor?, bias: Tensor?, eps: Float, layout: NormLayout, op: String) -> Tensor {
    var output = Tensor(uninitializedShape: x.shape)
    var statistics = Tensor(uninitializedShape: [layout.segments, 2])   // mean, 1/σ per segment
    let px = x.storage.pointer, py = output.storage.pointer, stats = statistics.storage.pointer
    let pw = weight?.storage.pointer, pb = bias?.storage.pointer
    // Segments pulled in small runs (a descheduled worker on a shared machine does not hold up the rest).
    let grain = max(1, 4096 / max(layout.length, 1))
    parallelWorkers(layout.segments, batch: max(grain, layout.segments / (4 * Threading.threadCount))) { next in
        while let range = next() { for s in range {
            let input = px + s * layout.length, out = py + s * layout.length
            var meanValue = 0.0, variance = 0.0
            if layout.length > 0 { sds_moments(input, layout.length, &meanValue, &variance) }
            let mean = Float(meanValue)
            let inverseStd = Float(1 / (variance + Double(eps)).squareRoot())
            stats[2 * s] = mean
            stats[2 * s + 1] = inverseStd
            if layout.isRowwise {
                // LayerNorm: the affine parameters run along the row.
                for j in 0..<layout.length {
                    out[j] = (input[j] - mean) * inverseStd * (pw?[j] ?? 1) + (pb?[j] ?? 0)
                }
            } else {
                for local in 0..<layout.channelsPerSegment {
                    let c = layout.channel(segment: s, local: local)
                    let scale = (pw?[c] ?? 1) * inverseStd, shift = pb?[c] ?? 0
                    let base = local * layout.spatial
                    sds_normalize_affine(input + base, out + base, layout.spatial, mean, scale, shift)
                }
            }
        } }
    }
    output.node = nil
    statistics.node = nil
    let savedX = x.detached, savedW = weight?.detached, savedStatistics = statistics
    var inputs = [x]
    if let weight { inputs.append(weight) }
    if let bias { inputs.append(bias) }
    let hasWeight = weight != nil, hasBias = bias != nil
    return Tensor.record(op, output, inputs: inputs) { g, needs in
        let needW = hasWeight && needs[1]
        let needB = hasBias && needs[hasWeight ? 2 : 1]
        let (dx, dw, db) = layout.isRowwise
            ? layerNormBackward(g, savedX, savedW, savedStatistics, layout: layout, needX: needs[0], needAffine: needW || needB)
            : groupNormBackward(g, savedX, savedW, savedStatistics, layout: layout, needX: needs[0], needAffine: needW || needB)
        var result: [Tensor?] = [dx]
        if hasWeight { result.append(needW ? dw : nil) }
        if hasBias { result.append(needB ? db : nil) }
        return result
    }
}

/// dx = (1/σ)·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)) with ĝ = g·w; dw = Σ g·x̂; db = Σ g.
private func groupNormBackward(_ g: Tensor, _ x: Tensor, _ weight: Tensor?, _ statistics: Tensor, layout: NormLayout,
                               needX: Bool, needAffine: Bool) -> (Tensor?, Tensor?, Tensor?) {
    var dx = Tensor(uninitializedShape: x.shape)
    let perSegment = layout.channelsPerSegment
    // Per (segment, local channel): Σ g·x̂ and Σ g. Small: 2·N·C values.
    var partials = [Double](repeating: 0, count: layout.segments * perSegment * 2)
    let px = x.storage.pointer, pg = g.storage.pointer, pd = dx.storage.pointer
    let pw = weight?.storage.pointer, stats = statistics.storage.pointer
    partials.withUnsafeMutableBufferPointer { partial in
        guard let partial = partial.baseAddress else { return }
        parallelFor(layout.segments, grain: max(1, 2048 / max(layout.length, 1))) { range in
            for s in range {
                let offset = s * layout.length
                let mean = stats[2 * s], inverseStd = stats[2 * s + 1]
                var sumD = 0.0, sumDX = 0.0
                for local in 0..<perSegment {
                    let base = offset + local * layout.spatial
                    let (sumG, sumGCentered) = blockedGradientSums(pg + base, px + base, layout.spatial, mean: mean)
                    let sumGX = sumGCentered * Double(inverseStd)
                    let w = Double(pw?[layout.channel(segment: s, local: local)] ?? 1)
                    sumD += sumG * w
                    sumDX += sumGX * w
                    partial[(s * perSegment + local) * 2] = sumGX
                    partial[(s * perSegment + local) * 2 + 1] = sumG
                }
                guard needX else { continue }
                let meanD = Float(sumD / Double(layout.length)), meanDX = Float(sumDX / Double(layout.length))
                for local in 0..<perSegment {
                    let w = pw?[layout.channel(segment: s, local: local)] ?? 1
                    let base = offset + local * layout.spatial
                    for j in base..<(base + layout.spatial) {
                        let xhat = (px[j] - mean) * inverseStd
                        pd[j] = inverseStd * (pg[j] * w - meanD - xhat * meanDX)
                    }
                }
            }
        }
    }
    dx.node = nil
    guard needAffine else { return (needX ? dx : nil, nil, nil) }
    var sumsW = [Double](repeating: 0, count: layout.channels), sumsB = sumsW
    for s in 0..<layout.segments {
        for local in 0..<perSegment {
            let c = layout.channel(segment: s, local: local)
            sumsW[c] += partials[(s * perSegment + local) * 2]
            sumsB[c] += partials[(s * perSegment + local) * 2 + 1]
        }
    }
    return (needX ? dx : nil, Tensor(doubles: sumsW), Tensor(doubles: sumsB))
}

/// LayerNorm backward: the row is the segment and each element its own channel, so dw/db are column
/// sums over rows, accumulated per worker and merged once.
private func layerNormBackward(_ g: Tensor, _ x: Tensor, _ weight: Tensor?, _ statistics: Tensor, layout: NormLayout,
                               needX: Bool, needAffine: Bool) -> (Tensor?, Tensor?, Tensor?) {
    var dx = Tensor(uninitializedShape: x.shape)
    let width = layout.length
    let px = x.storage.pointer, pg = g.storage.pointer, pd = dx.storage.pointer
    let affine = weight ?? Tensor(shape: [width], fill: 1)   // ones when absent: keeps the inner loops branch-free
    defer { withExtendedLifetime(affine) {} }
    let pw = affine.storage.pointer, stats = statistics.storage.pointer
    let merged = AffineGradientAccumulator(width: needAffine ? width : 0)
    parallelFor(layout.segments, grain: max(1, 2048 / max(width, 1))) { range in
        var accumulateW = [Float](repeating: 0, count: needAffine ? width : 0)
        var accumulateB = accumulateW
        accumulateW.withUnsafeMutableBufferPointer { accW in
            accumulateB.withUnsafeMutableBufferPointer { accB in
                for s in range {
                    let input = px + s * width, grad = pg + s * width, out = pd + s * width
                    let mean = stats[2 * s], inverseStd = stats[2 * s + 1]
                    var sumD: Float = 0, sumDX: Float = 0
                    for j in 0..<width {
                        let xhat = (input[j] - mean) * inverseStd
                        let gw = grad[j] * pw[j]
                        sumD += gw
                        sumDX += gw * xhat
                    }
                    if needAffine {
                        for j in 0..<width {
                            accW[j] += grad[j] * (input[j] - mean) * inverseStd
                            accB[j] += grad[j]
                        }
                    }
                    guard needX else { continue }
                    let meanD = sumD / Float(width), meanDX = sumDX / Float(width)
                    for j in 0..<width {
                        let xhat = (input[j] - mean) * inverseStd
                        out[j] = inverseStd * (grad[j] * pw[j] - meanD - xhat * meanDX)
                    }
                }
            }
        }
        if needAffine { merged.add(accumulateW, accumulateB) }
    }
    dx.node = nil
    guard needAffine else { return (needX ? dx : nil, nil, nil) }
    return (needX ? dx : nil, Tensor(doubles: merged.weight), Tensor(doubles: merged.bias))
}

/// Collects per-worker column sums under a lock (one merge per worker, not per row).
private final class AffineGradientAccumulator: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var weight: [Double]
    private(set) var bias: [Double]
    init(width: Int) {
        weight = [Double](repeating: 0, count: width)
        bias = weight
    }
    func add(_ w: [Float], _ b: [Float]) {
        lock.lock()
        defer { lock.unlock() }
        for j in w.indices {
            weight[j] += Double(w[j])
            bias[j] += Double(b[j])
        }
    }
}

extension Tensor {
    /// A rank-1 tensor from Double accumulators.
    init(doubles: [Double]) {
        self.init(uninitializedShape: [doubles.count])
        for (i, value) in doubles.enumerated() { storage.pointer[i] = Float(value) }
    }
}

/// LayerNorm over the last axis (torch.nn.functional.layer_norm with normalized_shape = [last]).
public func layerNorm(_ x: Tensor, weight: Tensor?, bias: Tensor?, eps: Float = 1e-5) throws -> Tensor {
    guard let width = x.shape.last, width > 0 else {
        throw TensorError.invalidArgument(op: "layerNorm", detail: "input \(x.shape) needs a non-empty last axis")
    }
    for (name, parameter) in [("weight", weight), ("bias", bias)] {
        if let parameter, parameter.shape != [width] {
            throw TensorError.shapeMismatch(op: "layerNorm", detail: "\(name) \(parameter.shape), expected [\(width)]")
        }
    }
    let layout = NormLayout(segments: x.count / width, length: width, channelsPerSegment: width, spatial: 1, channels: width)
    return normalize(x, weight: weight, bias: bias, eps: eps, layout: layout, op: "layerNorm")
}

/// GroupNorm over x [N, C, *spatial] with `groups` dividing C; weight and bias are per channel [C].
public func groupNorm(_ x: Tensor, groups: Int, weight: Tensor?, bias: Tensor?, eps: Float = 1e-5) throws -> Tensor {
    guard x.rank >= 2, groups > 0, x.shape[1] % groups == 0 else {
        throw TensorError.invalidArgument(op: "groupNorm", detail: "input \(x.shape) with \(groups) groups: need [N, C, ...] and C divisible by groups")
    }
    let channels = x.shape[1]
    for (name, parameter) in [("weight", weight), ("bias", bias)] {
        if let parameter, parameter.shape != [channels] {
            throw TensorError.shapeMismatch(op: "groupNorm", detail: "\(name) \(parameter.shape), expected [\(channels)]")
        }
    }
    let spatial = x.shape.dropFirst(2).reduce(1, *)
    guard spatial > 0, x.shape[0] > 0 else { return x }
    // With spatial == 1 and a single group this is the row-wise layout, where both formulas agree.
    let perGroup = channels / groups
    let layout = NormLayout(segments: x.shape[0] * groups, length: perGroup * spatial, channelsPerSegment: perGroup,
                            spatial: spatial, channels: channels)
    return normalize(x, weight: weight, bias: bias, eps: eps, layout: layout, op: "groupNorm")
}
