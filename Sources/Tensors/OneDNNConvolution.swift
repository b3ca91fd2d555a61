import CDNNL
import CDNNLShim
import Foundation

/// oneDNN's bf16 convolutions for one frozen weight (`BFloat16Weight`): forward and input gradient,
/// one primitive pair per input shape, created on first use and kept with oneDNN's reordered copy of
/// the weights (its blocked layout for AMX / AVX512-BF16). Once the first primitive holds that copy,
/// the OIHW bf16 array is freed: later shapes reorder from the resident copy, so each weight is held
/// once per input shape, not also in rows (SD1.5's UNet: 1.1 GB less). Inputs and outputs stay
/// float32 NCHW; the rounding to bf16 and the layout changes are oneDNN reorders inside each call. A
/// reference type, so copies of the weight share the primitives; runs are serialised by a lock (a
/// oneDNN stream is not meant for concurrent use, and each model runs from one task).
final class OneDNNConvolution: @unchecked Sendable {
    struct Shape: Hashable {
        var batch: Int, height: Int, width: Int
        var strideH: Int, strideW: Int
        var padding: [Int]   // top, left, bottom, right
        var hasBias: Bool
    }

    /// OIHW bf16 bit patterns until the first primitive holds oneDNN's copy; nil from then on.
    private var sourceBits: [UInt16]?
    private let outputs: Int, channels: Int, kernelH: Int, kernelW: Int
    /// Released only after deinit has destroyed the primitives made on its engine.
    private let context: OneDNNContext
    private let lock = NSLock()
    private var convolutions: [Shape: OpaquePointer] = [:]

    /// nil when oneDNN cannot create a CPU engine and stream. bits: the weights' bf16 bit patterns in
    /// OIHW order; weightShape: [O, C, kh, kw].
    init?(bits: [UInt16], shape weightShape: [Int]) {
        guard weightShape.count == 4, bits.count == weightShape.reduce(1, *) else { return nil }
        guard let context = OneDNNContext() else { return nil }
        sourceBits = bits
        (outputs, channels, kernelH, kernelW) = (weightShape[0], weightShape[1], weightShape[2], weightShape[3])
        self.context = context
    }

    deinit {
        for convolution in convolutions.values { sds_dnnl_conv_destroy(convolution) }
    }

    /// Whether oneDNN computes bf16 convolutions with AMX tiles on this CPU.
    static var hasAMX: Bool { sds_dnnl_has_amx() != 0 }

    /// Bytes of the weights held: the OIHW array before first use, then oneDNN's copies over all shapes seen.
    var weightBytes: Int {
        lock.lock()
        defer { lock.unlock() }
        let resident = convolutions.values.reduce(0) { $0 + sds_dnnl_conv_weight_bytes($1) }
        return resident + (sourceBits?.count ?? 0) * MemoryLayout<UInt16>.stride
    }

    /// The bf16 weights as OIHW bit patterns (from oneDNN's copy once the array is freed); nil only
    /// when oneDNN fails to reorder them (out of memory).
    func oihwBits() -> [UInt16]? {
        lock.lock()
        defer { lock.unlock() }
        if let sourceBits { return sourceBits }
        guard let resident = convolutions.values.first else { return nil }
        var status = dnnl_success
        let bits = [UInt16](unsafeUninitializedCapacity: outputs * channels * kernelH * kernelW) { buffer, initialized in
            if let base = buffer.baseAddress { status = sds_dnnl_conv_copy_weights(resident, base) }
            initialized = buffer.count
        }
        return status == dnnl_success ? bits : nil
    }

    /// y [N, O, OH, OW] = conv(bf16(x), W) + bias, x [N, C, H, W] float32.
    func forward(_ x: Tensor, bias: Tensor?, shape: Shape, outputShape: [Int]) throws -> Tensor {
        let output = Tensor(uninitializedShape: outputShape)
        try run(shape, "forward") { convolution in
            sds_dnnl_conv_forward(convolution, context.stream, x.storage.pointer, bias?.storage.pointer, output.storage.pointer)
        }
        return output
    }

    /// ∂L/∂x [N, C, H, W] for ∂L/∂y (rounded to bf16), through the same bf16 weights.
    func inputGradient(_ g: Tensor, shape: Shape, inputShape: [Int]) throws -> Tensor {
        let result = Tensor(uninitializedShape: inputShape)
        try run(shape, "backward-data") { convolution in
            sds_dnnl_conv_backward_data(convolution, context.stream, g.storage.pointer, result.storage.pointer)
        }
        return result
    }

    private func run(_ shape: Shape, _ step: String, _ body: (OpaquePointer) -> dnnl_status_t) throws {
        lock.lock()
        defer { lock.unlock() }
        let convolution = try primitive(for: shape)
        OpenMPThreads.match()
        let status = body(convolution)
        guard status == dnnl_success else { throw failure("running the \(step) convolution", status, shape) }
    }

    private func primitive(for shape: Shape) throws -> OpaquePointer {
        if let cached = convolutions[shape] { return cached }
        var description = sds_dnnl_conv_shape(
            batch: Int64(shape.batch), channels: Int64(channels), height: Int64(shape.height), width: Int64(shape.width),
            outputs: Int64(outputs), kernel_h: Int64(kernelH), kernel_w: Int64(kernelW),
            stride_h: Int64(shape.strideH), stride_w: Int64(shape.strideW),
            pad_top: Int64(shape.padding[0]), pad_left: Int64(shape.padding[1]),
            pad_bottom: Int64(shape.padding[2]), pad_right: Int64(shape.padding[3]))
        var created: OpaquePointer?
        let bias: Int32 = shape.hasBias ? 1 : 0
        let status: dnnl_status_t
        if let sourceBits {
            status = sourceBits.withUnsafeBufferPointer { bits -> dnnl_status_t in
                guard let base = bits.baseAddress else { return dnnl_invalid_arguments }
                return sds_dnnl_conv_create(context.engine, &description, base, bias, &created)
            }
        } else if let resident = convolutions.values.first {
            status = sds_dnnl_conv_create_like(context.engine, &description, resident, bias, &created)
        } else {
            status = dnnl_invalid_arguments   // unreachable: the array is freed only once a primitive holds the weights
        }
        guard status == dnnl_success, let created else { throw failure("creating the convolution", status, shape) }
        convolutions[shape] = created
        sourceBits = nil
        return created
    }

    private func failure(_ step: String, _ status: dnnl_status_t, _ shape: Shape) -> TensorError {
        .invalidArgument(op: "oneDNN bf16 conv2d", detail: "\(step) for input [\(shape.batch), \(channels), \(shape.height), \(shape.width)] "
            + "and weight [\(outputs), \(channels), \(kernelH), \(kernelW)] failed with dnnl status \(status.rawValue)")
    }
}
