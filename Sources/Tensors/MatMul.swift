import COpenBLAS

/// Row-major C = alpha·op(A)·op(B) + beta·C through OpenBLAS; transposes are flags, never copies.
///
/// Large products are split (unless `split` is false: callers already inside a parallel region)
/// into row (or column) blocks of C that the engine's own workers pull as they go, each
/// block one single-threaded sgemm. OpenBLAS's own threads stay off: after every call they spin for
/// a while, and that spinning starved the parallel loops that follow a GEMM (attention's softmax ran
/// 3–4× slower with 2 OpenBLAS threads than with 1).
@inline(__always)
func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
          a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
          beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int, split: Bool = true) {
    guard m > 0, n > 0 else { return }
    if k == 0 {
        // An empty sum: C = beta·C (and exactly 0 for beta 0, whatever C held before).
        for row in 0..<m { for col in 0..<n { c[row * ldc + col] = beta == 0 ? 0 : c[row * ldc + col] * beta } }
        return
    }
    Threading.configureBLASIfNeeded()
    let single = { (m: Int, n: Int, a: UnsafePointer<Float>, b: UnsafePointer<Float>, c: UnsafeMutablePointer<Float>) in
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }
    // Below ~2 MFLOP a split costs more in dispatch than it saves.
    let minimumBlock = 32
    guard split, Threading.threadCount > 1, m * n * k >= 1 << 20, max(m, n) >= 2 * minimumBlock else {
        single(m, n, a, b, c)
        return
    }
    // Blocks of 16-multiple rows (or columns), about three per worker, pulled from a shared counter:
    // on a shared host a worker whose core is taken simply does fewer blocks instead of holding up
    // the join. Each block re-packs the shared operand, which costs < 1% at these block sizes.
    let splitExtent = max(m, n)
    let perBlock = (splitExtent + 3 * Threading.threadCount - 1) / (3 * Threading.threadCount)
    let block = max(minimumBlock, (perBlock + 15) / 16 * 16)
    if m >= n {
        // Row blocks of C: rows of op(A).
        parallelWorkers(m, batch: block) { next in
            while let rows = next() {
                let blockA = transA ? a + rows.lowerBound : a + rows.lowerBound * lda
                single(rows.count, n, blockA, b, c + rows.lowerBound * ldc)
            }
        }
    } else {
        // Column blocks of C: columns of op(B).
        parallelWorkers(n, batch: block) { next in
            while let columns = next() {
                let blockB = transB ? b + columns.lowerBound * ldb : b + columns.lowerBound
                single(m, columns.count, a, blockB, c + columns.lowerBound)
            }
        }
    }
}

extension Tensor {
    /// Batched op(A)·op(B) over the last two axes with broadcast batch axes (no autodiff; the building block).
    static func batchedProduct(_ a: Tensor, transA: Bool, _ b: Tensor, transB: Bool) throws -> Tensor {
        guard a.rank >= 2, b.rank >= 2 else {
            throw TensorError.invalidArgument(op: "matmul", detail: "operands need rank ≥ 2, got \(a.shape) and \(b.shape)")
        }
        let (ar, ac) = (a.shape[a.rank - 2], a.shape[a.rank - 1])
        let (br, bc) = (b.shape[b.rank - 2], b.shape[b.rank - 1])
        let (m, k) = transA ? (ac, ar) : (ar, ac)
        let (kb, n) = transB ? (bc, br) : (br, bc)
        guard k == kb else {
            throw TensorError.shapeMismatch(op: "matmul", detail: "inner dimensions differ: \(a.shape) · \(b.shape) (\(k) vs \(kb))")
        }
        let batchA = Array(a.shape.dropLast(2)), batchB = Array(b.shape.dropLast(2))
        let batch = try Broadcast.shape(batchA, batchB, op: "matmul")
        let result = Tensor(uninitializedShape: batch + [m, n])
        let pa = a.storage.pointer, pb = b.storage.pointer, pc = result.storage.pointer
        let batchCount = Tensor.elementCount(batch)
        if batchB.isEmpty && !transA && batchCount > 0 {
            // [.., M, K] · [K, N]: one GEMM over all rows.
            gemm(transA: false, transB: transB, m: batchCount * m, n: n, k: k, a: pa, lda: ac,
                 b: pb, ldb: bc, c: pc, ldc: n)
            return result
        }
        let stridesA = Broadcast.strides(of: batchA, readAs: batch)
        let stridesB = Broadcast.strides(of: batchB, readAs: batch)
        let contiguous = Broadcast.contiguousStrides(batch)
        for index in 0..<batchCount {
            var offsetA = 0, offsetB = 0, remainder = index
            for axis in 0..<batch.count {
                let coordinate = remainder / contiguous[axis]
                remainder %= contiguous[axis]
                offsetA += coordinate * stridesA[axis]
                offsetB += coordinate * stridesB[axis]
            }
            gemm(transA: transA, transB: transB, m: m, n: n, k: k,
                 a: pa + offsetA * ar * ac, lda: ac, b: pb + offsetB * br * bc, ldb: bc,
                 c: pc + index * m * n, ldc: n)
        }
        return result
    }
}

/// Matrix product over the last two axes, broadcasting the leading (batch) axes like torch.matmul.
public func matmul(_ a: Tensor, _ b: Tensor) throws -> Tensor {
    let output = try Tensor.batchedProduct(a, transA: false, b, transB: false)
    let (savedA, savedB) = (a.detached, b.detached)
    return Tensor.record("matmul", output, inputs: [a, b]) { g, needs in
        var gradB: Tensor? = nil
        if needs[1] {
            if savedB.rank == 2 && savedA.rank > 2 {
                // Shared right operand: dB = A_flatᵀ·G_flat in one GEMM, no per-batch copies to sum.
                let (k, n) = (savedB.shape[0], savedB.shape[1])
                let rows = savedA.count / max(k, 1)
                var db = Tensor(uninitializedShape: [k, n])
                gemm(transA: true, transB: false, m: k, n: n, k: rows, a: savedA.storage.pointer, lda: k,
                     b: g.storage.pointer, ldb: n, c: db.storage.pointer, ldc: n)
                db.node = nil
                gradB = db
            } else {
                gradB = try Tensor.batchedProduct(savedA, transA: true, g, transB: false).summed(to: savedB.shape)
            }
        }
        return [needs[0] ? try Tensor.batchedProduct(g, transA: false, savedB, transB: true).summed(to: savedA.shape) : nil, gradB]
    }
}

/// y = x·Wᵀ + b over the last axis of x; weight is [out, in] as in torch.nn.Linear.
public func linear(_ x: Tensor, weight: Tensor, bias: Tensor? = nil) throws -> Tensor {
    guard weight.rank == 2, let inFeatures = x.shape.last, inFeatures == weight.shape[1] else {
        throw TensorError.shapeMismatch(op: "linear", detail: "input \(x.shape) vs weight \(weight.shape) (expected [out, \(x.shape.last ?? 0)])")
    }
    let outFeatures = weight.shape[0]
    if let bias, bias.shape != [outFeatures] {
        throw TensorError.shapeMismatch(op: "linear", detail: "bias \(bias.shape), expected [\(outFeatures)]")
    }
    let rows = inFeatures == 0 ? 0 : x.count / inFeatures
    var output = Tensor(uninitializedShape: Array(x.shape.dropLast()) + [outFeatures])
    let py = output.storage.pointer
    if let bias {
        let pb = bias.storage.pointer
        for row in 0..<rows { (py + row * outFeatures).update(from: pb, count: outFeatures) }
    }
    gemm(transA: false, transB: true, m: rows, n: outFeatures, k: inFeatures, a: x.storage.pointer, lda: inFeatures,
         b: weight.storage.pointer, ldb: inFeatures, beta: bias == nil ? 0 : 1, c: py, ldc: outFeatures)
    output.node = nil
    // x is only needed for the weight's gradient: frozen layers keep nothing of it for backward.
    let savedX: Tensor? = weight.requiresGrad ? x.detached : nil
    let savedW = weight.detached, inputShape = x.shape
    var inputs = [x, weight]
    if let bias { inputs.append(bias) }
    return Tensor.record("linear", output, inputs: inputs) { g, needs in
        let pg = g.storage.pointer
        var gradX: Tensor? = nil, gradW: Tensor? = nil, gradB: Tensor? = nil
        if needs[0] {
            var dx = Tensor(uninitializedShape: inputShape)
            gemm(transA: false, transB: false, m: rows, n: inFeatures, k: outFeatures, a: pg, lda: outFeatures,
                 b: savedW.storage.pointer, ldb: inFeatures, c: dx.storage.pointer, ldc: inFeatures)
            dx.node = nil
            gradX = dx
        }
        if needs[1], let savedX {
            // beta 0 writes every element: no zero fill (340 MB of serial memset per ViT-B backward).
            var dw = Tensor(uninitializedShape: savedW.shape)
            gemm(transA: true, transB: false, m: outFeatures, n: inFeatures, k: rows, a: pg, lda: outFeatures,
                 b: savedX.storage.pointer, ldb: inFeatures, c: dw.storage.pointer, ldc: inFeatures)
            dw.node = nil
            gradW = dw
        }
        if needs.count > 2 && needs[2] {
            gradB = g.summed(to: [outFeatures])
        }
        return [gradX, gradW, gradB]
    }
}
