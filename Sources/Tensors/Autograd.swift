/// Reverse-mode autodiff, define-by-run.
///
/// Usage:
/// ```
/// let w = Parameter(Tensor.randn(shape: [4, 8], seed: 1))
/// let loss = try mseLoss(linear(x, weight: w.tensor), target)
/// try loss.backward()          // accumulates into w.grad (call w.zeroGrad() / optimiser.zeroGrad() between steps)
/// ```
/// Gradients accumulate across `backward()` calls, so a batch can be split into micro-batches.
/// `backward()` consumes the graph and frees each node's saved tensors as soon as it has run.
/// `withNoGrad { ... }` runs code without recording anything (the inference path).

public enum GradMode {
    @TaskLocal static var isRecording = true

    /// True unless inside `withNoGrad`.
    public static var isEnabled: Bool { isRecording }
}

/// Runs `body` without recording a graph: ops return plain tensors and keep nothing for backward.
public func withNoGrad<R>(_ body: () throws -> R) rethrows -> R {
    try GradMode.$isRecording.withValue(false, operation: body)
}

/// A trainable (or frozen) tensor with a stable identity: modules keep weights here and the
/// optimiser updates `value` in place. Use `tensor` in computations; it links into the graph only
/// when `requiresGrad` is true and recording is on.
///
/// Threading: a parameter (its value, gradient and graph leaf) belongs to one model, and a model is
/// used from one task at a time: forward, backward and the optimiser step run in sequence on that
/// task, while the ops parallelise internally. `Sendable` only lets a model be handed to another
/// task whole (a loader thread building it, a trainer taking it); nothing here locks.
public final class Parameter: @unchecked Sendable {
    /// The float32 value; nil once `releaseFloat32` left the bf16 copy as the only one.
    private var stored: Tensor?
    private var storedShape: [Int]

    /// The float32 value. After `releaseFloat32` it is the bf16 copy widened (a transient tensor per
    /// read: correct, not fast; the layers compute from `bfloat16` itself).
    public var value: Tensor {
        get { stored ?? bfloat16?.widened ?? Tensor(zeros: storedShape) }
        set {
            stored = newValue
            storedShape = newValue.shape
        }
    }
    public var requiresGrad: Bool {
        didSet { if requiresGrad { bfloat16 = nil } }   // a trained weight computes in float32
    }
    /// The frozen weight's bf16 copy when its model runs in bf16 (`ParameterRegistry.useBFloat16`);
    /// nil while the parameter trains. Dropping it restores a released float32 value from it.
    public var bfloat16: BFloat16Weight? {
        didSet {
            if requiresGrad, bfloat16 != nil { bfloat16 = nil }
            if bfloat16 == nil, stored == nil, let oldValue { stored = oldValue.widened }
        }
    }

    /// Frees the float32 value of a frozen weight that has a bf16 copy (a bf16 teacher never needs
    /// it: nothing of it trains or is saved); `value` reads widen the bf16 copy from then on, and
    /// unfreezing or dropping the copy brings a float32 value back. Returns the bytes freed.
    @discardableResult
    public func releaseFloat32() -> Int {
        guard let stored, bfloat16 != nil, !requiresGrad else { return 0 }
        self.stored = nil
        return stored.count * MemoryLayout<Float>.stride
    }

    /// Whether the float32 value is held (false after `releaseFloat32`).
    public var holdsFloat32: Bool { stored != nil }
    /// The accumulated gradient (same shape as `value`), nil until a backward pass reaches this parameter.
    public var grad: Tensor?
    public let name: String
    private var leafNode: GraphNode?

    public init(_ value: Tensor, requiresGrad: Bool = true, name: String = "") {
        stored = value.detached
        storedShape = value.shape
        self.requiresGrad = requiresGrad
        self.name = name
    }

    public var shape: [Int] { storedShape }

    /// The value as a graph input (a plain tensor when frozen or under `withNoGrad`).
    public var tensor: Tensor {
        guard requiresGrad, GradMode.isEnabled else { return value.detached }
        let leaf: GraphNode
        if let existing = leafNode {
            leaf = existing
        } else {
            leaf = GraphNode(leafOf: self)
            leafNode = leaf
        }
        return Tensor(shape: value.shape, storage: value.storage, node: leaf)
    }

    public func zeroGrad() { grad = nil }

    func accumulate(_ gradient: Tensor) throws {
        guard gradient.shape == value.shape else {
            throw TensorError.shapeMismatch(op: "backward", detail: "gradient \(gradient.shape) for parameter '\(name)' \(value.shape)")
        }
        if var existing = grad, existing.shape == value.shape {
            grad = nil                      // sole owner now, so the add happens in place
            existing.addInPlace(gradient)
            grad = existing
        } else {
            grad = gradient.detached
        }
    }
}

/// One recorded operation: the graph nodes of its differentiable inputs and a closure that maps
/// the gradient of its output to gradients of those inputs (nil where an input needs none).
final class GraphNode: @unchecked Sendable {
    typealias Backward = (_ outputGradient: Tensor, _ needsGradient: [Bool]) throws -> [Tensor?]

    let op: String
    private(set) var inputs: [GraphNode?]
    /// Shapes of the inputs, to check every gradient a backward closure returns.
    private(set) var inputShapes: [[Int]]
    private var backwardFunction: Backward?
    private weak var parameter: Parameter?
    private let isLeaf: Bool

    init(op: String, inputs: [GraphNode?], inputShapes: [[Int]], backward: @escaping Backward) {
        self.op = op
        self.inputs = inputs
        self.inputShapes = inputShapes
        self.backwardFunction = backward
        self.isLeaf = false
    }

    init(leafOf parameter: Parameter) {
        op = "parameter"
        inputs = []
        inputShapes = []
        self.parameter = parameter
        isLeaf = true
    }

    /// Runs the backward closure once, then drops it and the input links so saved tensors are freed.
    func propagate(_ gradient: Tensor) throws -> [Tensor?] {
        if isLeaf {
            try parameter?.accumulate(gradient)
            return []
        }
        guard let function = backwardFunction else {
            throw TensorError.noGraph(detail: "the graph through '\(op)' was already used by an earlier backward()")
        }
        let needs = inputs.map { $0 != nil }
        let result = try function(gradient, needs)
        backwardFunction = nil
        return result
    }

    func releaseInputs() {
        inputs = []
        inputShapes = []
    }
}

extension Tensor {
    /// Wraps a freshly computed `output` into the graph when recording is on and any input carries a node.
    /// `backward` receives the output gradient and which inputs need one; it runs under `withNoGrad`.
    static func record(_ op: String, _ output: Tensor, inputs: [Tensor], backward: @escaping GraphNode.Backward) -> Tensor {
        guard GradMode.isEnabled, inputs.contains(where: { $0.node != nil }) else { return output }
        let node = GraphNode(op: op, inputs: inputs.map(\.node), inputShapes: inputs.map(\.shape), backward: backward)
        return Tensor(shape: output.shape, storage: output.storage, node: node)
    }

    /// Back-propagates from this tensor. `gradient` defaults to 1 for a one-element tensor (a loss);
    /// otherwise it must match this tensor's shape. Gradients are added to each reached `Parameter.grad`.
    public func backward(gradient: Tensor? = nil) throws {
        guard let root = node else {
            throw TensorError.noGraph(detail: "this tensor does not depend on any parameter that requires a gradient")
        }
        let seed: Tensor
        if let gradient {
            guard gradient.shape == shape else {
                throw TensorError.shapeMismatch(op: "backward", detail: "gradient \(gradient.shape) vs output \(shape)")
            }
            seed = gradient.detached
        } else {
            guard count == 1 else {
                throw TensorError.invalidArgument(op: "backward",
                                                  detail: "output \(shape) is not a scalar; pass gradient:")
            }
            seed = Tensor(shape: shape, fill: 1)
        }
        try withNoGrad { try Tensor.runBackward(from: root, seed: seed) }
    }

    private static func runBackward(from root: GraphNode, seed: Tensor) throws {
        // Iterative depth-first post-order (graphs of big UNets are far deeper than the call stack allows).
        var order: [GraphNode] = []
        var visited = Set<ObjectIdentifier>()
        var stack: [(GraphNode, Int)] = [(root, 0)]
        visited.insert(ObjectIdentifier(root))
        while let (current, resumeAt) = stack.popLast() {
            var index = resumeAt
            var descended = false
            while index < current.inputs.count {
                let candidate = current.inputs[index]
                index += 1
                if let child = candidate, visited.insert(ObjectIdentifier(child)).inserted {
                    stack.append((current, index))
                    stack.append((child, 0))
                    descended = true
                    break
                }
            }
            if !descended { order.append(current) }   // all inputs already placed: post-order
        }
        var pending: [ObjectIdentifier: Tensor] = [ObjectIdentifier(root): seed]
        for current in order.reversed() {
            guard let gradient = pending.removeValue(forKey: ObjectIdentifier(current)) else {
                current.releaseInputs()
                continue
            }
            let inputGradients = try current.propagate(gradient)
            for (index, (input, inputGradient)) in zip(current.inputs, inputGradients).enumerated() {
                guard let input, let inputGradient else { continue }
                guard inputGradient.shape == current.inputShapes[index] else {
                    throw TensorError.shapeMismatch(op: "backward of \(current.op)",
                                                    detail: "gradient \(inputGradient.shape) for input \(index) of shape \(current.inputShapes[index])")
                }
                let key = ObjectIdentifier(input)
                if var existing = pending[key] {
                    pending[key] = nil          // drop the dictionary's reference so the add can be in place
                    existing.addInPlace(inputGradient)
                    pending[key] = existing
                } else {
                    pending[key] = inputGradient.detached
                }
            }
            current.releaseInputs()
        }
    }

    /// self += other (same shape), copying first if the storage is shared.
    mutating func addInPlace(_ other: Tensor) {
        let source = other.storage.pointer
        let n = count
        withUnsafeMutableBufferPointer { destination in
            guard let target = destination.baseAddress else { return }
            parallelFor(n, grain: 1 << 15) { range in
                for i in range { target[i] += source[i] }
            }
        }
    }
}
