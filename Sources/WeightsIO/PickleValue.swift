// The values a symbolic pickle VM produces. Nothing here can run code: globals are inert symbols,
// calls on unknown symbols become inert `PickleObject`s, and only a fixed table of torch rebuild
// functions is interpreted (into `.storage` and `.tensor`).
//
// Containers are classes so that memo references share them (never deep copies: copying lets
// BINGET + APPENDS chains grow memory exponentially). All nodes of one run live in a
// `PickleArena`, which cuts every edge when the run ends, so deep or cyclic graphs are freed
// without recursion.

/// A `module.name` reference as GLOBAL / STACK_GLOBAL wrote it. Never imported or called.
public struct PickleSymbol: Hashable, Sendable, CustomStringConvertible {
    public let module: String
    public let name: String
    public init(_ module: String, _ name: String) {
        self.module = module
        self.name = name
    }
    public var description: String { "\(module).\(name)" }
}

public enum PickleValue {
    case none
    case bool(Bool)
    case int(Int64)
    /// An integer wider than 64 bits: little-endian two's-complement bytes (e.g. the legacy magic).
    case bigInt([UInt8])
    case float(Double)
    case complex(Double, Double)
    case string(String)
    /// A text value that is not valid UTF-8 (torch writes with `surrogatepass`); never usable as a name.
    case malformedString([UInt8])
    case bytes([UInt8])
    case tuple(PickleTuple)
    case list(PickleList)
    case dict(PickleDict)
    case set(PickleList)
    case symbol(PickleSymbol)
    case object(PickleObject)
    // Boxed so that every other value stays a few words wide on the VM stack.
    indirect case storage(TorchStorageRef)
    indirect case tensor(TorchTensorRef)
    case device(String)

    /// Container nesting below this value, as known when it was built.
    var depth: Int {
        switch self {
        case .tuple(let node): return node.depth
        case .list(let node), .set(let node): return node.depth
        case .dict(let node): return node.depth
        case .object(let node): return node.depth
        default: return 0
        }
    }

    var kindName: String {
        switch self {
        case .none: return "None"
        case .bool: return "bool"
        case .int, .bigInt: return "int"
        case .float: return "float"
        case .complex: return "complex"
        case .string, .malformedString: return "str"
        case .bytes: return "bytes"
        case .tuple: return "tuple"
        case .list: return "list"
        case .dict: return "dict"
        case .set: return "set"
        case .symbol(let symbol): return "global \(symbol)"
        case .object(let object): return "object of \(object.calleeDescription)"
        case .storage: return "storage"
        case .tensor: return "tensor"
        case .device: return "device"
        }
    }

    var stringValue: String? {
        if case .string(let text) = self { return text }
        return nil
    }

    var intValue: Int64? {
        switch self {
        case .int(let value): return value
        case .bool(let value): return value ? 1 : 0
        default: return nil
        }
    }

    /// Items of a tuple or list (torch sizes and strides arrive as either).
    var sequenceItems: [PickleValue]? {
        switch self {
        case .tuple(let node): return node.items
        case .list(let node): return node.items
        default: return nil
        }
    }
}

/// Anything the arena can disconnect.
protocol PickleNode: AnyObject {
    func dropChildren()
}

public final class PickleTuple: PickleNode {
    public private(set) var items: [PickleValue]
    let depth: Int
    init(_ items: [PickleValue]) {
        self.items = items
        self.depth = 1 + (items.lazy.map(\.depth).max() ?? 0)
    }
    func dropChildren() { items = [] }
}

public final class PickleList: PickleNode {
    public internal(set) var items: [PickleValue] = []
    var depth = 1
    init() {}
    func dropChildren() { items = [] }
}

/// An insertion-ordered dict. String keys follow Python semantics (a repeated key replaces the value
/// in place); other keys (class symbols, ints) are kept in order as written.
public final class PickleDict: PickleNode {
    public private(set) var entries: [(key: PickleValue, value: PickleValue)] = []
    private var stringIndex: [String: Int] = [:]
    var depth = 1
    init() {}

    func set(_ key: PickleValue, _ value: PickleValue, tracksDepth: Bool = true) {
        if tracksDepth { depth = max(depth, value.depth + 1, key.depth + 1) }
        if case .string(let text) = key {
            if let existing = stringIndex[text] {
                entries[existing].value = value
                return
            }
            stringIndex[text] = entries.count
        }
        entries.append((key, value))
    }

    public subscript(key: String) -> PickleValue? {
        stringIndex[key].map { entries[$0].value }
    }

    func dropChildren() {
        entries = []
        stringIndex = [:]
    }
}

/// The inert result of REDUCE / NEWOBJ on a symbol outside the interpreted table
/// (a TorchScript module, a Lightning callback, a numpy scalar, …), with the state BUILD gave it.
public final class PickleObject: PickleNode {
    public private(set) var callee: PickleValue
    public private(set) var arguments: [PickleValue]
    public internal(set) var state: PickleValue?
    /// Items a dict/list subclass received through SETITEMS / APPENDS (kept, never interpreted).
    public internal(set) var dictItems: PickleDict?
    public internal(set) var listItems: PickleList?
    var depth: Int

    init(callee: PickleValue, arguments: [PickleValue]) {
        self.callee = callee
        self.arguments = arguments
        self.depth = 1 + (arguments.lazy.map(\.depth).max() ?? 0)
    }

    public var classSymbol: PickleSymbol? {
        if case .symbol(let symbol) = callee { return symbol }
        return nil
    }

    var calleeDescription: String { classSymbol?.description ?? callee.kindName }

    func dropChildren() {
        callee = .none
        arguments = []
        state = nil
        dictItems = nil
        listItems = nil
    }
}

/// Owns every container of one VM run; `release()` cuts all edges so freeing never recurses.
final class PickleArena {
    private var nodes: [PickleNode] = []
    func adopt<Node: PickleNode>(_ node: Node) -> Node {
        nodes.append(node)
        return node
    }
    func release() {
        for node in nodes { node.dropChildren() }
        nodes = []
    }
}
