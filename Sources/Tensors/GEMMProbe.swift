import COpenBLAS

/// Raw sgemm runs for the tensor benchmark's reference rate ("GEMM-bound ops within 75% of the
/// measured OpenBLAS sgemm rate"): OpenBLAS with its own threads, and the engine's blocked split.
/// Not used by any op.
public enum GEMMProbe {
    /// C[m×n] = A[m×k]·B[k×n] in one cblas_sgemm with OpenBLAS running `threads` threads of its own;
    /// the engine's setting (single-threaded OpenBLAS) is restored before returning.
    public static func openBLAS(_ a: Tensor, _ b: Tensor, into c: inout Tensor, threads: Int) throws {
        let (m, n, k) = try dimensions(a, b, c)
        Threading.configureBLASIfNeeded()
        openblas_set_num_threads(Int32(max(1, threads)))
        defer { openblas_set_num_threads(1) }
        c.withUnsafeMutableBufferPointer { out in
            guard let pc = out.baseAddress else { return }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(m), Int32(n), Int32(k), 1,
                        a.storage.pointer, Int32(k), b.storage.pointer, Int32(n), 0, pc, Int32(n))
        }
    }

    /// The same product through the engine's `gemm` (blocks split over `Threading.threadCount` workers).
    public static func engine(_ a: Tensor, _ b: Tensor, into c: inout Tensor) throws {
        let (m, n, k) = try dimensions(a, b, c)
        c.withUnsafeMutableBufferPointer { out in
            guard let pc = out.baseAddress else { return }
            gemm(transA: false, transB: false, m: m, n: n, k: k, a: a.storage.pointer, lda: k,
                 b: b.storage.pointer, ldb: n, c: pc, ldc: n)
        }
    }

    private static func dimensions(_ a: Tensor, _ b: Tensor, _ c: Tensor) throws -> (Int, Int, Int) {
        guard a.rank == 2, b.rank == 2, c.rank == 2, a.shape[1] == b.shape[0],
              c.shape == [a.shape[0], b.shape[1]] else {
            throw TensorError.shapeMismatch(op: "GEMMProbe", detail: "A \(a.shape) · B \(b.shape) → C \(c.shape)")
        }
        return (a.shape[0], b.shape[1], a.shape[1])
    }
}
