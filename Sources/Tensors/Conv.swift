/// Zero padding of a 2-D convolution, per side (the VAE's downsampler pads (0, 1, 0, 1)).
public struct Padding2D: Equatable, Sendable {
    public var top: Int, bottom: Int, left: Int, right: Int
    public init(top: Int, bottom: Int, left: Int, right: Int) {
        (self.top, self.bottom, self.left, self.right) = (top, bottom, left, right)
    }
    public static func uniform(_ p: Int) -> Padding2D { Padding2D(top: p, bottom: p, left: p, right: p) }
    public static let zero = Padding2D.uniform(0)
}

/// Geometry of one conv2d call; im2col/col2im and the GEMM shapes all derive from it.
private struct ConvGeometry {
    let channels: Int, height: Int, width: Int
    let outChannels: Int, kernelH: Int, kernelW: Int
    let strideH: Int, strideW: Int
    let padding: Padding2D
    let outHeight: Int, outWidth: Int
    /// Column-buffer budget in floats; 8M (32 MB) by default, smaller in tests to force tiling.
    let columnBudget: Int

    var patch: Int { channels * kernelH * kernelW }          // GEMM K
    var outPixels: Int { outHeight * outWidth }               // GEMM N (whole image)
    var inPixels: Int { height * width }
    /// A 1×1, stride-1, unpadded convolution is a plain GEMM on the input image.
    var isPointwise: Bool { kernelH == 1 && kernelW == 1 && strideH == 1 && strideW == 1 && padding == .zero }

    /// Output rows per im2col tile: the column buffer stays near 8M floats (32 MB) however large the
    /// image (a 512² VAE decoder conv would otherwise need a 1.2 GB buffer), and each tile is still a
    /// large GEMM.
    var tileRows: Int { max(1, min(outHeight, columnBudget / max(patch * outWidth, 1))) }

    /// cols[(c, i, j), (oh − rows.lowerBound, ow)] = x[c, oh·sh − top + i, ow·sw − left + j] (0 outside),
    /// for output rows `rows`; the buffer has rows.count·outWidth columns.
    func im2col(_ image: UnsafePointer<Float>, rows: Range<Int>, into cols: UnsafeMutablePointer<Float>) {
        let tilePixels = rows.count * outWidth
        parallelFor(patch, grain: max(1, 8192 / max(tilePixels, 1))) { range in
            for row in range {
                let c = row / (kernelH * kernelW), i = (row / kernelW) % kernelH, j = row % kernelW
                let plane = image + c * inPixels
                let out = cols + row * tilePixels
                for oh in rows {
                    let ih = oh * strideH - padding.top + i
                    let line = out + (oh - rows.lowerBound) * outWidth
                    guard ih >= 0, ih < height else {
                        line.update(repeating: 0, count: outWidth)
                        continue
                    }
                    let source = plane + ih * width
                    for ow in 0..<outWidth {
                        let iw = ow * strideW - padding.left + j
                        line[ow] = (iw >= 0 && iw < width) ? source[iw] : 0
                    }
                }
            }
        }
    }

    /// The adjoint of im2col for the same tile: image[c, ih, iw] += cols[...]
    /// (one worker per channel, so no write races).
    func col2im(_ cols: UnsafePointer<Float>, rows: Range<Int>, addingInto image: UnsafeMutablePointer<Float>) {
        let tilePixels = rows.count * outWidth
        parallelFor(channels, grain: 1) { range in
            for c in range {
                let plane = image + c * inPixels
                for i in 0..<kernelH {
                    for j in 0..<kernelW {
                        let source = cols + ((c * kernelH + i) * kernelW + j) * tilePixels
                        for oh in rows {
                            let ih = oh * strideH - padding.top + i
                            guard ih >= 0, ih < height else { continue }
                            let line = plane + ih * width, grad = source + (oh - rows.lowerBound) * outWidth
                            for ow in 0..<outWidth {
                                let iw = ow * strideW - padding.left + j
                                if iw >= 0 && iw < width { line[iw] += grad[ow] }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Output-row tiles covering the image.
    var tiles: [Range<Int>] {
        stride(from: 0, to: outHeight, by: tileRows).map { $0..<min($0 + tileRows, outHeight) }
    }
}

/// 2-D cross-correlation as torch.nn.functional.conv2d (groups = 1, no dilation):
/// x [N, C, H, W], weight [O, C, kh, kw], bias [O]. Lowered to GEMMs via im2col over tiles of output
/// rows (bounded scratch memory); a 1×1 stride-1 convolution is one GEMM on the image itself.
public func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor? = nil,
                   stride: (height: Int, width: Int) = (1, 1), padding: Padding2D = .zero) throws -> Tensor {
    try conv2d(x, weight: weight, bias: bias, stride: stride, padding: padding, columnBudget: 1 << 23)
}

func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, stride: (height: Int, width: Int), padding: Padding2D,
            columnBudget: Int) throws -> Tensor {
    guard x.rank == 4, weight.rank == 4, x.shape[1] == weight.shape[1] else {
        throw TensorError.shapeMismatch(op: "conv2d", detail: "input \(x.shape) and weight \(weight.shape): expected [N, C, H, W] and [O, C, kh, kw]")
    }
    guard stride.height > 0, stride.width > 0,
          padding.top >= 0, padding.bottom >= 0, padding.left >= 0, padding.right >= 0 else {
        throw TensorError.invalidArgument(op: "conv2d", detail: "stride \(stride) must be positive and padding \(padding) non-negative")
    }
    let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    let (o, kh, kw) = (weight.shape[0], weight.shape[2], weight.shape[3])
    let paddedH = h + padding.top + padding.bottom, paddedW = w + padding.left + padding.right
    guard paddedH >= kh, paddedW >= kw, kh > 0, kw > 0 else {
        throw TensorError.shapeMismatch(op: "conv2d", detail: "kernel \(kh)×\(kw) larger than padded input \(paddedH)×\(paddedW)")
    }
    if let bias, bias.shape != [o] {
        throw TensorError.shapeMismatch(op: "conv2d", detail: "bias \(bias.shape), expected [\(o)]")
    }
    let geometry = ConvGeometry(channels: c, height: h, width: w, outChannels: o, kernelH: kh, kernelW: kw,
                                strideH: stride.height, strideW: stride.width, padding: padding,
                                outHeight: (paddedH - kh) / stride.height + 1, outWidth: (paddedW - kw) / stride.width + 1,
                                columnBudget: columnBudget)
    let (patch, pixels, outWidth) = (geometry.patch, geometry.outPixels, geometry.outWidth)
    var output = Tensor(uninitializedShape: [n, o, geometry.outHeight, geometry.outWidth])
    let px = x.storage.pointer, pw = weight.storage.pointer, py = output.storage.pointer
    let columns = geometry.isPointwise ? nil : UnsafeMutablePointer<Float>.allocate(capacity: patch * geometry.tileRows * outWidth)
    defer { columns?.deallocate() }
    for image in 0..<n {
        let out = py + image * o * pixels
        if let bias {
            for channel in 0..<o { (out + channel * pixels).update(repeating: bias.storage.pointer[channel], count: pixels) }
        }
        let input = px + image * c * h * w
        guard let columns else {
            gemm(transA: false, transB: false, m: o, n: pixels, k: patch, a: pw, lda: patch,
                 b: input, ldb: pixels, beta: bias == nil ? 0 : 1, c: out, ldc: pixels)
            continue
        }
        for rows in geometry.tiles {
            // y[:, tile] = W · cols(tile); the tile is a contiguous column range of every output row.
            geometry.im2col(input, rows: rows, into: columns)
            gemm(transA: false, transB: false, m: o, n: rows.count * outWidth, k: patch, a: pw, lda: patch,
                 b: columns, ldb: rows.count * outWidth, beta: bias == nil ? 0 : 1,
                 c: out + rows.lowerBound * outWidth, ldc: pixels)
        }
    }
    output.node = nil
    let (savedX, savedW) = (x.detached, weight.detached)
    var inputs = [x, weight]
    if let bias { inputs.append(bias) }
    return Tensor.record("conv2d", output, inputs: inputs) { g, needs in
        let pg = g.storage.pointer, px = savedX.storage.pointer, pw = savedW.storage.pointer
        var dx = needs[0] ? Tensor(zeros: savedX.shape) : nil
        var dw = needs[1] ? Tensor(zeros: savedW.shape) : nil
        let scratch = geometry.isPointwise ? nil : UnsafeMutablePointer<Float>.allocate(capacity: patch * geometry.tileRows * outWidth)
        defer { scratch?.deallocate() }
        for image in 0..<n {
            let grad = pg + image * o * pixels
            let input = px + image * c * h * w
            guard let scratch else {
                // 1×1: dW += g[n]·x[n]ᵀ, dx[n] = Wᵀ·g[n]
                if let weightGradient = dw?.storage.pointer {
                    gemm(transA: false, transB: true, m: o, n: patch, k: pixels, a: grad, lda: pixels,
                         b: input, ldb: pixels, beta: 1, c: weightGradient, ldc: patch)
                }
                if let inputGradient = dx?.storage.pointer {
                    gemm(transA: true, transB: false, m: patch, n: pixels, k: o, a: pw, lda: patch,
                         b: grad, ldb: pixels, c: inputGradient + image * c * h * w, ldc: pixels)
                }
                continue
            }
            for rows in geometry.tiles {
                let tilePixels = rows.count * outWidth
                let gradTile = grad + rows.lowerBound * outWidth
                if let weightGradient = dw?.storage.pointer {
                    // dW += g[:, tile] · cols(tile)ᵀ
                    geometry.im2col(input, rows: rows, into: scratch)
                    gemm(transA: false, transB: true, m: o, n: patch, k: tilePixels, a: gradTile, lda: pixels,
                         b: scratch, ldb: tilePixels, beta: 1, c: weightGradient, ldc: patch)
                }
                if let inputGradient = dx?.storage.pointer {
                    // dcols = Wᵀ · g[:, tile], scattered back into the image.
                    gemm(transA: true, transB: false, m: patch, n: tilePixels, k: o, a: pw, lda: patch,
                         b: gradTile, ldb: pixels, c: scratch, ldc: tilePixels)
                    geometry.col2im(scratch, rows: rows, addingInto: inputGradient + image * c * h * w)
                }
            }
        }
        dx?.node = nil
        dw?.node = nil
        var result: [Tensor?] = [dx, dw]
        if needs.count > 2 { result.append(needs[2] ? g.reduceSum(keeping: [1, o, 1, 1]).reshapedUnchecked([o]) : nil) }
        return result
    }
}

/// conv2d with a square stride and symmetric padding.
public func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor? = nil, stride: Int, padding: Int = 0) throws -> Tensor {
    try conv2d(x, weight: weight, bias: bias, stride: (stride, stride), padding: .uniform(padding))
}

extension Tensor {
    /// Same storage under a shape of equal element count (internal: callers guarantee the count).
    func reshapedUnchecked(_ newShape: [Int]) -> Tensor { Tensor(shape: newShape, storage: storage) }
}
