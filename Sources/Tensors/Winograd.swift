import CTensorKernels

/// 3×3 stride-1 convolution by Winograd F(2×2, 3×3): each 2×2 output tile comes from a 4×4 input tile
/// through 16 element-wise products in the transformed domain, so the channel contraction is 16 GEMMs
/// of [O, C]·[C, tiles] with 2.25× fewer multiply-adds than the direct convolution. The transforms
/// use only ±1 and ½ factors, so the result stays within fp32 rounding of the direct sum.
///
///   U = G·g·Gᵀ (weights), V = Bᵀ·d·B (input tiles), Y = Aᵀ·(Σ_c U ⊙ V)·A (outputs)
///
/// Tiles are processed in blocks of whole tile rows whose transformed inputs and products stay near the
/// L2 cache; blocks run on the workers with single-threaded GEMMs. The input and output transforms are
/// CTensorKernels row kernels (AVX2 across 8 tiles when available).
struct WinogradConvolution {
    let channels: Int, height: Int, width: Int, outChannels: Int
    let padding: Padding2D
    /// Scratch budget in floats (tests shrink it to force one-tile blocks).
    let budget: Int

    /// Tiles per block at most (measured on SD's 320-channel 64² conv: 256 beat 64, 128 and 512).
    static let maximumBlockTiles = 256

    var outHeight: Int { height + padding.top + padding.bottom - 2 }
    var outWidth: Int { width + padding.left + padding.right - 2 }

    /// `weight` is [outChannels, channels, 3, 3]; with `adjointWeights` it is a kernel [channels, outChannels,
    /// 3, 3] used flipped and transposed (the input gradient of that kernel's same-padded convolution).
    func forward(_ input: UnsafePointer<Float>, images: Int, weight: UnsafePointer<Float>, adjointWeights: Bool = false,
                 bias: UnsafePointer<Float>?, into output: UnsafeMutablePointer<Float>) {
        let (c, o) = (channels, outChannels)
        let tilesHigh = (outHeight + 1) / 2, tilesWide = (outWidth + 1) / 2, tileCount = tilesHigh * tilesWide
        // The padded image covers every 4×4 input tile, including the overhang of odd output sizes.
        let paddedH = 2 * tilesHigh + 2, paddedW = 2 * tilesWide + 2, plane = paddedH * paddedW
        let transformedWeights = UnsafeMutablePointer<Float>.allocate(capacity: 16 * o * c)
        let padded = UnsafeMutablePointer<Float>.allocate(capacity: c * plane)
        defer { transformedWeights.deallocate(); padded.deallocate() }
        transformWeights(weight, adjoint: adjointWeights, into: transformedWeights)
        // Blocks of whole tile rows; transformed inputs (16·C) and products (16·O) per tile within the budget,
        // and at least one block per worker when there are enough tile rows (a 32² image is 16 tile rows:
        // one 256-tile block would leave the other workers idle).
        let fitting = max(1, min(tilesHigh, min(Self.maximumBlockTiles, budget / (16 * (c + o))) / tilesWide))
        let blockRows = min(fitting, max(1, (tilesHigh + Threading.threadCount - 1) / Threading.threadCount))
        let blockTiles = blockRows * tilesWide
        let blockCount = (tilesHigh + blockRows - 1) / blockRows
        for image in 0..<images {
            pad(input + image * c * height * width, into: padded, paddedH: paddedH, paddedW: paddedW)
            let out = output + image * o * outHeight * outWidth
            parallelWorkers(blockCount, batch: 1) { next in
                let transformed = UnsafeMutablePointer<Float>.allocate(capacity: 16 * c * blockTiles)
                let products = UnsafeMutablePointer<Float>.allocate(capacity: 16 * o * blockTiles)
                defer { transformed.deallocate(); products.deallocate() }
                while let blocks = next() {
                    for block in blocks {
                        let rows = (block * blockRows)..<min((block + 1) * blockRows, tilesHigh)
                        let count = rows.count * tilesWide
                        for channel in 0..<c {
                            for ty in rows {
                                sds_winograd_input_row(padded + channel * plane + 2 * ty * paddedW, paddedW, tilesWide,
                                                       transformed + channel * blockTiles + (ty - rows.lowerBound) * tilesWide,
                                                       c * blockTiles)
                            }
                        }
                        for k in 0..<16 {
                            gemm(transA: false, transB: false, m: o, n: count, k: c, a: transformedWeights + k * o * c, lda: c,
                                 b: transformed + k * c * blockTiles, ldb: blockTiles,
                                 c: products + k * o * blockTiles, ldc: blockTiles, split: false)
                        }
                        for outChannel in 0..<o {
                            for ty in rows {
                                sds_winograd_output_row(products + outChannel * blockTiles + (ty - rows.lowerBound) * tilesWide,
                                                        o * blockTiles, tilesWide, bias?[outChannel] ?? 0,
                                                        out + (outChannel * outHeight + 2 * ty) * outWidth, outWidth, outWidth,
                                                        2 * ty + 1 < outHeight ? 1 : 0)
                            }
                        }
                    }
                }
            }
        }
    }

    /// U[k][o][c] = (G·g·Gᵀ)[k] with G = [[1, 0, 0], [½, ½, ½], [½, −½, ½], [0, 0, 1]] (CTensorKernels);
    /// for the adjoint, g is the flipped kernel weight[c][o].
    private func transformWeights(_ weight: UnsafePointer<Float>, adjoint: Bool, into u: UnsafeMutablePointer<Float>) {
        let (c, o) = (channels, outChannels)
        parallelFor(o, grain: 8) { rows in
            if adjoint {
                sds_winograd_weights(weight, c, o, u, 1, rows.lowerBound, rows.upperBound)
            } else {
                sds_winograd_weights(weight, o, c, u, 0, rows.lowerBound, rows.upperBound)
            }
        }
    }

    /// The image [C, H, W] into a zero-bordered [C, paddedH, paddedW] buffer (the conv's padding on the
    /// top and left; zeros fill everything past the image on the bottom and right).
    private func pad(_ image: UnsafePointer<Float>, into padded: UnsafeMutablePointer<Float>, paddedH: Int, paddedW: Int) {
        let plane = paddedH * paddedW
        let rows = min(height, paddedH - padding.top), columns = min(width, paddedW - padding.left)
        parallelFor(channels, grain: 16) { range in
            for channel in range {
                let target = padded + channel * plane, source = image + channel * height * width
                target.update(repeating: 0, count: plane)
                for row in 0..<rows {
                    (target + (padding.top + row) * paddedW + padding.left).update(from: source + row * width, count: columns)
                }
            }
        }
    }
}
