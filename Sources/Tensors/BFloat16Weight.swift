/// A frozen weight's bf16 copy, made once when a model switches to bf16 (`ParameterRegistry.useBFloat16`):
/// linear weights [out, in] as they are, convolution weights [O, C, kh, kw] as the [O, C·kh·kw] matrix,
/// or, where oneDNN convolves them, only in oneDNN's own layout. The layer that owns the parameter
/// computes with it instead of the float32 value while the parameter is frozen; making the parameter
/// trainable drops it.
public final class BFloat16Weight: @unchecked Sendable {
    /// The bf16 rows for the GEMM routes: every linear weight, and convolution weights on the float32
    /// routes; nil when oneDNN's convolution holds the only copy.
    let matrix: BFloat16Matrix?
    /// The float32 weight's shape.
    public let shape: [Int]
    public let route: BFloat16Route
    /// oneDNN's bf16 convolutions for a convolution weight where the CPU has bf16 units (else nil: the
    /// float32 routes on the widened weights).
    let convolution: OneDNNConvolution?

    public init(_ weight: Tensor, route: BFloat16Route) throws {
        guard weight.rank >= 2 else {
            throw TensorError.shapeMismatch(op: "BFloat16Weight", detail: "expected a matrix or convolution weight, got \(weight.shape)")
        }
        let rows = weight.shape[0]
        let matrix = try BFloat16Matrix(weight.reshapedUnchecked([rows, rows == 0 ? 0 : weight.count / rows]))
        shape = weight.shape
        self.route = route
        let accelerated = try matrix.resolved(route) != .portable
        convolution = weight.rank == 4 && accelerated ? OneDNNConvolution(bits: matrix.bits, shape: weight.shape) : nil
        self.matrix = convolution == nil ? matrix : nil
    }

    /// Whether this convolution weight computes through oneDNN's bf16 convolutions (else the float32 routes).
    public var convolvesWithOneDNN: Bool { convolution != nil }

    /// Bytes held by the bf16 copies (and oneDNN's reordered convolution weights made so far).
    public var byteCount: Int { (matrix?.byteCount ?? 0) + (convolution?.weightBytes ?? 0) }

    /// The bf16 values widened to float32, in the weight's own shape (a transient copy for one call).
    public var widened: Tensor {
        if let matrix { return matrix.roundedWeights.reshapedUnchecked(shape) }
        // oneDNN's copy read back. Its reorder of memory already held fails only when memory runs out,
        // where Swift's own allocations stop the process too.
        guard let bits = convolution?.oihwBits() else { fatalError("oneDNN could not copy out a bf16 convolution weight \(shape) (out of memory)") }
        return Tensor(bfloat16Bits: bits, shape: shape)
    }

    /// The bf16 rows for a linear layer.
    func rows(for op: String) throws -> BFloat16Matrix {
        guard let matrix else {
            throw TensorError.shapeMismatch(op: op, detail: "the bf16 weight \(shape) is a oneDNN convolution weight, not a matrix")
        }
        return matrix
    }
}

extension Tensor {
    /// bf16 bit patterns widened (exactly) to float32; bits.count must equal the shape's element count.
    init(bfloat16Bits bits: [UInt16], shape: [Int]) {
        self.init(uninitializedShape: shape)
        let target = UncheckedSendable(storage.pointer)
        bits.withUnsafeBufferPointer { source in
            guard let base = source.baseAddress else { return }
            let bits = UncheckedSendable(base)
            parallelFor(source.count, grain: 1 << 16) { range in
                for i in range { target.value[i] = Float(bitPattern: UInt32(bits.value[i]) << 16) }
            }
        }
    }

    /// Every element rounded to the nearest bf16 value (ties to even), kept as float32; NaN and ±∞ stay.
    /// Records as the identity for gradients (the rounding is a forward-only quantisation, as autocast's cast).
    public func roundedToBFloat16() -> Tensor {
        Tensor.record("round_bf16", bfloat16RoundedValues(), inputs: [self]) { g, needs in [needs[0] ? g : nil] }
    }

    /// The rounded values as a plain tensor (no graph).
    func bfloat16RoundedValues() -> Tensor {
        let output = Tensor(uninitializedShape: shape)
        let source = storage.pointer, target = output.storage.pointer
        parallelFor(count, grain: 1 << 16) { range in
            for i in range { target[i] = bfloat16Rounded(source[i]) }
        }
        return output
    }
}

/// The nearest bf16 value of x (round to nearest, ties to even) as float32.
@inline(__always)
func bfloat16Rounded(_ x: Float) -> Float {
    let bits = x.bitPattern
    guard x.isFinite else { return x }
    let rounded = bits &+ 0x7FFF &+ ((bits >> 16) & 1)
    return Float(bitPattern: rounded & 0xFFFF_0000)
}

/// y = x·Wᵀ + b with W's bf16 copy: x rounded to bf16, products accumulated in float32. The input
/// gradient uses the same bf16 weights with the output gradient rounded to bf16 (autocast's backward);
/// the weight itself is frozen and gets none.
public func linear(_ x: Tensor, bfloat16 weight: BFloat16Weight, bias: Tensor? = nil) throws -> Tensor {
    let matrix = try weight.rows(for: "linear")
    let (outFeatures, inFeatures) = (matrix.outputs, matrix.inputs)
    guard let last = x.shape.last, last == inFeatures else {
        throw TensorError.shapeMismatch(op: "linear", detail: "input \(x.shape) vs bf16 weight [\(outFeatures), \(inFeatures)]")
    }
    if let bias, bias.shape != [outFeatures] {
        throw TensorError.shapeMismatch(op: "linear", detail: "bias \(bias.shape), expected [\(outFeatures)]")
    }
    var output = try matrix.product(x, route: weight.route)
    if let bias {
        let rows = outFeatures == 0 ? 0 : output.count / outFeatures
        let py = output.storage.pointer, pb = bias.storage.pointer
        parallelFor(rows, grain: max(1, 16384 / max(outFeatures, 1))) { range in
            for row in range { for j in 0..<outFeatures { py[row * outFeatures + j] += pb[j] } }
        }
    }
    output.node = nil
    let inputShape = x.shape
    var inputs = [x]
    if let bias { inputs.append(bias) }
    return Tensor.record("linear_bf16", output, inputs: inputs) { g, needs in
        var gradX: Tensor? = nil
        if needs[0] {
            var dx = try matrix.transposedProduct(g, route: weight.route).reshapedUnchecked(inputShape)
            dx.node = nil
            gradX = dx
        }
        let gradB: Tensor? = needs.count > 1 && needs[1] ? g.summed(to: [outFeatures]) : nil
        return needs.count > 1 ? [gradX, gradB] : [gradX]
    }
}

/// conv2d with a frozen weight's bf16 copy, the input rounded to bf16, float32 sums. Where the CPU has
/// bf16 units, oneDNN's bf16 convolution (forward, and its backward-data for the input gradient, with the
/// output gradient rounded to bf16 as autocast's backward); elsewhere the bf16 weights widened to float32
/// for this call and the engine's float32 convolution (products of bf16 values are exact in float32),
/// the input gradient flowing through the rounding unchanged.
public func conv2d(_ x: Tensor, bfloat16 weight: BFloat16Weight, bias: Tensor? = nil,
                   stride: (height: Int, width: Int) = (1, 1), padding: Padding2D = .zero,
                   routing: ConvRouting = .standard) throws -> Tensor {
    guard let convolution = weight.convolution, x.rank == 4, weight.shape.count == 4, x.shape[1] == weight.shape[1],
          stride.height > 0, stride.width > 0, padding.top >= 0, padding.bottom >= 0, padding.left >= 0, padding.right >= 0 else {
        return try conv2d(x.roundedToBFloat16(), weight: weight.widened, bias: bias, stride: stride, padding: padding, routing: routing)
    }
    let (n, h, w, o) = (x.shape[0], x.shape[2], x.shape[3], weight.shape[0])
    let outSize = try convOutputSize(input: x.shape, weight: weight.shape, bias: bias, stride: stride, padding: padding)
    let outputShape = [n, o, outSize.height, outSize.width]
    let shape = OneDNNConvolution.Shape(batch: n, height: h, width: w, strideH: stride.height, strideW: stride.width,
                                        padding: [padding.top, padding.left, padding.bottom, padding.right], hasBias: bias != nil)
    var output = n == 0 ? Tensor(zeros: outputShape) : try convolution.forward(x, bias: bias, shape: shape, outputShape: outputShape)
    output.node = nil
    let inputShape = x.shape
    var inputs = [x]
    if let bias { inputs.append(bias) }
    return Tensor.record("conv2d_bf16", output, inputs: inputs) { g, needs in
        var gradX: Tensor? = nil
        if needs[0] {
            var dx = n == 0 ? Tensor(zeros: inputShape) : try convolution.inputGradient(g, shape: shape, inputShape: inputShape)
            dx.node = nil
            gradX = dx
        }
        let gradB: Tensor? = needs.count > 1 && needs[1] ? g.reduceSum(keeping: [1, o, 1, 1]).reshapedUnchecked([o]) : nil
        return needs.count > 1 ? [gradX, gradB] : [gradX]
    }
}
