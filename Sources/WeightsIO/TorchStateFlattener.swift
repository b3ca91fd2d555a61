/// Turns an unpickled torch object tree into named tensors (formats.md §2.6): unwrap `state_dict`
/// repeatedly, join nested string-keyed dicts with ".", skip non-string keys (Lightning's callbacks
/// are keyed by a class) and non-tensor values; a pickled whole `nn.Module` is walked like
/// `state_dict()`. Name collisions surface in `WeightStore.add`.
struct TorchStateFlattener {
    let file: String
    let limits: PickleLimits
    private(set) var tensors: [(name: String, tensor: TorchTensorRef)] = []
    private var budget: FlattenBudget

    /// `pickleBytes`: size of the pickle the tree came from; the walk's budgets scale with it.
    init(file: String, limits: PickleLimits, pickleBytes: Int) {
        self.file = file
        self.limits = limits
        self.budget = FlattenBudget(file: file, limits: limits, pickleBytes: pickleBytes)
    }

    mutating func flatten(root: PickleValue) throws {
        var current = root
        var unwrapCount = 0
        while case .dict(let dict) = current, let inner = dict["state_dict"], case .dict = inner {
            current = inner
            unwrapCount += 1
            guard unwrapCount <= limits.maxNesting else {
                throw WeightsError(.limit, file: file, at: "state_dict", "state_dict nested more than \(limits.maxNesting) times")
            }
        }
        switch current {
        case .dict(let dict):
            try walk(dict, prefix: "", depth: 1)
        case .tensor:
            throw WeightsError(.unsupported, file: file, at: "root object",
                               "the file holds one unnamed tensor, not a dict of named tensors")
        case .object(let object):
            guard Self.moduleState(object) != nil else {
                throw WeightsError(.unsupported, file: file, at: "root object",
                                   "the file pickles an object (\(object.calleeDescription)) that is neither a state dict nor an nn.Module")
            }
            try walkModule(object, prefix: "", depth: 1)
        default:
            throw WeightsError(.unsupported, file: file, at: "root object", "the file holds a \(current.kindName), not a dict of tensors")
        }
    }

    /// The `__dict__` of a pickled `nn.Module` (it has `_parameters`), or nil.
    private static func moduleState(_ object: PickleObject) -> PickleDict? {
        guard case .dict(let state)? = object.state, case .dict? = state["_parameters"] else { return nil }
        return state
    }

    /// `torch.save(model)`: emit what `state_dict()` would, in its order: `_parameters`, the
    /// persistent `_buffers`, then each child of `_modules`. The classes themselves stay inert.
    private mutating func walkModule(_ module: PickleObject, prefix: String, depth: Int) throws {
        guard depth <= limits.maxNesting else {
            throw WeightsError(.limit, file: file, at: "module '\(prefix)'", "modules nested more than \(limits.maxNesting) deep")
        }
        guard let state = Self.moduleState(module) else {
            throw WeightsError(.unsupported, file: file, at: "module '\(prefix)'",
                               "child \(module.calleeDescription) is not a plain nn.Module (no _parameters dict)")
        }
        var nonPersistent: Set<String> = []
        if case .set(let names)? = state["_non_persistent_buffers_set"] {
            nonPersistent = Set(names.items.compactMap(\.stringValue))
        }
        for group in ["_parameters", "_buffers"] {
            guard case .dict(let members)? = state[group] else { continue }
            for (key, value) in members.entries {
                try budget.visit(at: prefix)
                guard let key = key.stringValue, case .tensor(let tensor) = value else { continue }  // None = unset
                if group == "_buffers", nonPersistent.contains(key) { continue }
                try budget.name(at: prefix)
                tensors.append((try budget.join(prefix, key), tensor))
            }
        }
        guard case .dict(let children)? = state["_modules"] else { return }
        for (key, value) in children.entries {
            try budget.visit(at: prefix)
            guard let key = key.stringValue, case .object(let child) = value else { continue }
            try walkModule(child, prefix: try budget.join(prefix, key), depth: depth + 1)
        }
    }

    private mutating func walk(_ dict: PickleDict, prefix: String, depth: Int) throws {
        guard depth <= limits.maxNesting else {
            throw WeightsError(.limit, file: file, at: "'\(prefix)'", "dicts nested more than \(limits.maxNesting) deep")
        }
        for (key, value) in dict.entries {
            try budget.visit(at: prefix)
            let text: String
            switch key {
            case .string(let string): text = string
            case .malformedString:
                if case .tensor = value {
                    throw WeightsError(.corrupt, file: file, at: "'\(prefix)'", "a tensor is stored under a key that is not valid UTF-8")
                }
                continue
            default: continue  // class-keyed callbacks, int-keyed optimizer state, …
            }
            switch value {
            case .tensor(let tensor):
                try budget.name(at: prefix)
                tensors.append((try budget.join(prefix, text), tensor))
            case .dict(let child): try walk(child, prefix: try budget.join(prefix, text), depth: depth + 1)
            default: continue
            }
        }
    }
}

/// Attaches storage bytes to symbolic tensors, producing zero-copy `TensorRecord`s.
enum TorchRecordBuilder {
    static func record(name: String, tensor: TorchTensorRef, rootStorage: ByteSlice) -> TensorRecord {
        var slice = rootStorage
        if let view = tensor.storage.view {
            let size = tensor.storage.elementSize
            let start = rootStorage.range.lowerBound + view.lowerBound * size
            slice = ByteSlice(owner: rootStorage.owner, range: start ..< start + view.count * size)
        }
        return TensorRecord(name: name, dtype: tensor.dtype, shape: tensor.shape, strides: tensor.strides,
                            storageOffset: tensor.storageOffset, storage: slice)
    }

    static func store(format: WeightFormat, file: String, tensors: [(name: String, tensor: TorchTensorRef)],
                      storageBytes: [String: ByteSlice], metadata: [String: String]) throws -> WeightStore {
        var store = WeightStore(format: format, sources: [file], metadata: metadata)
        for (name, tensor) in tensors {
            guard let root = storageBytes[tensor.storage.key] else {
                throw WeightsError(.corrupt, file: file, at: "tensor '\(name)'", "storage '\(tensor.storage.key)' has no data")
            }
            try store.add(record(name: name, tensor: tensor, rootStorage: root), file: file)
        }
        return store
    }
}
