/// Gives meaning to the fixed table of torch globals (formats.md §5.3) and to storage persistent ids.
/// Everything not in the table stays an inert object; nothing is ever imported or called.
final class TorchPickleInterpreter: PickleInterpreter {
    enum PersistentIDForm {
        /// `torch.save` zip and TorchScript: `('storage', class, key, location, numel)`.
        case zip
        /// Legacy stacked pickles: the same plus `view_metadata`.
        case legacy
    }

    let form: PersistentIDForm
    let limits: PickleLimits
    /// Zip readers resolve a key to its record at once (so errors name the record); legacy files later.
    private let resolveRecord: ((String) throws -> ByteSlice)?
    /// First reference of each storage key; later references must agree.
    private(set) var storages: [String: TorchStorageRef] = [:]
    private(set) var storageBytes: [String: ByteSlice] = [:]
    private var tensorDTypes: [String: DType] = [:]
    private var tensorCount = 0

    init(form: PersistentIDForm, limits: PickleLimits, resolveRecord: ((String) throws -> ByteSlice)?) {
        self.form = form
        self.limits = limits
        self.resolveRecord = resolveRecord
    }

    // MARK: persistent ids

    func persistentLoad(_ id: PickleValue, arena: PickleArena) throws -> PickleValue {
        let expectedCount = form == .zip ? 5 : 6
        guard case .tuple(let tuple) = id, tuple.items.count == expectedCount, tuple.items[0].stringValue == "storage" else {
            throw PickleFault(.format, "persistent id must be a \(expectedCount)-tuple starting with 'storage', got \(describe(id))")
        }
        let items = tuple.items
        guard case .symbol(let classSymbol) = items[1] else {
            throw PickleFault(.format, "storage id names its class with a \(items[1].kindName), not a global")
        }
        let dtype: DType?
        switch try TorchTypeNames.storageClass(classSymbol) {
        case .typed(let type): dtype = type
        case .untyped: dtype = nil
        }
        guard let key = items[2].stringValue, Self.isValidKey(key) else {
            throw PickleFault(.format, "storage key \(describe(items[2])) is not a short alphanumeric identifier")
        }
        guard items[3].stringValue != nil else {
            throw PickleFault(.format, "storage location is a \(items[3].kindName), not a string")
        }
        guard let numel = items[4].intValue, numel >= 0, numel <= Int64(Int.max / 16) else {
            throw PickleFault(.format, "storage '\(key)' has element count \(describe(items[4]))")
        }
        var view: Range<Int>?
        if form == .legacy, case .tuple(let viewTuple) = items[5] {
            guard viewTuple.items.count == 3, viewTuple.items[0].stringValue != nil,
                  let offset = viewTuple.items[1].intValue, let size = viewTuple.items[2].intValue,
                  offset >= 0, size >= 0, offset <= numel, size <= numel - offset else {
                throw PickleFault(.corrupt, "storage '\(key)' has view metadata \(describe(items[5])) outside its \(numel) elements")
            }
            view = Int(offset) ..< Int(offset + size)
        } else if form == .legacy, case .none = items[5] {
        } else if form == .legacy {
            throw PickleFault(.format, "storage '\(key)' has view metadata of type \(items[5].kindName)")
        }
        let storage = TorchStorageRef(key: key, dtype: dtype, elementCount: Int(numel), view: view)

        if let known = storages[key] {
            guard known.dtype == dtype, known.elementCount == storage.elementCount else {
                throw PickleFault(.corrupt, "storage '\(key)' is referenced as \(known.elementCount) × \(known.dtype?.torchName ?? "bytes") and as \(storage.elementCount) × \(dtype?.torchName ?? "bytes")")
            }
        } else {
            storages[key] = storage
            if let resolveRecord {
                let slice = try resolveRecord(key)
                guard slice.count == storage.rootByteCount else {
                    throw PickleFault(.corrupt, "storage '\(key)' declares \(storage.elementCount) × \(storage.elementSize) = \(storage.rootByteCount) bytes but its record holds \(slice.count)")
                }
                storageBytes[key] = slice
            }
        }
        return .storage(storage)
    }

    /// Keys are decimal in practice (older files: pointer values); anything path-like is refused.
    static func isValidKey(_ key: String) -> Bool {
        !key.isEmpty && key.utf8.count <= 64
            && key.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 | 0x20 >= 0x61 && $0 | 0x20 <= 0x7A) || $0 == 0x5F || $0 == 0x2D }
    }

    // MARK: calls

    func call(_ symbol: PickleSymbol, arguments: [PickleValue], arena: PickleArena) throws -> PickleValue? {
        switch (symbol.module, symbol.name) {
        case ("collections", "OrderedDict"):
            return try orderedDict(arguments, arena: arena)
        case ("torch._utils", "_rebuild_tensor"), ("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_tensor_v3"):
            return .tensor(try rebuildTensor(symbol.name, arguments))
        case ("torch._utils", "_rebuild_parameter"), ("torch._utils", "_rebuild_parameter_with_state"):
            let expected = symbol.name == "_rebuild_parameter" ? 3 : 4
            guard arguments.count == expected, case .tensor = arguments[0] else {
                throw PickleFault(.format, "\(symbol) expects \(expected) arguments starting with a tensor")
            }
            return arguments[0]
        case ("torch._tensor", "_rebuild_from_type_v2"):
            // (func, type, args, state): the tensor is what func builds from args; type and state are extras.
            guard arguments.count == 4, case .symbol(let function) = arguments[0], case .tuple(let inner) = arguments[2] else {
                throw PickleFault(.format, "\(symbol) expects (function, type, argument tuple, state)")
            }
            guard function.module == "torch._utils", function.name.hasPrefix("_rebuild_"),
                  let built = try call(function, arguments: inner.items, arena: arena), case .tensor = built else {
                throw PickleFault(.unsupported, "\(symbol) with function '\(function)' is not supported")
            }
            return built
        case ("torch._utils", let name) where name.hasPrefix("_rebuild_"):
            throw PickleFault(.unsupported, "'\(symbol)' builds a tensor kind (quantized, sparse, nested, meta or device-specific) that is not supported")
        case ("_codecs", "encode"):
            return try latin1Bytes(arguments)
        case ("torch.jit._pickle", "restore_type_tag"):
            guard arguments.count == 2 else { throw PickleFault(.format, "\(symbol) expects 2 arguments") }
            return arguments[0]
        case ("torch.jit._pickle", let name) where name.hasPrefix("build_"):
            guard arguments.count == 1 else { throw PickleFault(.format, "\(symbol) expects 1 argument") }
            return arguments[0]
        case ("torch", "device"):
            guard let first = arguments.first?.stringValue, arguments.count <= 2 else {
                throw PickleFault(.format, "torch.device expects a device string")
            }
            if arguments.count == 2, let index = arguments[1].intValue { return .device("\(first):\(index)") }
            return .device(first)
        case ("torch", "Size"):
            guard arguments.count == 1, arguments[0].sequenceItems != nil else { throw PickleFault(.format, "torch.Size expects a tuple") }
            return arguments[0]
        case ("builtins", "set"), ("builtins", "frozenset"), ("__builtin__", "set"), ("__builtin__", "frozenset"):
            let set = arena.adopt(PickleList())
            if let first = arguments.first {
                guard arguments.count == 1, let items = first.sequenceItems ?? setItems(first) else {
                    throw PickleFault(.format, "\(symbol) expects one list")
                }
                set.items = items
                set.depth = 1 + (items.lazy.map(\.depth).max() ?? 0)
            }
            return .set(set)
        case ("builtins", "bytearray"), ("__builtin__", "bytearray"):
            if arguments.isEmpty { return .bytes([]) }
            if case .bytes(let bytes) = arguments[0], arguments.count == 1 { return .bytes(bytes) }
            return try latin1Bytes(arguments)
        case ("builtins", "complex"), ("__builtin__", "complex"):
            guard arguments.count == 2, let real = Self.double(arguments[0]), let imaginary = Self.double(arguments[1]) else {
                throw PickleFault(.format, "complex expects two numbers")
            }
            return .complex(real, imaginary)
        default:
            return nil
        }
    }

    private func setItems(_ value: PickleValue) -> [PickleValue]? {
        if case .set(let list) = value { return list.items }
        return nil
    }

    private static func double(_ value: PickleValue) -> Double? {
        switch value {
        case .float(let number): return number
        case .int(let number): return Double(number)
        default: return nil
        }
    }

    private func orderedDict(_ arguments: [PickleValue], arena: PickleArena) throws -> PickleValue {
        let dict = arena.adopt(PickleDict())
        if let pairs = arguments.first {
            guard arguments.count == 1, let items = pairs.sequenceItems else {
                throw PickleFault(.format, "OrderedDict expects no arguments or one list of pairs")
            }
            for item in items {
                guard let pair = item.sequenceItems, pair.count == 2 else { throw PickleFault(.format, "OrderedDict item is not a pair") }
                dict.set(pair[0], pair[1])
            }
        }
        return .dict(dict)
    }

    private func latin1Bytes(_ arguments: [PickleValue]) throws -> PickleValue {
        guard arguments.count == 2, let text = arguments[0].stringValue, let encoding = arguments[1].stringValue else {
            throw PickleFault(.format, "_codecs.encode expects (str, encoding)")
        }
        guard ["latin1", "latin-1", "iso-8859-1", "iso8859-1"].contains(encoding.lowercased()) else {
            throw PickleFault(.unsupported, "_codecs.encode with encoding '\(encoding)'; only latin1 is read")
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.unicodeScalars.count)
        for scalar in text.unicodeScalars {
            guard scalar.value <= 0xFF else { throw PickleFault(.corrupt, "latin1 text holds U+\(String(scalar.value, radix: 16))") }
            bytes.append(UInt8(scalar.value))
        }
        return .bytes(bytes)
    }

    // MARK: tensors

    private func rebuildTensor(_ function: String, _ arguments: [PickleValue]) throws -> TorchTensorRef {
        let counts: ClosedRange<Int> = switch function {
        case "_rebuild_tensor": 4 ... 4
        case "_rebuild_tensor_v2": 6 ... 7
        default: 7 ... 8
        }
        guard counts.contains(arguments.count) else {
            throw PickleFault(.format, "\(function) expects \(counts) arguments, got \(arguments.count)")
        }
        guard case .storage(let storage) = arguments[0] else {
            throw PickleFault(.format, "\(function) expects a storage first, got \(arguments[0].kindName)")
        }
        tensorCount += 1
        guard tensorCount <= limits.maxTensors else { throw PickleFault(.limit, "more than \(limits.maxTensors) tensors") }

        let dtype: DType
        if function == "_rebuild_tensor_v3" {
            dtype = try TorchTypeNames.dtype(arguments[6])
        } else if let storageType = storage.dtype {
            dtype = storageType
        } else {
            throw PickleFault(.format, "\(function) on an untyped storage ('\(storage.key)') has no element type")
        }
        guard let offset = arguments[1].intValue, offset >= 0 else {
            throw PickleFault(.corrupt, "storage offset \(describe(arguments[1])) is not a non-negative integer")
        }
        let shape = try integers(arguments[2], what: "size")
        let strides = try integers(arguments[3], what: "stride")
        guard shape.count == strides.count else {
            throw PickleFault(.corrupt, "size has \(shape.count) dimensions but stride has \(strides.count)")
        }
        guard shape.count <= limits.maxRank else { throw PickleFault(.limit, "rank \(shape.count) exceeds \(limits.maxRank)") }
        if let negative = strides.first(where: { $0 < 0 }) {
            throw PickleFault(.corrupt, "negative stride \(negative) (torch refuses these too)")
        }
        try checkExtent(offset: Int(offset), shape: shape, strides: strides, dtype: dtype, storage: storage)

        if let known = tensorDTypes[storage.key], known != dtype {
            throw PickleFault(.corrupt, "storage '\(storage.key)' is viewed as both \(known.torchName) and \(dtype.torchName)")
        }
        tensorDTypes[storage.key] = dtype
        return TorchTensorRef(storage: storage, dtype: dtype, storageOffset: Int(offset), shape: shape, strides: strides)
    }

    /// torch's rule: offset + Σ (size−1)·stride + 1 elements must fit the storage (0 if any size is 0).
    private func checkExtent(offset: Int, shape: [Int], strides: [Int], dtype: DType, storage: TorchStorageRef) throws {
        if shape.contains(0) { return }
        var last = offset
        var overflow = false
        for (size, stride) in zip(shape, strides) {
            let (step, stepOverflow) = (size - 1).multipliedReportingOverflow(by: stride)
            let (sum, sumOverflow) = last.addingReportingOverflow(step)
            overflow = overflow || stepOverflow || sumOverflow
            last = sum
        }
        let (elements, countOverflow) = last.addingReportingOverflow(1)
        let (bytes, bytesOverflow) = elements.multipliedReportingOverflow(by: dtype.byteSize)
        guard !(overflow || countOverflow || bytesOverflow), bytes <= storage.byteCount else {
            throw PickleFault(.corrupt, "view (offset \(offset), size \(shape), stride \(strides)) of \(dtype.torchName) needs \(overflow ? "an overflowing number of" : String(bytes)) bytes but storage '\(storage.key)' has \(storage.byteCount)")
        }
        // The logical (materialised) size must be representable, and bounded when it exceeds the storage.
        var logical = dtype.byteSize
        for size in shape {
            let (product, productOverflow) = logical.multipliedReportingOverflow(by: size)
            guard !productOverflow else { throw PickleFault(.limit, "tensor of size \(shape) has more elements than can be addressed") }
            logical = product
        }
        if logical > storage.byteCount, logical > limits.maxExpandedTensorBytes {
            throw PickleFault(.limit, "expanded tensor of size \(shape) would materialise \(logical) bytes from a \(storage.byteCount)-byte storage (limit \(limits.maxExpandedTensorBytes))")
        }
    }

    private func integers(_ value: PickleValue, what: String) throws -> [Int] {
        guard let items = value.sequenceItems else { throw PickleFault(.format, "tensor \(what) is a \(value.kindName), not a tuple") }
        return try items.map { item in
            guard case .int(let number) = item else {
                throw PickleFault(.corrupt, "tensor \(what) holds \(describe(item))")
            }
            if what == "size", number < 0 { throw PickleFault(.corrupt, "negative size \(number)") }
            return Int(number)
        }
    }
}

/// A short rendering of a value for error messages.
func describe(_ value: PickleValue) -> String {
    switch value {
    case .int(let number): return String(number)
    case .string(let text): return "'" + String(text.prefix(80)) + "'"
    case .tuple(let tuple): return "(" + tuple.items.prefix(8).map(describe).joined(separator: ", ") + (tuple.items.count > 8 ? ", …)" : ")")
    case .float(let number): return String(number)
    case .bool(let flag): return flag ? "True" : "False"
    default: return value.kindName
    }
}
