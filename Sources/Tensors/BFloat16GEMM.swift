import CTensorKernels
import Foundation

/// How `BFloat16Matrix.product` computes: all routes multiply the bf16-rounded activations by the bf16
/// weights with f32 accumulation, so they agree to f32 summation-order differences.
public enum BFloat16Route: Sendable, Equatable {
    /// The measured fastest route the CPU supports (tools/bench/README.md, "bf16 GEMM"): oneDNN where it
    /// has AMX tiles, the own kernel on AVX512-BF16 without AMX, else `.portable`.
    case automatic
    /// oneDNN's bf16 matmul (throws where oneDNN has no bf16 kernel for the CPU).
    case oneDNN
    /// The own AVX512-BF16 (vdpbf16ps) kernel (throws on a CPU without AVX512-BF16).
    case kernel
    /// Widens both bf16 operands to f32 and runs the engine's f32 GEMM: any CPU, same products.
    case portable
}

/// A weight matrix W (n outputs × k inputs, as a `linear` weight) rounded to bf16 once, kept in the row
/// layout oneDNN reads and in the own kernel's 64-column panels, so no call converts or packs weights.
/// `product(x)` computes x·Wᵀ for f32 activations x [m, k] (rounded to bf16 per call) into f32 [m, n].
public struct BFloat16Matrix: Sendable {
    public let outputs: Int
    public let inputs: Int
    /// bf16 bit patterns, n×k row-major (round to nearest even).
    let bits: [UInt16]
    /// The own kernel's `sds_bf16_pack_weights` panels, packed on first use of that route; nil when the
    /// CPU lacks AVX512-BF16.
    let kernelPanels: PackedPanels?
    /// oneDNN bf16 matmul with its primitives cached per row count; nil when oneDNN is unavailable.
    let oneDNN: OneDNNMatMul?
    /// oneDNN's g·W (the input gradient) on the same bf16 rows.
    let oneDNNTransposed: OneDNNMatMul?

    /// Rounds a rank-2 [outputs, inputs] f32 weight to bf16.
    public init(_ weight: Tensor) throws {
        guard weight.rank == 2 else {
            throw TensorError.shapeMismatch(op: "BFloat16Matrix", detail: "expected a rank-2 [outputs, inputs] weight, got \(weight.shape)")
        }
        let (n, k) = (weight.shape[0], weight.shape[1])
        outputs = n
        inputs = k
        bits = [UInt16](unsafeUninitializedCapacity: n * k) { buffer, initialized in
            if let base = buffer.baseAddress { sds_f32_to_bf16(weight.storage.pointer, n, k, base, k) }
            initialized = n * k
        }
        kernelPanels = sds_cpu_has_avx512bf16() != 0 ? PackedPanels() : nil
        oneDNN = OneDNNMatMul(n: n, k: k, type: .bfloat16)
        oneDNNTransposed = OneDNNMatMul(n: k, k: n, type: .bfloat16, weightsKByN: true)
    }

    /// Bytes of the bf16 copies held (row layout and, once packed, kernel panels).
    public var byteCount: Int { (bits.count + (kernelPanels?.count ?? 0)) * MemoryLayout<UInt16>.stride }

    /// The weights widened back to f32 (exactly the bf16 values), [outputs, inputs].
    public var roundedWeights: Tensor { Tensor(bfloat16Bits: bits, shape: [outputs, inputs]) }

    /// x·Wᵀ: x is [m, inputs] (any leading shape flattened to rows), the result [m, outputs] (same leading shape).
    public func product(_ x: Tensor, route: BFloat16Route = .automatic) throws -> Tensor {
        guard x.rank >= 1, x.shape[x.rank - 1] == inputs else {
            throw TensorError.shapeMismatch(op: "BFloat16Matrix.product", detail: "activations \(x.shape) · weight [\(outputs), \(inputs)]ᵀ: last dimension must be \(inputs)")
        }
        let m = inputs == 0 ? x.shape.dropLast().reduce(1, *) : x.count / inputs
        var shape = x.shape
        shape[shape.count - 1] = outputs
        let result = Tensor(uninitializedShape: shape)
        let out = result.storage.pointer
        switch try resolved(route, rows: m) {
        case .oneDNN:
            guard let oneDNN else { throw unavailable(.oneDNN) }
            let a = Self.rounded(x.storage.pointer, rows: m, cols: inputs, stride: inputs)
            try a.withUnsafeBufferPointer { a in
                try bits.withUnsafeBufferPointer { w in
                    guard let ap = a.baseAddress, let wp = w.baseAddress else { return out.update(repeating: 0, count: m * outputs) }
                    try oneDNN.run(m: m, a: ap, w: wp, c: out)
                }
            }
        case .kernel:
            let lda = (inputs + 1) & ~1
            let a = Self.rounded(x.storage.pointer, rows: m, cols: inputs, stride: lda)
            kernelProduct(a, lda: lda, m: m, panels: try packedPanels(), into: out)
        default:
            portableProduct(x, m: m, into: out)
        }
        return result
    }

    /// Row counts from which `.automatic` takes oneDNN on a CPU without AMX. The own kernel wins at
    /// CLIP's ~100 rows (436 against 142 GFLOP/s for fc1), oneDNN at the UNet's 4096 rows with 320 inputs
    /// (360–405 against 204–231), and they tie at the convolution-sized products (Zen 4, 2026-12-04;
    /// tools/bench/README.md, "bf16 GEMM").
    static let oneDNNMinimumRows = 1024

    /// The route `route` runs as here (`.automatic` resolved for a product of `rows` rows), or an error
    /// when it is not available.
    func resolved(_ route: BFloat16Route, rows: Int = 0) throws -> BFloat16Route {
        switch route {
        case .automatic:
            if kernelPanels == nil { return .portable }
            guard oneDNN != nil else { return .kernel }
            return OneDNNConvolution.hasAMX || rows >= Self.oneDNNMinimumRows ? .oneDNN : .kernel
        case .kernel: if kernelPanels == nil { throw unavailable(route) }
        case .oneDNN: if oneDNN == nil { throw unavailable(route) }
        case .portable: break
        }
        return route
    }

    private func unavailable(_ route: BFloat16Route) -> TensorError {
        .invalidArgument(op: "BFloat16Matrix.product", detail: "route \(route) is not available on this CPU or build")
    }

    /// g·W: g is [m, outputs] (rounded to bf16), the result [m, inputs] in float32 — the input gradient of
    /// x·Wᵀ through the same bf16 weights. oneDNN for `.oneDNN`, and for `.automatic` wherever the CPU has
    /// bf16 units (the own kernel has no transposed packing, and a second packed copy of every weight would
    /// cost the memory bf16 saves); else the widened weights and the engine's float32 GEMM (the same products).
    public func transposedProduct(_ g: Tensor, route: BFloat16Route = .automatic) throws -> Tensor {
        guard g.rank >= 1, g.shape[g.rank - 1] == outputs else {
            throw TensorError.shapeMismatch(op: "BFloat16Matrix.transposedProduct", detail: "gradient \(g.shape) · weight [\(outputs), \(inputs)]: last dimension must be \(outputs)")
        }
        let m = outputs == 0 ? g.shape.dropLast().reduce(1, *) : g.count / outputs
        var shape = g.shape
        shape[shape.count - 1] = inputs
        let result = Tensor(uninitializedShape: shape)
        let out = result.storage.pointer
        let viaOneDNN = switch try resolved(route) {
        case .oneDNN: true
        case .kernel: route == .automatic
        default: false
        }
        if viaOneDNN, let oneDNNTransposed {
            let a = Self.rounded(g.storage.pointer, rows: m, cols: outputs, stride: outputs)
            try a.withUnsafeBufferPointer { a in
                try bits.withUnsafeBufferPointer { w in
                    guard let ap = a.baseAddress, let wp = w.baseAddress else { return out.update(repeating: 0, count: m * inputs) }
                    try oneDNNTransposed.run(m: m, a: ap, w: wp, c: out)
                }
            }
        } else {
            let roundedG = g.bfloat16RoundedValues(), w = roundedWeights
            gemm(transA: false, transB: false, m: m, n: inputs, k: outputs, a: roundedG.storage.pointer, lda: outputs,
                 b: w.storage.pointer, ldb: inputs, c: out, ldc: inputs)
        }
        return result
    }

    /// Rows of bf16 with row stride `stride` (≥ cols, zero-padded).
    private static func rounded(_ x: UnsafePointer<Float>, rows: Int, cols: Int, stride: Int) -> [UInt16] {
        [UInt16](unsafeUninitializedCapacity: rows * stride) { buffer, initialized in
            if let base = buffer.baseAddress {
                parallelFor(rows, grain: 64) { range in
                    sds_f32_to_bf16(x + range.lowerBound * cols, range.count, cols, base + range.lowerBound * stride, stride)
                }
            }
            initialized = rows * stride
        }
    }

    private func packedPanels() throws -> [UInt16] {
        guard let kernelPanels else { throw unavailable(.kernel) }
        return kernelPanels.panels { bits.withUnsafeBufferPointer { source in
            let (n, k) = (outputs, inputs), count = sds_bf16_packed_count(n, k)
            return [UInt16](unsafeUninitializedCapacity: count) { buffer, initialized in
                if let base = buffer.baseAddress, let w = source.baseAddress { sds_bf16_pack_weights(w, n, k, base) }
                initialized = count
            }
        } }
    }

    /// Tiles of 96 rows × one 64-column panel, pulled by the workers; consecutive tiles share a row block
    /// so a worker's A rows stay in L2 while it walks the panels.
    private func kernelProduct(_ a: [UInt16], lda: Int, m: Int, panels: [UInt16], into out: UnsafeMutablePointer<Float>) {
        let rowBlock = 96, panelCount = (outputs + Int(SDS_BF16_PANEL) - 1) / Int(SDS_BF16_PANEL)
        let rowBlocks = (m + rowBlock - 1) / rowBlock
        let (n, k) = (outputs, inputs)
        let c = UncheckedSendable(out)
        a.withUnsafeBufferPointer { a in
            panels.withUnsafeBufferPointer { packed in
                guard let ap = a.baseAddress, let bp = packed.baseAddress else { return }
                parallelWorkers(rowBlocks * panelCount, batch: 1) { next in
                    while let range = next() {
                        for tile in range {
                            let rowStart = (tile / panelCount) * rowBlock, panel = tile % panelCount
                            _ = sds_bf16_gemm_block(ap, lda, bp, n, k, c.value, n, 0, rowStart, min(rowStart + rowBlock, m), panel, panel + 1)
                        }
                    }
                }
            }
        }
    }

    /// Both operands widened to f32 (the bf16 values exactly), then the engine's f32 GEMM.
    private func portableProduct(_ x: Tensor, m: Int, into out: UnsafeMutablePointer<Float>) {
        let a = x.bfloat16RoundedValues(), w = roundedWeights
        gemm(transA: false, transB: true, m: m, n: outputs, k: inputs, a: a.storage.pointer, lda: inputs,
             b: w.storage.pointer, ldb: inputs, c: out, ldc: outputs)
    }
}

/// The own kernel's weight panels, made once on first use (a oneDNN-routed matrix never pays for them).
final class PackedPanels: @unchecked Sendable {
    private let lock = NSLock()
    private var packed: [UInt16]?

    var count: Int {
        lock.lock()
        defer { lock.unlock() }
        return packed?.count ?? 0
    }

    func panels(_ pack: () -> [UInt16]) -> [UInt16] {
        lock.lock()
        defer { lock.unlock() }
        if let packed { return packed }
        let made = pack()
        packed = made
        return made
    }
}
