import CTensorKernels
import XCTest
@testable import Tensors

/// Attention's bf16 products (`bfloat16Products`, a bf16 teacher's attention) against a float64 evaluation
/// of the same bf16-rounded operands: scores from bf16(scale·q)·bf16(k), exact in float64; the
/// probabilities p_j = e^(s_j − max) rounded to bf16 for the value product, as the route rounds its
/// float32 probabilities. Tolerance, per output element: the route's float32 exponentials differ from the
/// float64 ones by ~1e-7 relative, which can move a probability to the neighbouring bf16 value (at most
/// 2⁻⁸ of it), so |Δ| ≤ 2⁻⁸·Σ p_j|v_j| / Σ p_j plus float32 accumulation (4096·2⁻²⁴ of the same sum).
/// Without AVX512-BF16 the option must change nothing.
final class BFloat16AttentionTests: XCTestCase {
    private static func bf16(_ x: Float) -> Float {
        var bits: UInt16 = 0
        withUnsafePointer(to: x) { sds_f32_to_bf16($0, 1, 1, &bits, 1) }
        return Float(bitPattern: UInt32(bits) << 16)
    }

    /// [1, 2, queries, depth] inputs with the UNet's head depth 40 and a value depth that spans two panels.
    private func inputs(queries: Int, keys: Int, depth: Int, valueDepth: Int) -> (Tensor, Tensor, Tensor) {
        (Tensor.randn(shape: [1, 2, queries, depth], seed: 11), Tensor.randn(shape: [1, 2, keys, depth], seed: 12),
         Tensor.randn(shape: [1, 2, keys, valueDepth], seed: 13))
    }

    func testForwardMatchesFloat64OfTheRoundedOperands() throws {
        for (queries, keys, depth, valueDepth) in [(70, 77, 40, 40), (33, 130, 40, 80), (5, 9, 7, 3)] {
            let (q, k, v) = inputs(queries: queries, keys: keys, depth: depth, valueDepth: valueDepth)
            let scale = 1 / Float(depth).squareRoot()
            let out = try attention(q, k, v, queryChunk: 16, bfloat16Products: true)
            let plain = try attention(q, k, v, queryChunk: 16)
            guard sds_cpu_has_avx512bf16() != 0 else {
                XCTAssertEqual(out.scalars, plain.scalars, "without AVX512-BF16 the option changes nothing")
                continue
            }
            let (qs, ks, vs, os) = (q.scalars, k.scalars, v.scalars, out.scalars)
            for head in 0..<2 {
                for i in 0..<queries {
                    let qRow = (head * queries + i) * depth
                    var scores = [Double](repeating: 0, count: keys)
                    for j in 0..<keys {
                        let kRow = (head * keys + j) * depth
                        for t in 0..<depth {
                            scores[j] += Double(Self.bf16(scale * qs[qRow + t])) * Double(Self.bf16(ks[kRow + t]))
                        }
                    }
                    let maximum = scores.max() ?? 0
                    let p = scores.map { Foundation.exp($0 - maximum) }
                    let total = p.reduce(0, +)
                    for c in 0..<valueDepth {
                        var sum = 0.0, magnitude = 0.0
                        for j in 0..<keys {
                            let value = Double(vs[(head * keys + j) * valueDepth + c])
                            sum += Double(Self.bf16(Float(p[j]))) * Double(Self.bf16(Float(value)))
                            magnitude += p[j] * abs(value)
                        }
                        let expected = sum / total, bound = (0x1p-8 + 4096 * 0x1p-24) * magnitude / total + 1e-7
                        let got = Double(os[(head * queries + i) * valueDepth + c])
                        XCTAssertLessThanOrEqual(abs(got - expected), bound, "[\(head), \(i), \(c)] of \(queries)×\(keys)×\(depth)→\(valueDepth)")
                    }
                }
            }
            XCTAssertNotEqual(out.scalars, plain.scalars, "bf16 products identical to float32 (no rounding?)")
        }
    }

    /// The backward's five products (P recomputed, dP, dQ, and the transposed dV, dK accumulations) take
    /// bf16 operands on the forward's saved statistics: the gradients are those of the float32 route
    /// within a few bf16 roundings (2⁻⁸ relative each, on both operands and on dS, scaled by the largest).
    func testGradientsFlowAndStayWithinBFloat16OfFloat32() throws {
        let (q, k, v) = inputs(queries: 40, keys: 50, depth: 40, valueDepth: 40)
        let g = Tensor.randn(shape: [1, 2, 40, 40], seed: 14)
        func gradients(_ bfloat16: Bool) throws -> [[Float]] {
            let leaves = [q, k, v].map { Parameter($0, name: "x") }
            try attention(leaves[0].tensor, leaves[1].tensor, leaves[2].tensor, queryChunk: 16, bfloat16Products: bfloat16)
                .backward(gradient: g)
            return try leaves.map { try XCTUnwrap($0.grad).scalars }
        }
        let (reduced, plain) = (try gradients(true), try gradients(false))
        for (name, (a, b)) in zip(["q", "k", "v"], zip(reduced, plain)) {
            let largest = b.map(abs).max() ?? 0
            for (x, y) in zip(a, b) {
                XCTAssertLessThanOrEqual(abs(x - y), 8 * 0x1p-8 * largest, "d\(name)")
            }
        }
    }
}
