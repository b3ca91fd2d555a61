import CTensorKernels
import Foundation

/// What attention may look at. `.additive` is added to the scores and must broadcast to [B, H, Lq, Lk]
/// (e.g. [Lq, Lk], [B, 1, Lq, Lk], [B, 1, 1, Lk]); it is treated as a constant (no gradient).
/// `.causal` lets query i see keys 0...i (torch's is_causal, top-left aligned).
public enum AttentionMask {
    case none
    case causal
    case additive(Tensor)
}

/// Read-only view of the mask as seen from one (batch, head).
private struct MaskReader {
    let pointer: UnsafePointer<Float>?
    let strides: [Int]   // broadcast strides for [B, H, Lq, Lk]
    let causal: Bool

    init(_ mask: AttentionMask, shape: [Int]) throws {
        switch mask {
        case .none:
            (pointer, strides, causal) = (nil, [], false)
        case .causal:
            (pointer, strides, causal) = (nil, [], true)
        case .additive(let tensor):
            guard tensor.rank <= 4 else {
                throw TensorError.shapeMismatch(op: "attention", detail: "mask \(tensor.shape) has rank > 4")
            }
            let broadcast = try Broadcast.shape(tensor.shape, shape, op: "attention mask")
            guard broadcast == shape else {
                throw TensorError.shapeMismatch(op: "attention", detail: "mask \(tensor.shape) does not broadcast to scores \(shape)")
            }
            (pointer, strides, causal) = (UnsafePointer(tensor.storage.pointer), Broadcast.strides(of: tensor.shape, readAs: shape), false)
        }
    }

    /// Adds the mask to score rows `rowStart..<rowStart+rows` of (batch, head), stored `stride` apart.
    func apply(to scores: UnsafeMutablePointer<Float>, stride: Int, batch: Int, head: Int, rowStart: Int, rows: Int, keys: Int) {
        if causal {
            for r in 0..<rows {
                let i = rowStart + r
                if i + 1 < keys { (scores + r * stride + i + 1).update(repeating: -.infinity, count: keys - i - 1) }
            }
        } else if let pointer {
            let base = batch * strides[0] + head * strides[1]
            for r in 0..<rows {
                let line = pointer + base + (rowStart + r) * strides[2], out = scores + r * stride
                for j in 0..<keys { out[j] += line[j * strides[3]] }
            }
        }
    }
}

/// Scaled dot-product attention softmax(q·kᵀ·scale + mask)·v on q [B, H, Lq, D], k [B, H, Lk, D],
/// v [B, H, Lk, Dv] → [B, H, Lq, Dv]. Queries are processed in chunks so the score matrix never exceeds
/// `queryChunk × Lk` floats (default: about 256K floats, 1 MB, which stays in cache), which keeps 4096+ token self-attention in memory.
/// Backward recomputes the scores per chunk from the saved log-sum-exp instead of storing them.
/// `bfloat16Products` (a bf16 model's attention, as autocast's): where the CPU has AVX512-BF16 the products
/// q·kᵀ, P·v, dO·vᵀ and dS·k take bf16-rounded operands (scale·q, k, the unnormalised probabilities, v,
/// dO, dS) with float32 sums, and so do the backward's accumulations dV += Pᵀ·dO and dK += dSᵀ·q; mask,
/// softmax and its backward stay float32, as does the split-GEMM backward used when there are fewer heads
/// than workers. Elsewhere it changes nothing.
public func attention(_ q: Tensor, _ k: Tensor, _ v: Tensor, mask: AttentionMask = .none, scale: Float? = nil,
                      queryChunk: Int? = nil, bfloat16Products: Bool = false) throws -> Tensor {
    guard q.rank == 4, k.rank == 4, v.rank == 4, q.shape[0] == k.shape[0], q.shape[1] == k.shape[1],
          k.shape[0] == v.shape[0], k.shape[1] == v.shape[1], q.shape[3] == k.shape[3], k.shape[2] == v.shape[2] else {
        throw TensorError.shapeMismatch(op: "attention", detail: "q \(q.shape), k \(k.shape), v \(v.shape): expected [B, H, Lq, D], [B, H, Lk, D], [B, H, Lk, Dv]")
    }
    let (batches, heads, queries, depth) = (q.shape[0], q.shape[1], q.shape[2], q.shape[3])
    let (keys, valueDepth) = (k.shape[2], v.shape[3])
    guard keys > 0 else { throw TensorError.invalidArgument(op: "attention", detail: "no keys (k \(k.shape))") }
    let alpha = scale ?? 1 / Float(depth).squareRoot()
    let chunk = max(1, min(queries, queryChunk ?? max(16, (1 << 18) / keys)))
    if let requested = queryChunk, requested < 1 {
        throw TensorError.invalidArgument(op: "attention", detail: "queryChunk \(requested) must be positive")
    }
    let maskReader = try MaskReader(mask, shape: [batches, heads, queries, keys])
    let ld = scoreRowStride(keys)

    var output = Tensor(uninitializedShape: [batches, heads, queries, valueDepth])
    var logSumExp = Tensor(uninitializedShape: [batches * heads * queries])
    let pq = q.storage.pointer, pk = k.storage.pointer, pv = v.storage.pointer
    let po = output.storage.pointer, plse = logSumExp.storage.pointer
    let pairs = batches * heads
    // Work items are (batch·head, query chunk) pairs, pulled by the workers in runs of consecutive items;
    // each item's kernels run single-threaded and write only its own output rows and log-sum-exps. A
    // worker packs a head's keys for the score kernel when its item moves to another head.
    let chunksPerHead = (queries + chunk - 1) / chunk
    let items = pairs * chunksPerHead
    let bfloat16 = bfloat16Products && sds_cpu_has_avx512bf16() != 0
    parallelWorkers(items, batch: max(1, min(8, items / (8 * Threading.threadCount)))) { next in
        let scores = UnsafeMutablePointer<Float>.allocate(capacity: chunk * ld)
        let inverseSums = UnsafeMutablePointer<Float>.allocate(capacity: chunk)
        let packedKeys = UnsafeMutablePointer<Float>.allocate(capacity: bfloat16 ? 0 : sds_packed_keys_count(keys, depth))
        let reduced = bfloat16 ? BFloat16AttentionOperands(chunk: chunk, keys: keys, depth: depth, valueDepth: valueDepth,
                                                            layouts: [.keyRows, .valueColumns]) : nil
        defer { scores.deallocate(); inverseSums.deallocate(); packedKeys.deallocate() }
        var packedHead = -1
        while let range = next() { for item in range {
            let bh = item / chunksPerHead, start = (item % chunksPerHead) * chunk
            let rows = min(chunk, queries - start)
            let (b, h) = (bh / heads, bh % heads)
            let qc = pq + (bh * queries + start) * depth, kh = pk + bh * keys * depth, vh = pv + bh * keys * valueDepth
            if packedHead != bh {
                if let reduced { reduced.pack(keys: kh, values: vh) } else { sds_pack_keys(kh, keys, depth, packedKeys) }
                packedHead = bh
            }
            if let reduced {
                reduced.product(qc, lda: depth, rows: rows, scale: alpha, with: .keyRows, into: scores, ldc: ld)
            } else if sds_attention_scores(qc, depth, packedKeys, scores, ld, rows, keys, depth, alpha) == 0 {
                gemm(transA: false, transB: true, m: rows, n: keys, k: depth, alpha: alpha, a: qc, lda: depth,
                     b: kh, ldb: depth, c: scores, ldc: ld, split: false)
            }
            maskReader.apply(to: scores, stride: ld, batch: b, head: h, rowStart: start, rows: rows, keys: keys)
            // Unnormalised probabilities e^(s − max); the 1/Σ goes onto the rows×Dv output instead of
            // the rows×Lk scores (one pass over the scores fewer).
            let lseRow = plse + bh * queries + start
            for r in 0..<rows {
                let line = scores + r * ld
                let maximum = sds_row_max(line, keys)
                // A fully masked row has no finite maximum: its sum is 0 and its output NaN, as in torch.
                let shift = maximum.isFinite ? maximum : 0
                let total = sds_exp_shifted_sum(line, keys, shift)
                lseRow[r] = shift + log(total)
                inverseSums[r] = 1 / total
            }
            let out = po + (bh * queries + start) * valueDepth
            if let reduced {
                reduced.product(scores, lda: ld, rows: rows, with: .valueColumns, into: out, ldc: valueDepth)
            } else if sds_attention_values(scores, ld, vh, out, valueDepth, rows, keys, valueDepth) == 0 {
                gemm(transA: false, transB: false, m: rows, n: valueDepth, k: keys, a: scores, lda: ld,
                     b: vh, ldb: valueDepth, c: out, ldc: valueDepth, split: false)
            }
            for r in 0..<rows {
                let line = out + r * valueDepth, factor = inverseSums[r]
                for j in 0..<valueDepth { line[j] *= factor }
            }
        } }
    }
    output.node = nil
    logSumExp.node = nil
    let (savedQ, savedK, savedV) = (q.detached, k.detached, v.detached)
    let savedMask = mask, savedLogSumExp = logSumExp
    return Tensor.record("attention", output, inputs: [q, k, v]) { g, needs in
        let maskReader = try MaskReader(savedMask, shape: [batches, heads, queries, keys])
        // Gradients only for inputs that need them (an empty placeholder otherwise; never written).
        var dq = Tensor(zeros: needs[0] ? savedQ.shape : [0])
        var dk = Tensor(zeros: needs[1] ? savedK.shape : [0])
        var dv = Tensor(zeros: needs[2] ? savedV.shape : [0])
        let pq = savedQ.storage.pointer, pk = savedK.storage.pointer, pv = savedV.storage.pointer, pg = g.storage.pointer
        let pdq = dq.storage.pointer, pdk = dk.storage.pointer, pdv = dv.storage.pointer
        let plse = savedLogSumExp.storage.pointer
        let needScores = needs[0] || needs[1]
        let headParallel = Threading.threadCount > 1 && pairs >= Threading.threadCount
        // Split GEMMs: the route without the AVX2 kernels, or with fewer heads than workers.
        func gemmBackwardHead(_ bh: Int, probabilities: UnsafeMutablePointer<Float>, gradScores: UnsafeMutablePointer<Float>) {
            let (b, h) = (bh / heads, bh % heads)
            let qh = pq + bh * queries * depth, kh = pk + bh * keys * depth, vh = pv + bh * keys * valueDepth
            var start = 0
            while start < queries {
                let rows = min(chunk, queries - start)
                let qc = qh + start * depth, gc = pg + (bh * queries + start) * valueDepth
                // P = exp(scale·q·kᵀ + mask − lse)
                gemm(transA: false, transB: true, m: rows, n: keys, k: depth, alpha: alpha, a: qc, lda: depth,
                     b: kh, ldb: depth, c: probabilities, ldc: ld, split: !headParallel)
                maskReader.apply(to: probabilities, stride: ld, batch: b, head: h, rowStart: start, rows: rows, keys: keys)
                let lseRow = plse + bh * queries + start
                rowLoop(rows, parallel: !headParallel, grain: max(1, 4096 / keys)) { range in
                    for r in range { _ = sds_exp_shifted_sum(probabilities + r * ld, keys, lseRow[r]) }
                }
                if needs[2] {   // dV += Pᵀ·dO
                    gemm(transA: true, transB: false, m: keys, n: valueDepth, k: rows, a: probabilities, lda: ld,
                         b: gc, ldb: valueDepth, beta: 1, c: pdv + bh * keys * valueDepth, ldc: valueDepth, split: !headParallel)
                }
                if needScores {
                    // dP = dO·vᵀ; dS = P ⊙ (dP − Σ dP⊙P)
                    gemm(transA: false, transB: true, m: rows, n: keys, k: valueDepth, a: gc, lda: valueDepth,
                         b: vh, ldb: valueDepth, c: gradScores, ldc: ld, split: !headParallel)
                    rowLoop(rows, parallel: !headParallel, grain: max(1, 4096 / keys)) { range in
                        sds_softmax_backward_rows(probabilities + range.lowerBound * ld, gradScores + range.lowerBound * ld,
                                                  ld, range.count, keys, 1)
                    }
                    if needs[0] {   // dQ = scale·dS·k
                        gemm(transA: false, transB: false, m: rows, n: depth, k: keys, alpha: alpha, a: gradScores, lda: ld,
                             b: kh, ldb: depth, c: pdq + (bh * queries + start) * depth, ldc: depth, split: !headParallel)
                    }
                    if needs[1] {   // dK += scale·dSᵀ·q
                        gemm(transA: true, transB: false, m: keys, n: depth, k: rows, alpha: alpha, a: gradScores, lda: ld,
                             b: qc, ldb: depth, beta: 1, c: pdk + bh * keys * depth, ldc: depth, split: !headParallel)
                    }
                }
                start += rows
            }
        }
        // One head on one worker: the CTensorKernels scores kernel for P = q·kᵀ and dP = dO·vᵀ (K and V
        // packed once per head) and its products kernel for dQ = dS·k; in float32 the accumulations
        // dV += Pᵀ·dO and dK += dSᵀ·q are single-threaded OpenBLAS GEMMs, which pack the transposed operand
        // and ran at 55–70 GFLOP/s per core against 36–44 for the products kernel on the transposed layout
        // (Zen 3, [8, 4096, 40], 64-row chunks), while the own kernels beat OpenBLAS on the other two shapes.
        func kernelBackwardHead(_ bh: Int, scratch: [UnsafeMutablePointer<Float>]) {
            let (probabilities, gradScores, packedKeys, packedValues) = (scratch[0], scratch[1], scratch[2], scratch[3])
            let (dvTransposed, dkTransposed) = (scratch[4], scratch[5])
            let (b, h) = (bh / heads, bh % heads)
            let qh = pq + bh * queries * depth, kh = pk + bh * keys * depth, vh = pv + bh * keys * valueDepth
            // bf16 forward: the scores are recomputed from the same bf16 products (so P matches the saved
            // log-sum-exp), and dP, dQ, dV and dK take bf16 operands too, dV and dK accumulated transposed
            // ([Dv, Lk] and [D, Lk], float32) across the chunks and written out once per head.
            let reduced = bfloat16 ? BFloat16AttentionOperands(chunk: chunk, keys: keys, depth: depth, valueDepth: valueDepth,
                                                               layouts: needScores ? [.keyRows, .valueRows, .keyColumns] : [.keyRows],
                                                               accumulatesTransposed: needs[1] || needs[2]) : nil
            if let reduced {
                reduced.pack(keys: kh, values: vh)
                if needs[2] { dvTransposed.update(repeating: 0, count: valueDepth * keys) }
                if needs[1] { dkTransposed.update(repeating: 0, count: depth * keys) }
            } else {
                sds_pack_keys(kh, keys, depth, packedKeys)
                if needScores { sds_pack_keys(vh, keys, valueDepth, packedValues) }
            }
            var start = 0
            while start < queries {
                let rows = min(chunk, queries - start)
                let qc = qh + start * depth, gc = pg + (bh * queries + start) * valueDepth
                // P = exp(scale·q·kᵀ + mask − lse)
                if let reduced {
                    reduced.product(qc, lda: depth, rows: rows, scale: alpha, with: .keyRows, into: probabilities, ldc: ld)
                } else {
                    _ = sds_attention_scores(qc, depth, packedKeys, probabilities, ld, rows, keys, depth, alpha)
                }
                maskReader.apply(to: probabilities, stride: ld, batch: b, head: h, rowStart: start, rows: rows, keys: keys)
                let lseRow = plse + bh * queries + start
                for r in 0..<rows { _ = sds_exp_shifted_sum(probabilities + r * ld, keys, lseRow[r]) }
                if needs[2] {   // dV += Pᵀ·dO
                    if let reduced {
                        reduced.accumulateTransposed(gc, width: valueDepth, rows: rows, times: probabilities, ldRight: ld, into: dvTransposed)
                    } else {
                        gemm(transA: true, transB: false, m: keys, n: valueDepth, k: rows, a: probabilities, lda: ld,
                             b: gc, ldb: valueDepth, beta: 1, c: pdv + bh * keys * valueDepth, ldc: valueDepth, split: false)
                    }
                }
                if needScores {
                    // dP = dO·vᵀ; dS = scale·P ⊙ (dP − Σ dP⊙P) (the scores' scale folded in here)
                    if let reduced {
                        reduced.product(gc, lda: valueDepth, rows: rows, with: .valueRows, into: gradScores, ldc: ld)
                    } else {
                        _ = sds_attention_scores(gc, valueDepth, packedValues, gradScores, ld, rows, keys, valueDepth, 1)
                    }
                    sds_softmax_backward_rows(probabilities, gradScores, ld, rows, keys, alpha)
                    if needs[0] {   // dQ = dS·k
                        let dqc = pdq + (bh * queries + start) * depth
                        if let reduced {
                            reduced.product(gradScores, lda: ld, rows: rows, with: .keyColumns, into: dqc, ldc: depth)
                        } else {
                            _ = sds_accumulate_products(gradScores, ld, 1, kh, depth, dqc, depth, rows, keys, depth, 0)
                        }
                    }
                    if needs[1] {   // dK += dSᵀ·q
                        if let reduced {
                            reduced.accumulateTransposed(qc, width: depth, rows: rows, times: gradScores, ldRight: ld, into: dkTransposed)
                        } else {
                            gemm(transA: true, transB: false, m: keys, n: depth, k: rows, a: gradScores, lda: ld,
                                 b: qc, ldb: depth, beta: 1, c: pdk + bh * keys * depth, ldc: depth, split: false)
                        }
                    }
                }
                start += rows
            }
            if reduced != nil {
                if needs[2] { transpose(dvTransposed, rows: valueDepth, columns: keys, into: pdv + bh * keys * valueDepth) }
                if needs[1] { transpose(dkTransposed, rows: depth, columns: keys, into: pdk + bh * keys * depth) }
            }
        }
        // Each (batch, head) writes only its own slices of dq, dk and dv, so heads can run in parallel.
        if sds_kernels_use_avx2() != 0 && (headParallel || Threading.threadCount == 1) {
            // The float32 packed keys and values are not needed when the products run in bf16.
            let counts = [chunk * ld, chunk * ld, bfloat16 ? 0 : sds_packed_keys_count(keys, depth),
                          bfloat16 ? 0 : sds_packed_keys_count(keys, valueDepth),
                          bfloat16 && needs[2] ? valueDepth * keys : 0, bfloat16 && needs[1] ? depth * keys : 0]
            forEachHead(pairs, parallel: headParallel, scratchCounts: counts) { bh, scratch in kernelBackwardHead(bh, scratch: scratch) }
        } else {
            forEachHead(pairs, parallel: headParallel, scratchCounts: [chunk * ld, chunk * ld]) { bh, scratch in
                gemmBackwardHead(bh, probabilities: scratch[0], gradScores: scratch[1])
            }
        }
        dq.node = nil; dk.node = nil; dv.node = nil
        return [needs[0] ? dq : nil, needs[1] ? dk : nil, needs[2] ? dv : nil]
    }
}

/// The bf16 operands of one head's attention products (`bfloat16Products` on an AVX512-BF16 CPU): k and v
/// rounded to bf16 and packed, as rows or transposed, in the bf16 kernel's 64-column panels, plus the
/// buffers that round a chunk's left operand (the kernel wants even, zero-padded row strides).
private final class BFloat16AttentionOperands {
    /// Which packing: `keyRows` (n = keys, k = depth) for q·kᵀ, `valueRows` for dO·vᵀ, `valueColumns`
    /// (n = value depth, k = keys) for P·v, `keyColumns` for dS·k.
    enum Layout { case keyRows, valueRows, keyColumns, valueColumns }

    let keys: Int, depth: Int, valueDepth: Int
    private var packed: [Layout: UnsafeMutablePointer<UInt16>] = [:]
    private let rowsBF16: UnsafeMutablePointer<UInt16>, staging: UnsafeMutablePointer<Float>, headBF16: UnsafeMutablePointer<UInt16>
    /// For `accumulateTransposed`: a chunk's right operand packed, its left operand transposed in bf16.
    private let chunkPacked: UnsafeMutablePointer<UInt16>, columnsBF16: UnsafeMutablePointer<UInt16>

    init(chunk: Int, keys: Int, depth: Int, valueDepth: Int, layouts: [Layout], accumulatesTransposed: Bool = false) {
        (self.keys, self.depth, self.valueDepth) = (keys, depth, valueDepth)
        let widest = max(keys, depth, valueDepth) + 1
        rowsBF16 = .allocate(capacity: chunk * widest)
        staging = .allocate(capacity: chunk * max(depth, valueDepth))
        headBF16 = .allocate(capacity: keys * max(depth, valueDepth))
        chunkPacked = .allocate(capacity: accumulatesTransposed ? sds_bf16_packed_count(keys, chunk) : 0)
        columnsBF16 = .allocate(capacity: accumulatesTransposed ? max(depth, valueDepth) * ((chunk + 1) & ~1) : 0)
        for layout in layouts {
            let (n, k) = shape(layout)
            packed[layout] = .allocate(capacity: sds_bf16_packed_count(n, k))
        }
    }

    deinit {
        for buffer in packed.values { buffer.deallocate() }
        rowsBF16.deallocate(); staging.deallocate(); headBF16.deallocate(); chunkPacked.deallocate(); columnsBF16.deallocate()
    }

    /// The packed matrix's outputs n and inner length k.
    private func shape(_ layout: Layout) -> (n: Int, k: Int) {
        switch layout {
        case .keyRows: return (keys, depth)
        case .valueRows: return (keys, valueDepth)
        case .keyColumns: return (depth, keys)
        case .valueColumns: return (valueDepth, keys)
        }
    }

    /// Packs every layout of this head's k [keys, depth] and v [keys, valueDepth].
    func pack(keys k: UnsafePointer<Float>, values v: UnsafePointer<Float>) {
        for (layout, target) in packed {
            let (n, inner) = shape(layout)
            switch layout {
            case .keyRows, .valueRows:
                sds_f32_to_bf16(layout == .keyRows ? k : v, n, inner, headBF16, inner)
                sds_bf16_pack_weights(headBF16, n, inner, target)
            case .keyColumns, .valueColumns:   // W[c, j] = source[j, c]: the head's rows as the packed columns
                sds_bf16_pack_transposed(layout == .keyColumns ? k : v, n, keys, n, target)
            }
        }
    }

    /// c[r·ldc + j] = Σ_t bf16(scale·a[r·lda + t])·bf16(W[j, t]) for `rows` rows, W the packed `layout`.
    func product(_ a: UnsafePointer<Float>, lda: Int, rows: Int, scale: Float = 1, with layout: Layout,
                 into c: UnsafeMutablePointer<Float>, ldc: Int) {
        guard let weights = packed[layout] else { preconditionFailure("attention: bf16 layout \(layout) was not packed") }
        let (n, inner) = shape(layout)
        let stride = (inner + 1) & ~1
        for r in 0..<rows {
            var line = a + r * lda
            if scale != 1 {
                for t in 0..<inner { staging[t] = scale * line[t] }
                line = UnsafePointer(staging)
            }
            sds_f32_to_bf16(line, 1, inner, rowsBF16 + r * stride, stride)
        }
        _ = sds_bf16_gemm_block(rowsBF16, stride, weights, n, inner, c, ldc, 0, 0, rows, 0,
                                (n + Int(SDS_BF16_PANEL) - 1) / Int(SDS_BF16_PANEL))
    }

    /// accumulator[i·keys + j] += Σ_r bf16(left[r·width + i])·bf16(right[r·ldRight + j]) for i < width,
    /// j < keys, r < rows: one chunk's dVᵀ += dOᵀ·P (left dO, right P) or dKᵀ += qᵀ·dS, so the chunk's
    /// [rows, keys] operand is packed as it lies instead of transposed. Needs `accumulatesTransposed`.
    func accumulateTransposed(_ left: UnsafePointer<Float>, width: Int, rows: Int, times right: UnsafePointer<Float>,
                              ldRight: Int, into accumulator: UnsafeMutablePointer<Float>) {
        transpose(left, rows: rows, columns: width, into: staging)
        let stride = (rows + 1) & ~1
        sds_f32_to_bf16(staging, width, rows, columnsBF16, stride)
        sds_bf16_pack_transposed(right, ldRight, rows, keys, chunkPacked)
        _ = sds_bf16_gemm_block(columnsBF16, stride, chunkPacked, keys, rows, accumulator, keys, 1, 0, width, 0,
                                (keys + Int(SDS_BF16_PANEL) - 1) / Int(SDS_BF16_PANEL))
    }
}

/// out[c·rows + r] = source[r·columns + c]: a chunk's left operand for `accumulateTransposed`, or a
/// head's transposed dV or dK accumulator written to its slice.
private func transpose(_ source: UnsafePointer<Float>, rows: Int, columns: Int, into out: UnsafeMutablePointer<Float>) {
    for r in 0..<rows { for c in 0..<columns { out[c * rows + r] = source[r * columns + c] } }
}

/// Row stride of the score buffers, in floats: the key count rounded up to whole 64-byte lines, and to
/// an odd number of lines. The kernels read these buffers down their columns (Pᵀ and dSᵀ products, the
/// 8-row blocks of P·V); rows a multiple of 4 KB apart would all fall into the same L1 sets.
func scoreRowStride(_ keys: Int) -> Int {
    let lines = (keys + 15) / 16
    return 16 * (lines % 2 == 0 ? lines + 1 : lines)
}

/// Runs `body` for every (batch, head) index, either spread over the workers (each with its own
/// scratch buffers) or sequentially with one set of buffers.
private func forEachHead(_ count: Int, parallel: Bool, scratchCounts: [Int],
                         _ body: (Int, [UnsafeMutablePointer<Float>]) -> Void) {
    func withScratch(_ run: ([UnsafeMutablePointer<Float>]) -> Void) {
        let buffers = scratchCounts.map { UnsafeMutablePointer<Float>.allocate(capacity: max($0, 1)) }
        defer { buffers.forEach { $0.deallocate() } }
        run(buffers)
    }
    if parallel {
        parallelFor(count, grain: 1) { range in
            withScratch { buffers in for index in range { body(index, buffers) } }
        }
    } else {
        withScratch { buffers in for index in 0..<count { body(index, buffers) } }
    }
}

/// A row loop that is split over the workers only when asked (not inside an already-parallel region).
@inline(__always)
private func rowLoop(_ rows: Int, parallel: Bool, grain: Int, _ body: (Range<Int>) -> Void) {
    if parallel { parallelFor(rows, grain: grain, body) } else if rows > 0 { body(0..<rows) }
}
