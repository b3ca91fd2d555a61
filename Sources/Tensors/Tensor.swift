// Tensors: a small Float32 CPU tensor engine with reverse-mode autodiff (no file formats here).
//
// Files, one job each:
//   Tensor / TensorStorage  value type over a shared, aligned buffer (copy-on-write)
//   Autograd                Parameter, graph nodes, backward(), withNoGrad
//   Threading               thread count (SDSCLIP_THREADS / setThreadCount), parallelFor
//   Kernels                 vectorised exp / sigmoid / erf / softmax rows and blocked sums
//   Elementwise             broadcasting + − × ÷, scalar ops, unary functions, GEGLU
//   MatMul                  cblas_sgemm wrapper, batched matmul, linear
//   Conv                    conv2d (im2col + GEMM, 1×1 as plain GEMM), Padding2D
//   Normalization           LayerNorm, GroupNorm (Double-accumulated statistics)
//   Softmax                 softmax, logSoftmax, crossEntropy
//   Attention               chunked scaled-dot-product attention (none / causal / additive masks)
//   ShapeOps                reshape, permute, transpose, narrow, split, chunk, concat, stack,
//                           indexSelect, broadcast(to:), pad2d, upsampleNearest2x
//   Reductions              sum, mean, argmax, embedding, l2Normalize, mseLoss
//   AdamW                   torch.optim.AdamW semantics, checkpointable state
// Each op computes its forward result, then registers its backward closure next to it, so forward
// and backward kernels read side by side. Every op validates shapes and throws TensorError.

import Foundation

/// A dense, contiguous, row-major Float32 array with value semantics.
///
/// The storage is shared between copies and views (reshape is free); writers copy first unless the
/// storage is uniquely referenced. A tensor produced while gradients are recorded carries a reference
/// to its graph node; inputs that require no gradient never get one, so frozen weights cost nothing.
public struct Tensor: @unchecked Sendable {
    public let shape: [Int]
    var storage: TensorStorage
    var node: GraphNode?

    /// Wraps existing storage (internal: callers guarantee `storage.count == shape product`).
    init(shape: [Int], storage: TensorStorage, node: GraphNode? = nil) {
        self.shape = shape
        self.storage = storage
        self.node = node
    }

    /// A tensor whose elements the caller fills before it escapes.
    init(uninitializedShape shape: [Int]) {
        self.init(shape: shape, storage: TensorStorage(uninitializedCount: Tensor.elementCount(shape)))
    }

    public init(shape: [Int], data: [Float]) throws {
        guard shape.allSatisfy({ $0 >= 0 }) else {
            throw TensorError.invalidArgument(op: "Tensor(shape:data:)", detail: "negative dimension in \(shape)")
        }
        let count = Tensor.elementCount(shape)
        guard count == data.count else {
            throw TensorError.shapeMismatch(op: "Tensor(shape:data:)",
                                            detail: "shape \(shape) holds \(count) elements, data has \(data.count)")
        }
        self.init(uninitializedShape: shape)
        data.withUnsafeBufferPointer { source in
            if let base = source.baseAddress { storage.pointer.update(from: base, count: count) }
        }
    }

    /// Fills a new tensor in place through `body` (e.g. a weight loader converting f16 straight into
    /// the tensor's memory, with no intermediate Array). `body` must write every element.
    public init(shape: [Int], initializingWith body: (UnsafeMutableBufferPointer<Float>) throws -> Void) throws {
        guard shape.allSatisfy({ $0 >= 0 }) else {
            throw TensorError.invalidArgument(op: "Tensor(shape:initializingWith:)", detail: "negative dimension in \(shape)")
        }
        self.init(uninitializedShape: shape)
        let buffer = UnsafeMutableBufferPointer(start: storage.pointer, count: count)
        buffer.initialize(repeating: 0)   // defined contents even if `body` stops early by throwing
        try body(buffer)
    }

    public init(zeros shape: [Int]) {
        self.init(shape: shape, storage: TensorStorage(zeroedCount: Tensor.elementCount(shape)))
    }

    public init(shape: [Int], fill value: Float) {
        self.init(uninitializedShape: shape)
        storage.pointer.update(repeating: value, count: count)
    }

    public static func scalar(_ value: Float) -> Tensor { Tensor(shape: [], fill: value) }

    /// Standard-normal samples from a seeded SplitMix64 + Box–Muller generator (deterministic, not torch's stream).
    /// Pair p (elements 2p, 2p + 1) takes draws 2p + 1 and 2p + 2; SplitMix64's state after k draws is
    /// seed + k·γ, so the workers start their ranges there and the values do not depend on the thread count.
    public static func randn(shape: [Int], seed: UInt64, scale: Float = 1) -> Tensor {
        var result = Tensor(uninitializedShape: shape)
        let pointer = result.storage.pointer, count = result.count
        parallelFor((count + 1) / 2, grain: 1 << 16) { pairs in
            var generator = SplitMix64(seed: seed &+ UInt64(2 * pairs.lowerBound) &* SplitMix64.increment)
            for pair in pairs {
                let index = 2 * pair
                let u1 = max(generator.nextUnitDouble(), Double.leastNonzeroMagnitude)
                let u2 = generator.nextUnitDouble()
                let radius = (-2 * log(u1)).squareRoot()
                pointer[index] = Float(radius * cos(2 * Double.pi * u2)) * scale
                if index + 1 < count { pointer[index + 1] = Float(radius * sin(2 * Double.pi * u2)) * scale }
            }
        }
        result.node = nil
        return result
    }

    public var count: Int { storage.count }
    public var rank: Int { shape.count }
    public var scalars: [Float] { Array(UnsafeBufferPointer(start: storage.pointer, count: count)) }

    /// The single element of a one-element tensor (NaN when the tensor holds more or fewer elements).
    public var item: Float { count == 1 ? storage.pointer[0] : .nan }

    /// True when this tensor is part of a recorded graph (some input required a gradient).
    public var requiresGrad: Bool { node != nil }

    /// The same values without graph history.
    public var detached: Tensor { Tensor(shape: shape, storage: storage) }

    public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        try body(UnsafeBufferPointer(start: storage.pointer, count: count))
    }

    /// Writes in place, copying the storage first when another tensor shares it.
    /// Not recorded by autodiff: use it for optimiser updates and initialisation only.
    public mutating func withUnsafeMutableBufferPointer<R>(_ body: (UnsafeMutableBufferPointer<Float>) throws -> R) rethrows -> R {
        if !isKnownUniquelyReferenced(&storage) { storage = storage.copy() }
        return try body(UnsafeMutableBufferPointer(start: storage.pointer, count: count))
    }

    static func elementCount(_ shape: [Int]) -> Int { shape.reduce(1, *) }
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        let preview = scalars.prefix(8).map { String($0) }.joined(separator: ", ")
        return "Tensor(shape: \(shape), [\(preview)\(count > 8 ? ", ..." : "")])"
    }
}

/// SplitMix64: tiny, fast, good enough for initialisation, noise and shuffling. Its whole state is one
/// integer, so a trainer can checkpoint it and resume the exact stream.
public struct SplitMix64: Sendable, Equatable {
    public private(set) var state: UInt64
    public init(seed: UInt64) { state = seed }
    /// The state's step per draw (γ, the golden ratio in 64 bits).
    static let increment: UInt64 = 0x9E37_79B9_7F4A_7C15
    public mutating func next() -> UInt64 {
        state &+= Self.increment
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in [0, 1) with 53 random bits.
    public mutating func nextUnitDouble() -> Double { Double(next() >> 11) * 0x1.0p-53 }
    /// Uniform integer in 0..<bound (bound > 0), by rejection, so without modulo bias.
    public mutating func next(below bound: Int) -> Int {
        precondition(bound > 0, "bound must be positive")
        let limit = UInt64(bound)
        let threshold = (0 &- limit) % limit
        while true {
            let value = next()
            if value >= threshold { return Int(value % limit) }
        }
    }
}

extension Tensor {
    /// Uniform samples in [−bound, bound) from a seeded SplitMix64 stream.
    public static func uniform(shape: [Int], bound: Float, seed: UInt64) -> Tensor {
        var result = Tensor(uninitializedShape: shape)
        var generator = SplitMix64(seed: seed)
        let pointer = result.storage.pointer
        for index in 0..<result.count { pointer[index] = (Float(generator.nextUnitDouble()) * 2 - 1) * bound }
        result.node = nil
        return result
    }

    /// Standard-normal samples drawn from `generator` (Box–Muller), advancing it.
    public static func randn(shape: [Int], generator: inout SplitMix64) -> Tensor {
        var result = Tensor(uninitializedShape: shape)
        let pointer = result.storage.pointer
        var index = 0
        while index < result.count {
            let u1 = max(generator.nextUnitDouble(), Double.leastNonzeroMagnitude)
            let u2 = generator.nextUnitDouble()
            let radius = (-2 * Foundation.log(u1)).squareRoot()
            pointer[index] = Float(radius * Foundation.cos(2 * Double.pi * u2))
            if index + 1 < result.count { pointer[index + 1] = Float(radius * Foundation.sin(2 * Double.pi * u2)) }
            index += 2
        }
        result.node = nil
        return result
    }
}
