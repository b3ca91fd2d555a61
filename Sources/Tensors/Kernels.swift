import CTensorKernels
import Foundation

/// Small numeric building blocks shared by the ops, written so LLVM vectorises them
/// (no traps, no branches in the loop bodies, independent partial sums).

/// e^x for x ≤ 0-ish softmax arguments: Cephes' expf polynomial (≈1 ulp on its range) with the
/// exponent assembled by bit arithmetic instead of a trapping Float→Int conversion, so loops
/// over it vectorise. Arguments below −87.3 (including −∞ from masks) give exactly 0; arguments
/// are capped at 88.3 (softmax never passes positive values).
@inline(__always)
func fastExp(_ x: Float) -> Float {
    let clamped = min(max(x, -87.3), 88.3)
    // n = round(x / ln 2) via the 1.5·2²³ trick; its low mantissa bits hold n as an integer.
    let shifted = clamped * 1.442_695_04 + 12_582_912
    let n = shifted - 12_582_912
    let r = clamped - n * 0.693_359_375 + n * 2.121_944_4e-4
    var p: Float = 1.987_569_15e-4
    p = p * r + 1.398_199_950_7e-3
    p = p * r + 8.333_451_907_3e-3
    p = p * r + 4.166_579_589_4e-2
    p = p * r + 1.666_666_545_9e-1
    p = p * r + 5.000_000_120_1e-1
    let polynomial = p * r * r + r + 1
    let exponentBits = (shifted.bitPattern &- 0x4B40_0000 &+ 127) << 23
    let result = polynomial * Float(bitPattern: exponentBits)
    return x < -87.3 ? 0 : result
}

/// Σ p[i] in Float lanes over blocks of 1024, blocks combined in Double: fast and accurate for
/// long reductions (GroupNorm groups, bias gradients) without a Double conversion per element.
@inline(__always)
func blockedSum(_ p: UnsafePointer<Float>, _ n: Int) -> Double {
    var total = 0.0
    var start = 0
    while start < n {
        let end = min(start + 1024, n)
        var lanes = SIMD8<Float>()
        var i = start
        let raw = UnsafeRawPointer(p)
        while i + 8 <= end {
            lanes += raw.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            i += 8
        }
        var tail: Float = 0
        while i < end { tail += p[i]; i += 1 }
        total += Double(lanes.sum() + tail)
        start = end
    }
    return total
}

/// Σ (p[i] − mean)² with the same blocking as `blockedSum`.
@inline(__always)
func blockedSquaredDeviation(_ p: UnsafePointer<Float>, _ n: Int, mean: Float) -> Double {
    var total = 0.0
    var start = 0
    let center = SIMD8<Float>(repeating: mean)
    while start < n {
        let end = min(start + 1024, n)
        var lanes = SIMD8<Float>()
        var i = start
        let raw = UnsafeRawPointer(p)
        while i + 8 <= end {
            let d = raw.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self) - center
            lanes += d * d
            i += 8
        }
        var tail: Float = 0
        while i < end { let d = p[i] - mean; tail += d * d; i += 1 }
        total += Double(lanes.sum() + tail)
        start = end
    }
    return total
}

/// (Σ g[i], Σ g[i]·(x[i] − mean)) for normalisation backward passes.
@inline(__always)
func blockedGradientSums(_ g: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ n: Int, mean: Float) -> (Double, Double) {
    var sumG = 0.0, sumGX = 0.0
    var start = 0
    let center = SIMD8<Float>(repeating: mean)
    let rawG = UnsafeRawPointer(g), rawX = UnsafeRawPointer(x)
    while start < n {
        let end = min(start + 1024, n)
        var lanesG = SIMD8<Float>(), lanesGX = SIMD8<Float>()
        var i = start
        while i + 8 <= end {
            let gv = rawG.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            let xv = rawX.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self) - center
            lanesG += gv
            lanesGX += gv * xv
            i += 8
        }
        var tailG: Float = 0, tailGX: Float = 0
        while i < end { tailG += g[i]; tailGX += g[i] * (x[i] - mean); i += 1 }
        sumG += Double(lanesG.sum() + tailG)
        sumGX += Double(lanesGX.sum() + tailGX)
        start = end
    }
    return (sumG, sumGX)
}

/// Eight-lane `fastExp` (same constants and edge behaviour).
@inline(__always)
func fastExp(_ x: SIMD8<Float>) -> SIMD8<Float> {
    // Clamp with compare-and-select: pointwiseMin/Max are not inlined by the compiler.
    var clamped = x.replacing(with: -87.3, where: x .< -87.3)
    clamped = clamped.replacing(with: 88.3, where: clamped .> 88.3)
    let shifted = clamped * 1.442_695_04 + 12_582_912
    let n = shifted - 12_582_912
    let r = clamped - n * 0.693_359_375 + n * 2.121_944_4e-4
    var p = SIMD8<Float>(repeating: 1.987_569_15e-4)
    p = p * r + 1.398_199_950_7e-3
    p = p * r + 8.333_451_907_3e-3
    p = p * r + 4.166_579_589_4e-2
    p = p * r + 1.666_666_545_9e-1
    p = p * r + 5.000_000_120_1e-1
    let polynomial = p * r * r + r + 1
    let exponentBits = (unsafeBitCast(shifted, to: SIMD8<UInt32>.self) &- 0x4B40_0000 &+ 127) &<< 23
    let result = polynomial * unsafeBitCast(exponentBits, to: SIMD8<Float>.self)
    return result.replacing(with: 0, where: x .< -87.3)
}

@inline(__always)
func load8(_ p: UnsafePointer<Float>, _ i: Int) -> SIMD8<Float> {
    UnsafeRawPointer(p).loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
}

@inline(__always)
func store8(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>, _ i: Int) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, toByteOffset: i * 4, as: SIMD8<Float>.self)
}

/// Softmax of one contiguous row from `source` into `target` (may alias); returns the row's
/// log-sum-exp (max + log Σ exp(x − max)). Max and exp + sum run in CTensorKernels (AVX2/FMA when
/// the CPU has it), then one scaling pass.
@inline(__always)
func softmaxRow(from source: UnsafePointer<Float>, to target: UnsafeMutablePointer<Float>, _ n: Int) -> Float {
    let maximum = sds_row_max(source, n)
    // A row that is entirely −∞ (fully masked) has no finite maximum; keep it NaN-free here and let
    // the sum be 0, which yields NaN probabilities exactly like torch.
    let shift = maximum.isFinite ? maximum : 0
    if UnsafePointer(target) != source { target.update(from: source, count: n) }
    let total = sds_exp_shifted_sum(target, n, shift)
    let inverse = 1 / total
    let inverseLanes = SIMD8<Float>(repeating: inverse)
    let vectorEnd = n & ~7
    var i = 0
    while i < vectorEnd { store8(load8(target, i) * inverseLanes, target, i); i += 8 }
    while i < n { target[i] *= inverse; i += 1 }
    return shift + log(total)
}

/// Σ a[i]·b[i] in eight lanes.
@inline(__always)
func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
    let vectorEnd = n & ~7
    var lanes = SIMD8<Float>()
    var i = 0
    while i < vectorEnd { lanes += load8(a, i) * load8(b, i); i += 8 }
    var tail: Float = 0
    while i < n { tail += a[i] * b[i]; i += 1 }
    return lanes.sum() + tail
}

/// 1/(1 + e^(−x)) in eight lanes (fastExp: ≈1 ulp; saturates cleanly at both ends).
@inline(__always)
func sigmoid8(_ x: SIMD8<Float>) -> SIMD8<Float> { 1 / (1 + fastExp(-x)) }

/// erf in eight lanes: Abramowitz & Stegun 7.1.26, |error| ≤ 1.5e-7 absolute (the same class of
/// approximation torch's vectorised CPU erf uses), built on fastExp so it vectorises.
@inline(__always)
func erf8(_ x: SIMD8<Float>) -> SIMD8<Float> {
    let a = x.replacing(with: -x, where: x .< 0)
    let t = 1 / (1 + 0.327_591_1 * a)
    var p = SIMD8<Float>(repeating: 1.061_405_429)
    p = p * t - 1.453_152_027
    p = p * t + 1.421_413_741
    p = p * t - 0.284_496_736
    p = p * t + 0.254_829_592
    let magnitude = 1 - p * t * fastExp(-a * a)
    return magnitude.replacing(with: -magnitude, where: x .< 0)
}

extension Tensor {
    /// out = f(x) over eight-lane vectors; the ragged tail goes through a zero-padded vector.
    @inline(__always)
    func mapVectorized(_ f: (SIMD8<Float>) -> SIMD8<Float>) -> Tensor {
        var result = Tensor(uninitializedShape: shape)
        let input = storage.pointer, out = result.storage.pointer, n = count
        parallelFor((n + 7) / 8, grain: 2048) { range in
            for block in range {
                let i = block * 8
                if i + 8 <= n {
                    store8(f(load8(input, i)), out, i)
                } else {
                    var v = SIMD8<Float>()
                    for lane in 0..<(n - i) { v[lane] = input[i + lane] }
                    let y = f(v)
                    for lane in 0..<(n - i) { out[i + lane] = y[lane] }
                }
            }
        }
        result.node = nil
        return result
    }

    /// out = f(x, g) over eight-lane vectors (x and g of equal shape): backward of vectorised unary ops.
    @inline(__always)
    static func zipVectorized(_ x: Tensor, _ g: Tensor, _ f: (SIMD8<Float>, SIMD8<Float>) -> SIMD8<Float>) -> Tensor {
        var result = Tensor(uninitializedShape: x.shape)
        let px = x.storage.pointer, pg = g.storage.pointer, out = result.storage.pointer, n = x.count
        parallelFor((n + 7) / 8, grain: 2048) { range in
            for block in range {
                let i = block * 8
                if i + 8 <= n {
                    store8(f(load8(px, i), load8(pg, i)), out, i)
                } else {
                    var a = SIMD8<Float>(), b = SIMD8<Float>()
                    for lane in 0..<(n - i) { a[lane] = px[i + lane]; b[lane] = pg[i + lane] }
                    let y = f(a, b)
                    for lane in 0..<(n - i) { out[i + lane] = y[lane] }
                }
            }
        }
        result.node = nil
        return result
    }

    /// A unary op with vectorised forward and backward; `derivative` maps (x, upstream) to the input gradient.
    @inline(__always)
    func unaryVectorized(_ op: String, _ f: @escaping (SIMD8<Float>) -> SIMD8<Float>,
                         gradient: @escaping (_ x: SIMD8<Float>, _ g: SIMD8<Float>) -> SIMD8<Float>) -> Tensor {
        let output = mapVectorized(f)
        let input = self.detached
        return Tensor.record(op, output, inputs: [self]) { g, _ in [Tensor.zipVectorized(input, g, gradient)] }
    }
}

/// Runs `body` with the baseline (non-AVX2) builds of the CTensorKernels kernels, so tests check both
/// builds on an AVX2 machine. Not for use while other threads run ops.
func withBaselineKernels<R>(_ body: () throws -> R) rethrows -> R {
    sds_kernels_force_baseline(1)
    defer { sds_kernels_force_baseline(0) }
    return try body()
}

/// Runs `body` with the CTensorKernels builds capped at `level` (0 baseline, 1 AVX2+FMA, 2 AVX-512F),
/// so tests check every build the machine has. Not for use while other threads run ops.
func withKernelLevel<R>(_ level: Int, _ body: () throws -> R) rethrows -> R {
    sds_kernels_cap_level(Int32(level))
    defer { sds_kernels_cap_level(2) }
    return try body()
}

/// The widest CTensorKernels build this machine runs (0 baseline, 1 AVX2+FMA, 2 AVX-512F).
var kernelLevel: Int { Int(sds_kernels_level()) }
