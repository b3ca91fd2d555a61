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
    let routing: ConvRouting

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

    /// Stride-1 kernels over enough channels run as kh·kw shifted GEMMs on a zero-padded copy of the
    /// image (no im2col); few channels would make those GEMMs too thin.
    /// Small images go through im2col instead: both fast paths rearrange the whole weight on every
    /// call, which dominates when few output pixels share it (the UNet's 8×8 and 16×16 levels).
    var usesShiftedProducts: Bool {
        strideH == 1 && strideW == 1 && !isPointwise && channels >= 16 && outPixels >= routing.shiftedMinimumOutputPixels
    }

    /// 3×3 stride-1 kernels over enough channels and output pixels run as Winograd F(2×2, 3×3).
    var usesWinograd: Bool {
        strideH == 1 && strideW == 1 && kernelH == 3 && kernelW == 3 && channels >= 16 && outPixels >= routing.winogradMinimumOutputPixels
    }

    /// The input gradient of a padding-1 ("same") 3×3 stride-1 convolution is the convolution of the
    /// output gradient (outChannels channels) with the flipped, transposed kernel, again padding 1:
    /// true when that convolution takes the Winograd route (which transforms the kernel flipped and
    /// transposed in place of a copy).
    var hasWinogradAdjoint: Bool {
        strideH == 1 && strideW == 1 && kernelH == 3 && kernelW == 3 && padding == .uniform(1) && outChannels >= 16
            && outPixels >= routing.winogradMinimumOutputPixels
    }

    /// Output-row tiles covering the image.
    var tiles: [Range<Int>] {
        stride(from: 0, to: outHeight, by: tileRows).map { $0..<min($0 + tileRows, outHeight) }
    }
}

/// Which algorithm a stride-1 convolution uses, by output size: a value passed to `conv2d`, so no
/// global setting changes what a model computes.
public struct ConvRouting: Sendable, Equatable {
    /// Output pixels per image from which 3×3 stride-1 convolutions over 16+ channels run as Winograd
    /// F(2×2,3×3). It transforms the weights on every call (16/9 of their size), which pays off only
    /// when enough output pixels share them: from the UNet's 32² level (640 channels, 2 threads: 44 ms
    /// vs 59 ms by im2col), not at 16² (1280 channels: 146 vs 60 ms). `sdsclip-bench conv3x3-shape`.
    public var winogradMinimumOutputPixels: Int
    /// Output pixels per image below which other stride-1 convolutions use im2col + one GEMM rather
    /// than shifted GEMMs.
    public var shiftedMinimumOutputPixels: Int

    public init(winogradMinimumOutputPixels: Int = 1024, shiftedMinimumOutputPixels: Int = 2048) {
        self.winogradMinimumOutputPixels = winogradMinimumOutputPixels
        self.shiftedMinimumOutputPixels = shiftedMinimumOutputPixels
    }

    /// The measured thresholds every model uses.
    public static let standard = ConvRouting()
    /// Winograd / shifted GEMMs wherever they apply (tests, benchmarks).
    public static let fastPaths = ConvRouting(winogradMinimumOutputPixels: 0, shiftedMinimumOutputPixels: 0)
    /// Shifted GEMMs but never Winograd.
    public static let shiftedOnly = ConvRouting(winogradMinimumOutputPixels: .max, shiftedMinimumOutputPixels: 0)
    /// im2col + GEMM always.
    public static let im2colOnly = ConvRouting(winogradMinimumOutputPixels: .max, shiftedMinimumOutputPixels: .max)
}

/// 2-D cross-correlation as torch.nn.functional.conv2d (groups = 1, no dilation):
/// x [N, C, H, W], weight [O, C, kh, kw], bias [O]. Lowered to GEMMs via im2col over tiles of output
/// rows (bounded scratch memory), shifted GEMMs or Winograd as `routing` says; a 1×1 stride-1
/// convolution is one GEMM on the image itself.
public func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor? = nil,
                   stride: (height: Int, width: Int) = (1, 1), padding: Padding2D = .zero,
                   routing: ConvRouting = .standard) throws -> Tensor {
    try conv2d(x, weight: weight, bias: bias, stride: stride, padding: padding, columnBudget: 1 << 23, routing: routing)
}

func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, stride: (height: Int, width: Int), padding: Padding2D,
            columnBudget: Int, routing: ConvRouting = .standard) throws -> Tensor {
    guard x.rank == 4, weight.rank == 4, x.shape[1] == weight.shape[1] else {
        throw TensorError.shapeMismatch(op: "conv2d", detail: "input \(x.shape) and weight \(weight.shape): expected [N, C, H, W] and [O, C, kh, kw]")
    }
    guard stride.height > 0, stride.width > 0,
          padding.top >= 0, padding.bottom >= 0, padding.left >= 0, padding.right >= 0 else {
        throw TensorError.invalidArgument(op: "conv2d", detail: "stride \(stride) must be positive and padding \(padding) non-negative")
    }
    let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    let (o, kh, kw) = (weight.shape[0], weight.shape[2], weight.shape[3])
    let outSize = try convOutputSize(input: x.shape, weight: weight.shape, bias: bias, stride: stride, padding: padding)
    let geometry = ConvGeometry(channels: c, height: h, width: w, outChannels: o, kernelH: kh, kernelW: kw,
                                strideH: stride.height, strideW: stride.width, padding: padding,
                                outHeight: outSize.height, outWidth: outSize.width,
                                columnBudget: columnBudget, routing: routing)
    let (patch, pixels, outWidth) = (geometry.patch, geometry.outPixels, geometry.outWidth)
    var output = Tensor(uninitializedShape: [n, o, geometry.outHeight, geometry.outWidth])
    let px = x.storage.pointer, pw = weight.storage.pointer, py = output.storage.pointer
    let winograd = geometry.usesWinograd, shifted = !winograd && geometry.usesShiftedProducts
    let columns = geometry.isPointwise || winograd || shifted ? nil : UnsafeMutablePointer<Float>.allocate(capacity: patch * geometry.tileRows * outWidth)
    defer { columns?.deallocate() }
    if winograd {
        WinogradConvolution(channels: c, height: h, width: w, outChannels: o, padding: padding, budget: columnBudget)
            .forward(px, images: n, weight: pw, bias: bias?.storage.pointer, into: py)
    } else if shifted {
        ShiftedConvolution(geometry: geometry).forward(px, images: n, weight: pw, bias: bias?.storage.pointer, into: py)
    }
    for image in 0..<n where !winograd && !shifted {
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
    // The input is only needed for the weight's gradient: a frozen weight (the SDS teacher) keeps
    // nothing of it alive for backward.
    let savedX: Tensor? = weight.requiresGrad ? x.detached : nil
    let savedW = weight.detached, inputShape = x.shape
    var inputs = [x, weight]
    if let bias { inputs.append(bias) }
    return Tensor.record("conv2d", output, inputs: inputs) { g, needs in
        let pg = g.storage.pointer, pw = savedW.storage.pointer
        // A "same" 3×3 stride-1 convolution's input gradient is itself such a convolution, of g with the
        // flipped, transposed kernel: large enough images take that route (Winograd) instead of im2col's
        // Wᵀ·g products and col2im's scattered adds.
        let transposedRoute = needs[0] && geometry.hasWinogradAdjoint
        var dx = needs[0] && !transposedRoute ? Tensor(zeros: inputShape) : nil   // accumulated by col2im below
        var dw = needs[1] ? Tensor(zeros: savedW.shape) : nil
        let scratch = geometry.isPointwise || (dx == nil && dw == nil) ? nil
            : UnsafeMutablePointer<Float>.allocate(capacity: patch * geometry.tileRows * outWidth)
        defer { scratch?.deallocate() }
        for image in 0..<n where dx != nil || dw != nil {
            let grad = pg + image * o * pixels
            let input = savedX.map { $0.storage.pointer + image * c * h * w }
            guard let scratch else {
                // 1×1: dW += g[n]·x[n]ᵀ, dx[n] = Wᵀ·g[n]
                if let weightGradient = dw?.storage.pointer, let input {
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
                if let weightGradient = dw?.storage.pointer, let input {
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
        if transposedRoute {
            let gradient = Tensor(uninitializedShape: inputShape)
            WinogradConvolution(channels: o, height: h, width: w, outChannels: c, padding: padding, budget: columnBudget)
                .forward(pg, images: n, weight: pw, adjointWeights: true, bias: nil, into: gradient.storage.pointer)
            dx = gradient
        }
        dx?.node = nil
        dw?.node = nil
        var result: [Tensor?] = [dx, dw]
        if needs.count > 2 { result.append(needs[2] ? g.reduceSum(keeping: [1, o, 1, 1]).reshapedUnchecked([o]) : nil) }
        return result
    }
}

/// The output height and width of a convolution of input [N, C, H, W] by weight [O, C, kh, kw]; throws
/// when the kernel is larger than the padded input or the bias is not [O]. Callers have checked ranks,
/// channels, stride and padding.
func convOutputSize(input: [Int], weight: [Int], bias: Tensor?, stride: (height: Int, width: Int),
                    padding: Padding2D) throws -> (height: Int, width: Int) {
    let (kh, kw) = (weight[2], weight[3])
    let paddedH = input[2] + padding.top + padding.bottom, paddedW = input[3] + padding.left + padding.right
    guard paddedH >= kh, paddedW >= kw, kh > 0, kw > 0 else {
        throw TensorError.shapeMismatch(op: "conv2d", detail: "kernel \(kh)×\(kw) larger than padded input \(paddedH)×\(paddedW)")
    }
    if let bias, bias.shape != [weight[0]] {
        throw TensorError.shapeMismatch(op: "conv2d", detail: "bias \(bias.shape), expected [\(weight[0])]")
    }
    return ((paddedH - kh) / stride.height + 1, (paddedW - kw) / stride.width + 1)
}

/// conv2d with a square stride and symmetric padding.
public func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor? = nil, stride: Int, padding: Int = 0,
                   routing: ConvRouting = .standard) throws -> Tensor {
    try conv2d(x, weight: weight, bias: bias, stride: (stride, stride), padding: .uniform(padding), routing: routing)
}

extension Tensor {
    /// Same storage under a shape of equal element count (internal: callers guarantee the count).
    func reshapedUnchecked(_ newShape: [Int]) -> Tensor { Tensor(shape: newShape, storage: storage) }
}

/// Stride-1 convolution without im2col: on a zero-padded image of row width Wp, the input pixel under
/// kernel tap (i, j) for output (oh, ow) sits at (oh + i)·Wp + ow + j, so for each tap the whole output
/// (computed Wp wide, the last kw − 1 columns of each row discarded) is one GEMM of the tap's [O, C]
/// weight slice with a shifted view of the padded image. Output rows are cut into tiles whose
/// [O, rows·Wp] accumulator stays in L2; tiles run on the workers with single-threaded GEMMs.
private struct ShiftedConvolution {
    let geometry: ConvGeometry

    func forward(_ input: UnsafePointer<Float>, images: Int, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                 into output: UnsafeMutablePointer<Float>) {
        let g = geometry
        let (c, o, kh, kw) = (g.channels, g.outChannels, g.kernelH, g.kernelW)
        let paddedH = g.height + g.padding.top + g.padding.bottom, paddedW = g.width + g.padding.left + g.padding.right
        let plane = paddedH * paddedW
        // Tap-major weights: taps[(i·kw + j)] is [O, C] with C contiguous.
        let taps = UnsafeMutablePointer<Float>.allocate(capacity: kh * kw * o * c)
        // kw − 1 floats of slack: the discarded columns of the last row of the last channel read past the plane.
        let padded = UnsafeMutablePointer<Float>.allocate(capacity: c * plane + kw)
        defer { taps.deallocate(); padded.deallocate() }
        for tap in 0..<(kh * kw) {
            for outChannel in 0..<o {
                let source = weight + outChannel * c * kh * kw + tap, target = taps + (tap * o + outChannel) * c
                for channel in 0..<c { target[channel] = source[channel * kh * kw] }
            }
        }
        // About 256K floats (1 MB) of accumulator per tile, or less when a test shrinks the budget.
        let rowsPerTile = max(1, min(g.outHeight, min(g.columnBudget, 1 << 18) / max(o * paddedW, 1)))
        let tileCount = (g.outHeight + rowsPerTile - 1) / rowsPerTile
        let workers = Threading.threadCount
        let tilesInParallel = workers > 1 && tileCount >= workers
        for image in 0..<images {
            pad(input + image * c * g.height * g.width, into: padded, paddedW: paddedW, plane: plane)
            let out = output + image * o * g.outPixels
            let run = { (next: () -> Range<Int>?, split: Bool) in
                let accumulator = UnsafeMutablePointer<Float>.allocate(capacity: o * rowsPerTile * paddedW)
                defer { accumulator.deallocate() }
                while let tiles = next() { for tile in tiles {
                    let firstRow = tile * rowsPerTile, rows = min(rowsPerTile, g.outHeight - firstRow)
                    let width = rows * paddedW
                    for i in 0..<kh {
                        for j in 0..<kw {
                            gemm(transA: false, transB: false, m: o, n: width, k: c, a: taps + (i * kw + j) * o * c, lda: c,
                                 b: padded + (firstRow + i) * paddedW + j, ldb: plane, beta: i == 0 && j == 0 ? 0 : 1,
                                 c: accumulator, ldc: width, split: split)
                        }
                    }
                    for outChannel in 0..<o {
                        let shift = bias?[outChannel] ?? 0
                        for row in 0..<rows {
                            let source = accumulator + outChannel * width + row * paddedW
                            let target = out + outChannel * g.outPixels + (firstRow + row) * g.outWidth
                            for column in 0..<g.outWidth { target[column] = source[column] + shift }
                        }
                    }
                } }
            }
            if tilesInParallel {
                parallelWorkers(tileCount, batch: 1) { run($0, false) }
            } else {
                var pending: Range<Int>? = 0..<tileCount
                run({ defer { pending = nil }; return pending }, true)
            }
        }
    }

    /// The image [C, H, W] into a zero-bordered [C, Hp, Wp] buffer.
    private func pad(_ image: UnsafePointer<Float>, into padded: UnsafeMutablePointer<Float>, paddedW: Int, plane: Int) {
        let g = geometry
        parallelFor(g.channels, grain: 16) { channels in
            for channel in channels {
                let target = padded + channel * plane, source = image + channel * g.height * g.width
                target.update(repeating: 0, count: g.padding.top * paddedW)
                for row in 0..<g.height {
                    let line = target + (g.padding.top + row) * paddedW
                    line.update(repeating: 0, count: g.padding.left)
                    (line + g.padding.left).update(from: source + row * g.width, count: g.width)
                    (line + g.padding.left + g.width).update(repeating: 0, count: g.padding.right)
                }
                (target + (g.padding.top + g.height) * paddedW).update(repeating: 0, count: g.padding.bottom * paddedW)
            }
        }
        (padded + g.channels * plane).update(repeating: 0, count: g.kernelW)
    }
}
