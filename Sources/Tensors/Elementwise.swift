import CTensorKernels
import Foundation

// MARK: - Kernels

extension Tensor {
    /// out = f(a, b) with broadcasting. Same-shape and scalar operands take flat loops.
    @inline(__always)
    static func broadcastKernel(_ a: Tensor, _ b: Tensor, op: String, _ f: (Float, Float) -> Float) throws -> Tensor {
        let outShape = try Broadcast.shape(a.shape, b.shape, op: op)
        let result = Tensor(uninitializedShape: outShape)
        let pa = a.storage.pointer, pb = b.storage.pointer, out = result.storage.pointer
        let n = result.count
        if a.shape == b.shape {
            parallelFor(n, grain: 1 << 14) { range in for i in range { out[i] = f(pa[i], pb[i]) } }
        } else if b.count == 1 && a.count == n {
            let scalar = pb[0]
            parallelFor(n, grain: 1 << 14) { range in for i in range { out[i] = f(pa[i], scalar) } }
        } else if a.count == 1 && b.count == n {
            let scalar = pa[0]
            parallelFor(n, grain: 1 << 14) { range in for i in range { out[i] = f(scalar, pb[i]) } }
        } else {
            let stridesA = Broadcast.strides(of: a.shape, readAs: outShape)
            let stridesB = Broadcast.strides(of: b.shape, readAs: outShape)
            let inner = outShape.last ?? 1
            let rows = inner == 0 ? 0 : n / inner
            let stepA = stridesA.last ?? 0, stepB = stridesB.last ?? 0
            outShape.withUnsafeBufferPointer { shape in
                stridesA.withUnsafeBufferPointer { sa in
                    stridesB.withUnsafeBufferPointer { sb in
                        parallelFor(rows, grain: max(1, 8192 / max(inner, 1))) { range in
                            for row in range {
                                let baseA = Broadcast.rowOffset(row, shape: shape, strides: sa)
                                let baseB = Broadcast.rowOffset(row, shape: shape, strides: sb)
                                let o = out + row * inner
                                for j in 0..<inner { o[j] = f(pa[baseA + j * stepA], pb[baseB + j * stepB]) }
                            }
                        }
                    }
                }
            }
        }
        return result
    }

    /// out = f(x) elementwise.
    @inline(__always)
    func mapKernel(_ f: (Float) -> Float) -> Tensor {
        var result = Tensor(uninitializedShape: shape)
        let input = storage.pointer, out = result.storage.pointer
        parallelFor(count, grain: 1 << 13) { range in for i in range { out[i] = f(input[i]) } }
        result.node = nil
        return result
    }

    /// out = f(x, y, g): the backward of a unary op from its input, output and upstream gradient.
    @inline(__always)
    static func zipKernel(_ x: Tensor, _ y: Tensor, _ g: Tensor, _ f: (Float, Float, Float) -> Float) -> Tensor {
        let result = Tensor(uninitializedShape: x.shape)
        let px = x.storage.pointer, py = y.storage.pointer, pg = g.storage.pointer, out = result.storage.pointer
        parallelFor(x.count, grain: 1 << 13) { range in for i in range { out[i] = f(px[i], py[i], pg[i]) } }
        return result
    }

    /// A unary op whose derivative is a function of (input, output); the tape keeps both.
    @inline(__always)
    func unary(_ op: String, _ f: (Float) -> Float, derivative: @escaping (_ x: Float, _ y: Float) -> Float) -> Tensor {
        let output = mapKernel(f)
        let input = self.detached
        return Tensor.record(op, output, inputs: [self]) { g, _ in
            [Tensor.zipKernel(input, output, g) { x, y, gi in gi * derivative(x, y) }]
        }
    }
}

// MARK: - Arithmetic with broadcasting

extension Tensor {
    public static func + (a: Tensor, b: Tensor) throws -> Tensor {
        let output = try broadcastKernel(a, b, op: "add") { $0 + $1 }
        let (shapeA, shapeB) = (a.shape, b.shape)
        return record("add", output, inputs: [a, b]) { g, needs in
            [needs[0] ? g.summed(to: shapeA) : nil, needs[1] ? g.summed(to: shapeB) : nil]
        }
    }

    public static func - (a: Tensor, b: Tensor) throws -> Tensor {
        let output = try broadcastKernel(a, b, op: "sub") { $0 - $1 }
        let (shapeA, shapeB) = (a.shape, b.shape)
        return record("sub", output, inputs: [a, b]) { g, needs in
            [needs[0] ? g.summed(to: shapeA) : nil, needs[1] ? g.mapKernel { -$0 }.summed(to: shapeB) : nil]
        }
    }

    public static func * (a: Tensor, b: Tensor) throws -> Tensor {
        let output = try broadcastKernel(a, b, op: "mul") { $0 * $1 }
        let (savedA, savedB) = (a.detached, b.detached)
        return record("mul", output, inputs: [a, b]) { g, needs in
            [needs[0] ? try broadcastKernel(g, savedB, op: "mul") { $0 * $1 }.summed(to: savedA.shape) : nil,
             needs[1] ? try broadcastKernel(g, savedA, op: "mul") { $0 * $1 }.summed(to: savedB.shape) : nil]
        }
    }

    public static func / (a: Tensor, b: Tensor) throws -> Tensor {
        let output = try broadcastKernel(a, b, op: "div") { $0 / $1 }
        let (savedA, savedB) = (a.detached, b.detached)
        return record("div", output, inputs: [a, b]) { g, needs in
            let gOverB = try broadcastKernel(g, savedB, op: "div") { $0 / $1 }
            var gradB: Tensor? = nil
            if needs[1] {
                // d(a/b)/db = -a/b² = -(a/b)/b, using the saved quotient.
                let quotient = try broadcastKernel(savedA, savedB, op: "div") { $0 / $1 }
                gradB = try broadcastKernel(gOverB, quotient, op: "div") { -$0 * $1 }.summed(to: savedB.shape)
            }
            return [needs[0] ? gOverB.summed(to: savedA.shape) : nil, gradB]
        }
    }

    public static prefix func - (x: Tensor) -> Tensor { x.scaled(by: -1, plus: 0) }

    /// x * scale + shift, one pass.
    public func scaled(by scale: Float, plus shift: Float) -> Tensor {
        let output = mapKernel { $0 * scale + shift }
        return Tensor.record("affine", output, inputs: [self]) { g, _ in [g.mapKernel { $0 * scale }] }
    }

    public static func + (x: Tensor, s: Float) -> Tensor { x.scaled(by: 1, plus: s) }
    public static func + (s: Float, x: Tensor) -> Tensor { x.scaled(by: 1, plus: s) }
    public static func - (x: Tensor, s: Float) -> Tensor { x.scaled(by: 1, plus: -s) }
    public static func - (s: Float, x: Tensor) -> Tensor { x.scaled(by: -1, plus: s) }
    public static func * (x: Tensor, s: Float) -> Tensor { x.scaled(by: s, plus: 0) }
    public static func * (s: Float, x: Tensor) -> Tensor { x.scaled(by: s, plus: 0) }

    public static func / (x: Tensor, s: Float) -> Tensor {
        let output = x.mapKernel { $0 / s }
        return record("divScalar", output, inputs: [x]) { g, _ in [g.mapKernel { $0 / s }] }
    }
}

// MARK: - Unary functions

private let inverseSqrt2: Float = 0.707_106_781_186_547_5
private let inverseSqrt2Pi: Float = 0.398_942_280_401_432_7

public func exp(_ x: Tensor) -> Tensor { x.unary("exp", { Foundation.exp($0) }, derivative: { _, y in y }) }
public func log(_ x: Tensor) -> Tensor { x.unary("log", { Foundation.log($0) }, derivative: { x, _ in 1 / x }) }
public func sin(_ x: Tensor) -> Tensor { x.unary("sin", { Foundation.sin($0) }, derivative: { x, _ in Foundation.cos(x) }) }
public func cos(_ x: Tensor) -> Tensor { x.unary("cos", { Foundation.cos($0) }, derivative: { x, _ in -Foundation.sin(x) }) }
public func tanh(_ x: Tensor) -> Tensor { x.unary("tanh", { Foundation.tanh($0) }, derivative: { _, y in 1 - y * y }) }
public func sqrt(_ x: Tensor) -> Tensor { x.unary("sqrt", { $0.squareRoot() }, derivative: { _, y in 0.5 / y }) }

/// x^p elementwise (for x > 0 or integral p, as torch.pow).
public func pow(_ x: Tensor, _ p: Float) -> Tensor {
    x.unary("pow", { Foundation.pow($0, p) }, derivative: { x, _ in p * Foundation.pow(x, p - 1) })
}

public func sigmoid(_ x: Tensor) -> Tensor {
    x.unaryVectorized("sigmoid", sigmoid8, gradient: { x, g in
        let s = sigmoid8(x)
        return g * s * (1 - s)
    })
}

/// max(x, minimum); the gradient passes only where x > minimum (torch.clamp_min).
public func clampMin(_ x: Tensor, _ minimum: Float) -> Tensor {
    x.unary("clampMin", { Swift.max($0, minimum) }, derivative: { x, _ in x > minimum ? 1 : 0 })
}

/// GELU with the erf form, torch's default: x·Φ(x) = ½x(1 + erf(x/√2)).
/// Vectorised: erf to 1.5e-7 absolute, so outputs and gradients agree with float64 to ~1e-7 of scale.
public func gelu(_ x: Tensor) -> Tensor {
    x.unaryVectorized("gelu", { 0.5 * $0 * (1 + erf8($0 * inverseSqrt2)) }, gradient: { x, g in
        g * (0.5 * (1 + erf8(x * inverseSqrt2)) + x * inverseSqrt2Pi * fastExp(-0.5 * x * x))
    })
}

/// QuickGELU (OpenAI CLIP): x·σ(1.702x).
public func quickGELU(_ x: Tensor) -> Tensor {
    x.unaryVectorized("quickGELU", { $0 * sigmoid8(1.702 * $0) }, gradient: { x, g in
        let s = sigmoid8(1.702 * x)
        return g * (s + 1.702 * x * s * (1 - s))
    })
}

/// SiLU / swish: x·σ(x).
public func silu(_ x: Tensor) -> Tensor {
    x.unaryVectorized("silu", { $0 * sigmoid8($0) }, gradient: { x, g in
        let s = sigmoid8(x)
        return g * s * (1 + x * (1 - s))
    })
}

/// GEGLU as in diffusers' feed-forward: split the last axis in halves (h, gate) and return h·gelu(gate).
/// One fused pass each way (CTensorKernels): no copies of the halves, and the backward writes both
/// halves of the input gradient directly.
public func geglu(_ x: Tensor) throws -> Tensor {
    guard let last = x.shape.last, last % 2 == 0, last > 0 else {
        throw TensorError.invalidArgument(op: "geglu", detail: "last axis of \(x.shape) must have even, positive length")
    }
    let width = last / 2, rows = x.count / last
    let grain = max(1, (1 << 14) / width)
    var output = Tensor(uninitializedShape: Array(x.shape.dropLast()) + [width])
    let px = x.storage.pointer, po = output.storage.pointer
    parallelFor(rows, grain: grain) { range in
        sds_geglu_forward(px + range.lowerBound * last, po + range.lowerBound * width, range.count, width)
    }
    output.node = nil
    let saved = x.detached
    return Tensor.record("geglu", output, inputs: [x]) { g, _ in
        var dx = Tensor(uninitializedShape: saved.shape)
        let px = saved.storage.pointer, pg = g.storage.pointer, pdx = dx.storage.pointer
        parallelFor(rows, grain: grain) { range in
            sds_geglu_backward(px + range.lowerBound * last, pg + range.lowerBound * width, pdx + range.lowerBound * last,
                               range.count, width)
        }
        dx.node = nil
        return [dx]
    }
}
