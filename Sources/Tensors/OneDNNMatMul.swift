import CDNNL
import Foundation

/// oneDNN matmuls C[m×n] = A[m×k]·Wᵀ (W stored n×k) of one element type, f32 accumulation and output, with
/// one primitive per row count created on first use and kept (oneDNN primitive creation costs far more
/// than a small product). oneDNN runs on its own OpenMP thread team (libgomp; OMP_NUM_THREADS, default
/// all cores), not the engine's workers. A reference type so that copies of the weight value share the
/// primitives; runs are serialised by a lock because a oneDNN stream is not meant for concurrent use.
final class OneDNNMatMul: @unchecked Sendable {
    enum ElementType: Sendable { case bfloat16, float32 }

    let n: Int, k: Int
    private let type: dnnl_data_type_t
    private let engine: dnnl_engine_t
    private let stream: dnnl_stream_t
    private let lock = NSLock()
    private var primitives: [Int: dnnl_primitive_t] = [:]

    /// nil when oneDNN cannot create a CPU engine and stream.
    init?(n: Int, k: Int, type: ElementType) {
        self.n = n
        self.k = k
        self.type = type == .bfloat16 ? dnnl_bf16 : dnnl_f32
        var engine: dnnl_engine_t?
        guard dnnl_engine_create(&engine, dnnl_cpu, 0) == dnnl_success, let engine else { return nil }
        var stream: dnnl_stream_t?
        guard dnnl_stream_create(&stream, engine, dnnl_stream_default_flags.rawValue) == dnnl_success, let stream else {
            dnnl_engine_destroy(engine)
            return nil
        }
        self.engine = engine
        self.stream = stream
    }

    deinit {
        for primitive in primitives.values { dnnl_primitive_destroy(primitive) }
        dnnl_stream_destroy(stream)
        dnnl_engine_destroy(engine)
    }

    /// c (m×n, row-major) = a (m×k, row-major) · wᵀ; a and w hold elements of this matmul's type.
    /// Throws when oneDNN refuses the shape or type (e.g. bf16 on a CPU oneDNN has no bf16 kernel for).
    func run(m: Int, a: UnsafeRawPointer, w: UnsafeRawPointer, c: UnsafeMutablePointer<Float>) throws {
        lock.lock()
        defer { lock.unlock() }
        let primitive: dnnl_primitive_t
        if let cached = primitives[m] {
            primitive = cached
        } else {
            var created: dnnl_primitive_t?
            let status = sds_dnnl_matmul_create(engine, Int64(m), Int64(n), Int64(k), type, &created)
            guard status == dnnl_success, let created else { throw failure("creating the primitive", status, m) }
            primitives[m] = created
            primitive = created
        }
        let status = sds_dnnl_matmul_run(primitive, engine, stream, Int64(m), Int64(n), Int64(k), type, a, w, c)
        guard status == dnnl_success else { throw failure("running the primitive", status, m) }
    }

    private func failure(_ step: String, _ status: dnnl_status_t, _ m: Int) -> TensorError {
        .invalidArgument(op: "oneDNN matmul", detail: "\(step) for \(m)×\(k) · (\(n)×\(k))ᵀ failed with dnnl status \(status.rawValue)")
    }
}
