import CTensorKernels

/// How `BFloat16Matrix.product` computes: all routes multiply the bf16-rounded activations by the bf16
/// weights with f32 accumulation, so they agree to f32 summation-order differences.
public enum BFloat16Route: Sendable, Equatable {
    /// The measured fastest route the CPU supports (tools/bench/README.md, "bf16 GEMM"), else `.portable`.
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
    /// `sds_bf16_pack_weights` panels; empty when the CPU lacks AVX512-BF16.
    let panels: [UInt16]
    /// oneDNN bf16 matmul with its primitives cached per row count; nil when oneDNN is unavailable.
    let oneDNN: OneDNNMatMul?

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
        if sds_cpu_has_avx512bf16() != 0 {
            let count = sds_bf16_packed_count(n, k)
            panels = bits.withUnsafeBufferPointer { source in
                [UInt16](unsafeUninitializedCapacity: count) { buffer, initialized in
                    if let base = buffer.baseAddress, let w = source.baseAddress { sds_bf16_pack_weights(w, n, k, base) }
                    initialized = count
                }
            }
        } else {
            panels = []
        }
        oneDNN = OneDNNMatMul(n: n, k: k, type: .bfloat16)
    }

    /// Bytes of the bf16 copies held (row layout and kernel panels).
    public var byteCount: Int { (bits.count + panels.count) * MemoryLayout<UInt16>.stride }

    /// The weights widened back to f32 (exactly the bf16 values), [outputs, inputs].
    public var roundedWeights: Tensor {
        let result = Tensor(uninitializedShape: [outputs, inputs])
        let target = UncheckedSendable(result.storage.pointer)
        bits.withUnsafeBufferPointer { source in
            guard let base = source.baseAddress else { return }
            let bits = UncheckedSendable(base)
            parallelFor(source.count, grain: 1 << 16) { range in
                for i in range { target.value[i] = Float(bitPattern: UInt32(bits.value[i]) << 16) }
            }
        }
        return result
    }

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
        switch try resolved(route) {
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
            kernelProduct(a, lda: lda, m: m, into: out)
        default:
            portableProduct(x, m: m, into: out)
        }
        return result
    }

    private func resolved(_ route: BFloat16Route) throws -> BFloat16Route {
        switch route {
        case .automatic: return panels.isEmpty ? .portable : .kernel
        case .kernel: if panels.isEmpty { throw unavailable(route) }
        case .oneDNN: if oneDNN == nil { throw unavailable(route) }
        case .portable: break
        }
        return route
    }

    private func unavailable(_ route: BFloat16Route) -> TensorError {
        .invalidArgument(op: "BFloat16Matrix.product", detail: "route \(route) is not available on this CPU or build")
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

    /// Tiles of 96 rows × one 64-column panel, pulled by the workers; consecutive tiles share a row block
    /// so a worker's A rows stay in L2 while it walks the panels.
    private func kernelProduct(_ a: [UInt16], lda: Int, m: Int, into out: UnsafeMutablePointer<Float>) {
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
                            _ = sds_bf16_gemm_block(ap, lda, bp, n, k, c.value, n, rowStart, min(rowStart + rowBlock, m), panel, panel + 1)
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
