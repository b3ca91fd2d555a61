/// Shared kernel of LayerNorm and GroupNorm: normalise `segments` contiguous runs of `length`
/// elements to zero mean, unit (biased) variance, then apply a per-channel affine transform.
/// Statistics are accumulated in Double, two passes, so large groups (UNet: 10⁵ elements) stay exact.
private struct NormLayout {
    let segments: Int          // rows (LayerNorm) or (batch, group) pairs (GroupNorm)
    let length: Int            // elements per segment
    let channelsPerSegment: Int
    let spatial: Int           // consecutive elements sharing one channel's affine parameters
    let channels: Int          // affine parameter count

    /// Affine channel of element `i` of segment `s`.
    @inline(__always) func channel(segment s: Int, element i: Int) -> Int {
        ((s * channelsPerSegment) % channels) + i / spatial
    }
}

private func normalizeForward(_ x: Tensor, weight: Tensor?, bias: Tensor?, eps: Float, layout: NormLayout,
                              op: String) -> Tensor {
    var output = Tensor(uninitializedShape: x.shape)
    var statistics = Tensor(uninitializedShape: [layout.segments, 2])   // mean, 1/σ per segment
    let px = x.storage.pointer, py = output.storage.pointer, stats = statistics.storage.pointer
    let pw = weight?.storage.pointer, pb = bias?.storage.pointer
    parallelFor(layout.segments, grain: max(1, 4096 / max(layout.length, 1))) { range in
        for s in range {
            let input = px + s * layout.length, out = py + s * layout.length
            var total = 0.0
            for i in 0..<layout.length { total += Double(input[i]) }
            let mean = total / Double(layout.length)
            var squares = 0.0
            for i in 0..<layout.length {
                let d = Double(input[i]) - mean
                squares += d * d
            }
            let inverseStd = 1 / (squares / Double(layout.length) + Double(eps)).squareRoot()
            let meanF = Float(mean), inverseStdF = Float(inverseStd)
            stats[2 * s] = meanF
            stats[2 * s + 1] = inverseStdF
            var i = 0
            while i < layout.length {
                let c = layout.channel(segment: s, element: i)
                let scale = (pw?[c] ?? 1) * inverseStdF, shift = pb?[c] ?? 0
                for j in i..<(i + layout.spatial) { out[j] = (input[j] - meanF) * scale + shift }
                i += layout.spatial
            }
        }
    }
    output.node = nil
    statistics.node = nil
    let savedX = x.detached, savedW = weight?.detached, savedStatistics = statistics
    var inputs = [x]
    if let weight { inputs.append(weight) }
    if let bias { inputs.append(bias) }
    let hasWeight = weight != nil, hasBias = bias != nil
    return Tensor.record(op, output, inputs: inputs) { g, needs in
        let needX = needs[0]
        let needW = hasWeight && needs[1]
        let needB = hasBias && needs[hasWeight ? 2 : 1]
        var dx = Tensor(uninitializedShape: savedX.shape)
        // Per-segment partial sums of g·x̂ and g per channel; reduced over segments afterwards.
        let perSegment = layout.channelsPerSegment
        var partialW = [Double](repeating: 0, count: (needW || needB) ? layout.segments * perSegment * 2 : 0)
        let px = savedX.storage.pointer, pg = g.storage.pointer, pd = dx.storage.pointer
        let pw = savedW?.storage.pointer, stats = savedStatistics.storage.pointer
        partialW.withUnsafeMutableBufferPointer { partial in
            parallelFor(layout.segments, grain: max(1, 2048 / max(layout.length, 1))) { range in
                for s in range {
                    let input = px + s * layout.length, grad = pg + s * layout.length, out = pd + s * layout.length
                    let mean = stats[2 * s], inverseStd = stats[2 * s + 1]
                    // mean(dx̂) and mean(dx̂·x̂) with dx̂ = g·w.
                    var sumD = 0.0, sumDX = 0.0
                    var i = 0
                    while i < layout.length {
                        let c = layout.channel(segment: s, element: i)
                        let w = pw?[c] ?? 1
                        var channelG = 0.0, channelGX = 0.0
                        for j in i..<(i + layout.spatial) {
                            let xhat = (input[j] - mean) * inverseStd
                            channelG += Double(grad[j])
                            channelGX += Double(grad[j] * xhat)
                        }
                        sumD += channelG * Double(w)
                        sumDX += channelGX * Double(w)
                        if !partial.isEmpty {
                            let slot = (s * perSegment + i / layout.spatial) * 2
                            partial[slot] = channelGX
                            partial[slot + 1] = channelG
                        }
                        i += layout.spatial
                    }
                    guard needX else { continue }
                    let meanD = Float(sumD / Double(layout.length)), meanDX = Float(sumDX / Double(layout.length))
                    i = 0
                    while i < layout.length {
                        let w = pw?[layout.channel(segment: s, element: i)] ?? 1
                        for j in i..<(i + layout.spatial) {
                            let xhat = (input[j] - mean) * inverseStd
                            out[j] = inverseStd * (grad[j] * w - meanD - xhat * meanDX)
                        }
                        i += layout.spatial
                    }
                }
            }
        }
        var gradW: Tensor? = nil, gradB: Tensor? = nil
        if needW || needB {
            var sumsW = [Double](repeating: 0, count: layout.channels), sumsB = sumsW
            for s in 0..<layout.segments {
                for local in 0..<perSegment {
                    let c = (s * perSegment) % layout.channels + local
                    let slot = (s * perSegment + local) * 2
                    sumsW[c] += partialW[slot]
                    sumsB[c] += partialW[slot + 1]
                }
            }
            if needW { gradW = try Tensor(shape: [layout.channels], data: sumsW.map { Float($0) }) }
            if needB { gradB = try Tensor(shape: [layout.channels], data: sumsB.map { Float($0) }) }
        }
        dx.node = nil
        var result: [Tensor?] = [needX ? dx : nil]
        if hasWeight { result.append(gradW) }
        if hasBias { result.append(gradB) }
        return result
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
    return normalizeForward(x, weight: weight, bias: bias, eps: eps, layout: layout, op: "layerNorm")
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
    let perGroup = channels / groups
    guard spatial > 0 else { return x }
    let layout = NormLayout(segments: x.shape[0] * groups, length: perGroup * spatial, channelsPerSegment: perGroup,
                            spatial: spatial, channels: channels)
    return normalizeForward(x, weight: weight, bias: bias, eps: eps, layout: layout, op: "groupNorm")
}
