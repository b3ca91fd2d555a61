import CDNNL
import Foundation

/// oneDNN matmuls C[m×n] = A[m×k]·Wᵀ (W stored n×k; or A·W with W stored k×n, `weightsKByN`) of one element type, f32 accumulation and output, with
/// one primitive per row count created on first use and kept (oneDNN primitive creation costs far more
/// than a small product). oneDNN runs on its own OpenMP thread team (libgomp), not the engine's
/// workers; the team is sized to the engine's thread count before each run (`OpenMPThreads`). A
/// reference type so that copies of the weight value share the primitives; runs are serialised by a lock because a oneDNN stream is not meant for concurrent use.
final class OneDNNMatMul: @unchecked Sendable {
    enum ElementType: Sendable { case bfloat16, float32 }

    let n: Int, k: Int
    /// The weights are stored k×n (the matmul is A·W) instead of n×k (A·Wᵀ).
    let weightsKByN: Bool
    private let type: dnnl_data_type_t
    /// Released only after deinit has destroyed the primitives made on its engine.
    private let context: OneDNNContext
    private let lock = NSLock()
    private var primitives: [Int: dnnl_primitive_t] = [:]

    /// nil when oneDNN cannot create a CPU engine and stream.
    init?(n: Int, k: Int, type: ElementType, weightsKByN: Bool = false) {
        self.n = n
        self.k = k
        self.weightsKByN = weightsKByN
        self.type = type == .bfloat16 ? dnnl_bf16 : dnnl_f32
        guard let context = OneDNNContext() else { return nil }
        self.context = context
    }

    deinit {
        for primitive in primitives.values { dnnl_primitive_destroy(primitive) }
    }

    /// c (m×n, row-major) = a (m×k, row-major) · wᵀ (or · w when `weightsKByN`); a and w hold elements of this matmul's type.
    /// Throws when oneDNN refuses the shape or type (e.g. bf16 on a CPU oneDNN has no bf16 kernel for).
    func run(m: Int, a: UnsafeRawPointer, w: UnsafeRawPointer, c: UnsafeMutablePointer<Float>) throws {
        lock.lock()
        defer { lock.unlock() }
        let primitive: dnnl_primitive_t
        if let cached = primitives[m] {
            primitive = cached
        } else {
            var created: dnnl_primitive_t?
            let status = sds_dnnl_matmul_create(context.engine, Int64(m), Int64(n), Int64(k), type, weightsKByN ? 1 : 0, &created)
            guard status == dnnl_success, let created else { throw failure("creating the primitive", status, m) }
            primitives[m] = created
            primitive = created
        }
        OpenMPThreads.match()
        let status = sds_dnnl_matmul_run(primitive, context.engine, context.stream, Int64(m), Int64(n), Int64(k), type, weightsKByN ? 1 : 0, a, w, c)
        guard status == dnnl_success else { throw failure("running the primitive", status, m) }
    }

    private func failure(_ step: String, _ status: dnnl_status_t, _ m: Int) -> TensorError {
        .invalidArgument(op: "oneDNN matmul", detail: "\(step) for \(m)×\(k) · (\(n)×\(k))ᵀ failed with dnnl status \(status.rawValue)")
    }
}

/// oneDNN's f32 matmul x·Wᵀ, for benchmarks (tools/bench/bench_bf16.py compares it with the bf16 routes).
public struct OneDNNFloat32Probe: Sendable {
    private let matmul: OneDNNMatMul
    private let weight: Tensor

    /// weight: [n, k] f32, kept as is.
    public init(weight: Tensor) throws {
        guard weight.rank == 2, let matmul = OneDNNMatMul(n: weight.shape[0], k: weight.shape[1], type: .float32) else {
            throw TensorError.invalidArgument(op: "OneDNNFloat32Probe", detail: "needs a rank-2 weight and a oneDNN CPU engine, got \(weight.shape)")
        }
        self.matmul = matmul
        self.weight = weight
    }

    /// c [m, n] = x [m, k] · Wᵀ.
    public func product(_ x: Tensor, into c: inout Tensor) throws {
        guard x.rank == 2, x.shape[1] == matmul.k, c.shape == [x.shape[0], matmul.n] else {
            throw TensorError.shapeMismatch(op: "OneDNNFloat32Probe", detail: "x \(x.shape) · W [\(matmul.n), \(matmul.k)]ᵀ → c \(c.shape)")
        }
        let (a, w) = (x.storage.pointer, weight.storage.pointer)
        try c.withUnsafeMutableBufferPointer { out in
            guard let pc = out.baseAddress else { return }
            try matmul.run(m: x.shape[0], a: a, w: w, c: pc)
        }
    }
}
