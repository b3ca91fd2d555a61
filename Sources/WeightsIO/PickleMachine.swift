import Foundation

/// Interprets the few calls and persistent ids a format gives meaning to; everything else stays inert.
protocol PickleInterpreter: AnyObject {
    /// BINPERSID: turn a persistent id into a value (a storage) or throw.
    func persistentLoad(_ id: PickleValue, arena: PickleArena) throws -> PickleValue
    /// REDUCE / NEWOBJ on `symbol`; nil means "not ours", and the call becomes an inert object.
    func call(_ symbol: PickleSymbol, arguments: [PickleValue], arena: PickleArena) throws -> PickleValue?
}

/// A symbolic pickle VM for protocols 2–5. It never imports or calls anything; it refuses the text
/// opcodes of protocols 0/1, the extension registry, INST/OBJ and text PERSID, enforces
/// `PickleLimits`, and fails closed on every structural error.
struct PickleMachine {
    let bytes: UnsafeRawBufferPointer
    let file: String
    /// Where the pickle lives, for messages (`archive/data.pkl`).
    let record: String
    let limits: PickleLimits
    let interpreter: PickleInterpreter?
    /// Collects the globals that are neither allowlisted nor dangerous (`PickleGlobalVerdict.unknown`).
    var globals: PickleGlobalLedger? = nil

    /// Runs from `start` to STOP and hands the result to `consume` together with the offset just past
    /// STOP. The result graph is valid only inside `consume`. With `requireEnd`, STOP must be the last byte.
    func run<T>(from start: Int = 0, requireEnd: Bool, _ consume: (PickleValue, Int) throws -> T) throws -> T {
        let arena = PickleArena()
        defer { arena.release() }
        var state = PickleRun(machine: self, arena: arena, cursor: start)
        let root = try state.execute()
        if requireEnd, state.cursor != bytes.count {
            throw WeightsError(.corrupt, file: file, at: "\(record) byte \(state.cursor)",
                               "\(bytes.count - state.cursor) bytes follow the STOP opcode")
        }
        return try consume(root, state.cursor)
    }
}

private struct PickleRun {
    let machine: PickleMachine
    let arena: PickleArena
    var cursor: Int
    var stack: [PickleValue] = []
    var marks: [Int] = []
    /// Memo: writers number slots 0, 1, 2, …, so those go in an array; any other index goes in a
    /// dictionary (never an array sized by an attacker's index, e.g. LONG_BINPUT 0xFFFFFFFF).
    var memoSlots: [PickleValue?] = []
    var memoSparse: [UInt32: PickleValue] = [:]
    var memoCount = 0
    /// Verdicts already given: a pickle may name the same global many times.
    var verdicts: [PickleSymbol: PickleGlobalVerdict] = [:]
    var opcodeCount = 0
    var nodeCount = 0
    var opcodeStart = 0
    var opcode: UInt8 = 0

    init(machine: PickleMachine, arena: PickleArena, cursor: Int) {
        self.machine = machine
        self.arena = arena
        self.cursor = cursor
    }

    var limits: PickleLimits { machine.limits }
    var bytes: UnsafeRawBufferPointer { machine.bytes }

    // MARK: errors

    func failure(_ kind: WeightsError.Kind, _ message: String) -> WeightsError {
        WeightsError(kind, file: machine.file,
                     at: "\(machine.record) byte \(opcodeStart) (opcode \(PickleRun.describe(opcode)))", message)
    }

    static func describe(_ opcode: UInt8) -> String {
        let names: [UInt8: String] = [
            0x80: "PROTO", 0x2E: "STOP", 0x95: "FRAME", 0x28: "MARK", 0x30: "POP", 0x31: "POP_MARK", 0x32: "DUP",
            0x4A: "BININT", 0x4B: "BININT1", 0x4D: "BININT2", 0x8A: "LONG1", 0x8B: "LONG4", 0x4E: "NONE",
            0x88: "NEWTRUE", 0x89: "NEWFALSE", 0x47: "BINFLOAT", 0x58: "BINUNICODE", 0x8C: "SHORT_BINUNICODE",
            0x8D: "BINUNICODE8", 0x55: "SHORT_BINSTRING", 0x54: "BINSTRING", 0x43: "SHORT_BINBYTES", 0x42: "BINBYTES",
            0x8E: "BINBYTES8", 0x96: "BYTEARRAY8", 0x29: "EMPTY_TUPLE", 0x74: "TUPLE", 0x85: "TUPLE1", 0x86: "TUPLE2",
            0x87: "TUPLE3", 0x5D: "EMPTY_LIST", 0x61: "APPEND", 0x65: "APPENDS", 0x6C: "LIST", 0x7D: "EMPTY_DICT",
            0x64: "DICT", 0x73: "SETITEM", 0x75: "SETITEMS", 0x8F: "EMPTY_SET", 0x90: "ADDITEMS", 0x91: "FROZENSET",
            0x63: "GLOBAL", 0x93: "STACK_GLOBAL", 0x52: "REDUCE", 0x62: "BUILD", 0x81: "NEWOBJ", 0x92: "NEWOBJ_EX",
            0x51: "BINPERSID", 0x50: "PERSID", 0x71: "BINPUT", 0x72: "LONG_BINPUT", 0x94: "MEMOIZE", 0x68: "BINGET",
            0x6A: "LONG_BINGET", 0x49: "INT", 0x4C: "LONG", 0x46: "FLOAT", 0x53: "STRING", 0x56: "UNICODE",
            0x70: "PUT", 0x67: "GET", 0x69: "INST", 0x6F: "OBJ", 0x82: "EXT1", 0x83: "EXT2", 0x84: "EXT4",
            0x97: "NEXT_BUFFER", 0x98: "READONLY_BUFFER",
        ]
        return "0x" + String(opcode, radix: 16) + (names[opcode].map { " \($0)" } ?? "")
    }

    // MARK: input

    mutating func take(_ count: Int) throws -> UnsafeRawBufferPointer {
        guard count >= 0, count <= bytes.count - cursor else {
            throw failure(.corrupt, "truncated: needs \(count) more bytes, \(bytes.count - cursor) left")
        }
        defer { cursor += count }
        return UnsafeRawBufferPointer(rebasing: bytes[cursor ..< cursor + count])
    }

    mutating func readUInt(_ width: Int) throws -> UInt64 {
        let raw = try take(width)
        var value: UInt64 = 0
        for index in stride(from: width - 1, through: 0, by: -1) { value = value << 8 | UInt64(raw[index]) }
        return value
    }

    /// A length prefix, checked against the string limit and the bytes that are left.
    mutating func readLength(_ width: Int) throws -> Int {
        let length = try readUInt(width)
        guard length <= UInt64(limits.maxStringBytes) else {
            throw failure(.limit, "length \(length) exceeds the \(limits.maxStringBytes)-byte limit")
        }
        guard length <= UInt64(bytes.count - cursor) else {
            throw failure(.corrupt, "length \(length) runs past the end (\(bytes.count - cursor) bytes left)")
        }
        return Int(length)
    }

    /// GLOBAL's newline-terminated operands.
    mutating func readLine() throws -> String {
        let maxLine = 1024
        var end = cursor
        while end < bytes.count, bytes[end] != 0x0A {
            end += 1
            if end - cursor > maxLine { throw failure(.limit, "GLOBAL operand longer than \(maxLine) bytes") }
        }
        guard end < bytes.count else { throw failure(.corrupt, "truncated GLOBAL operand (no newline)") }
        let raw = UnsafeRawBufferPointer(rebasing: bytes[cursor ..< end])
        cursor = end + 1
        guard let text = String(validating: raw, as: UTF8.self),
              text.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value != 0x7F }) else {
            throw failure(.corrupt, "GLOBAL operand is not printable text")
        }
        return text
    }

    // MARK: stack

    mutating func push(_ value: PickleValue) throws {
        guard stack.count + marks.count < limits.maxStackDepth else {
            throw failure(.limit, "stack depth exceeds \(limits.maxStackDepth)")
        }
        stack.append(value)
    }

    /// Push a newly created value (counted against the node limit and checked for nesting).
    mutating func pushNew(_ value: PickleValue) throws {
        nodeCount += 1
        guard nodeCount <= limits.maxNodes else { throw failure(.limit, "more than \(limits.maxNodes) values") }
        try checkNesting(value.depth)
        try push(value)
    }

    func checkNesting(_ depth: Int) throws {
        guard depth <= limits.maxNesting else {
            throw failure(.limit, "containers nested \(depth) deep; the limit is \(limits.maxNesting)")
        }
    }

    mutating func pop() throws -> PickleValue {
        if let mark = marks.last, stack.count <= mark { throw failure(.corrupt, "pops across a MARK") }
        guard let value = stack.popLast() else { throw failure(.corrupt, "pop from an empty stack") }
        return value
    }

    mutating func top() throws -> PickleValue {
        if let mark = marks.last, stack.count <= mark { throw failure(.corrupt, "reads across a MARK") }
        guard let value = stack.last else { throw failure(.corrupt, "the stack is empty") }
        return value
    }

    mutating func popMark() throws -> [PickleValue] {
        guard let mark = marks.popLast() else { throw failure(.corrupt, "no MARK on the stack") }
        let items = Array(stack[mark...])
        stack.removeSubrange(mark...)
        return items
    }

    // MARK: builders

    mutating func makeTuple(_ items: [PickleValue]) throws {
        try pushNew(.tuple(arena.adopt(PickleTuple(items))))
    }

    mutating func makeInt(littleEndian raw: UnsafeRawBufferPointer) throws -> PickleValue {
        if raw.isEmpty { return .int(0) }
        guard raw.count <= limits.maxIntBytes else {
            guard raw.count <= 1024 else { throw failure(.limit, "integer of \(raw.count) bytes") }
            return .bigInt(Array(raw))
        }
        // Two's complement: sign-extend from the top bit of the last byte (Python's decode_long).
        var value: UInt64 = raw[raw.count - 1] & 0x80 != 0 ? ~0 : 0
        for index in stride(from: raw.count - 1, through: 0, by: -1) { value = value << 8 | UInt64(raw[index]) }
        return .int(Int64(bitPattern: value))
    }

    mutating func text(_ raw: UnsafeRawBufferPointer) -> PickleValue {
        if let string = String(validating: raw, as: UTF8.self) { return .string(string) }
        return .malformedString(Array(raw))
    }

    mutating func memoize(_ index: UInt32) throws {
        let value = try top()
        let slot = Int(index)
        let isNew: Bool
        if slot < memoSlots.count {
            isNew = memoSlots[slot] == nil
            memoSlots[slot] = value
        } else if slot == memoSlots.count, memoSparse.isEmpty || memoSparse[index] == nil {
            isNew = true
            memoSlots.append(value)
        } else {
            isNew = memoSparse.updateValue(value, forKey: index) == nil
        }
        if isNew {
            memoCount += 1
            guard memoCount <= limits.maxMemoEntries else { throw failure(.limit, "more than \(limits.maxMemoEntries) memo entries") }
        }
    }

    mutating func recall(_ index: UInt32) throws {
        let slot = Int(index)
        let value = slot < memoSlots.count ? memoSlots[slot] : memoSparse[index]
        guard let value else { throw failure(.corrupt, "memo slot \(index) was never set") }
        try push(value)
    }

    mutating func appendItems(_ items: [PickleValue], to target: PickleValue) throws {
        let list: PickleList
        switch target {
        case .list(let node): list = node
        case .object(let object):  // a list subclass rebuilt by NEWOBJ: keep the items, inert
            if object.listItems == nil { object.listItems = arena.adopt(PickleList()) }
            guard let items = object.listItems else { return }
            list = items
        default: throw failure(.corrupt, "APPEND target is a \(target.kindName), not a list")
        }
        for item in items where !(item.isSameNode(as: list)) {
            list.depth = max(list.depth, item.depth + 1)
        }
        try checkNesting(list.depth)
        list.items.append(contentsOf: items)
    }

    mutating func setItems(_ items: [PickleValue], on target: PickleValue) throws {
        guard items.count % 2 == 0 else { throw failure(.corrupt, "SETITEMS with an odd number (\(items.count)) of keys and values") }
        let dict: PickleDict
        switch target {
        case .dict(let node): dict = node
        case .object(let object):  // a dict subclass (e.g. Lightning's AttributeDict): keep the items, inert
            if object.dictItems == nil { object.dictItems = arena.adopt(PickleDict()) }
            guard let items = object.dictItems else { return }
            dict = items
        default: throw failure(.corrupt, "SETITEM target is a \(target.kindName), not a dict")
        }
        var index = 0
        while index < items.count {
            let key = items[index], value = items[index + 1]
            // A dict inside itself is a cycle, not one more level of nesting.
            dict.set(key, value, tracksDepth: !(value.isSameNode(as: dict) || key.isSameNode(as: dict)))
            index += 2
        }
        try checkNesting(dict.depth)
    }

    mutating func applyCall(callee: PickleValue, arguments: [PickleValue]) throws {
        if case .symbol(let symbol) = callee, let interpreter = machine.interpreter {
            do {
                if let value = try interpreter.call(symbol, arguments: arguments, arena: arena) {
                    try pushNew(value)
                    return
                }
            } catch let fault as PickleFault {
                throw failure(fault.kind, fault.message)
            }
        }
        try pushNew(.object(arena.adopt(PickleObject(callee: callee, arguments: arguments))))
    }

    // MARK: the loop

    mutating func execute() throws -> PickleValue {
        while true {
            opcodeStart = cursor
            guard cursor < bytes.count else {
                opcode = 0
                throw failure(.corrupt, "truncated: the pickle ends without a STOP opcode")
            }
            opcode = bytes[cursor]
            cursor += 1
            opcodeCount += 1
            guard opcodeCount <= limits.maxOpcodes else { throw failure(.limit, "more than \(limits.maxOpcodes) opcodes") }

            switch opcode {
            case 0x80:  // PROTO
                let version = try take(1)[0]
                guard (2 ... 5).contains(version) else {
                    throw failure(.unsupported, "pickle protocol \(version); protocols 2 to 5 are read")
                }
            case 0x95:  // FRAME: framing is only a read-ahead hint
                let length = try readUInt(8)
                guard length <= UInt64(bytes.count - cursor) else { throw failure(.corrupt, "frame of \(length) bytes runs past the end") }
            case 0x2E:  // STOP
                guard marks.isEmpty else { throw failure(.corrupt, "STOP with \(marks.count) unclosed MARKs") }
                let result = try pop()
                guard stack.isEmpty else { throw failure(.corrupt, "STOP leaves \(stack.count) values on the stack") }
                return result
            case 0x28:  // MARK
                guard stack.count + marks.count < limits.maxStackDepth else {
                    throw failure(.limit, "stack depth exceeds \(limits.maxStackDepth)")
                }
                marks.append(stack.count)
            case 0x30: _ = try pop()  // POP
            case 0x31: _ = try popMark()  // POP_MARK
            case 0x32: try push(try top())  // DUP

            case 0x4A: try pushNew(.int(Int64(Int32(bitPattern: UInt32(try readUInt(4))))))  // BININT (signed)
            case 0x4B: try pushNew(.int(Int64(try readUInt(1))))  // BININT1 (unsigned)
            case 0x4D: try pushNew(.int(Int64(try readUInt(2))))  // BININT2 (unsigned)
            case 0x8A:  // LONG1
                let count = Int(try take(1)[0])
                try pushNew(try makeInt(littleEndian: try take(count)))
            case 0x8B:  // LONG4
                let count = Int(Int32(bitPattern: UInt32(try readUInt(4))))
                guard count >= 0 else { throw failure(.corrupt, "LONG4 with a negative length") }
                try pushNew(try makeInt(littleEndian: try take(count)))
            case 0x4E: try pushNew(.none)
            case 0x88: try pushNew(.bool(true))
            case 0x89: try pushNew(.bool(false))
            case 0x47:  // BINFLOAT: big-endian double
                let raw = try take(8)
                var bits: UInt64 = 0
                for byte in raw { bits = bits << 8 | UInt64(byte) }
                try pushNew(.float(Double(bitPattern: bits)))

            case 0x58: try pushNew(text(try take(try readLength(4))))  // BINUNICODE
            case 0x8C: try pushNew(text(try take(try readLength(1))))  // SHORT_BINUNICODE
            case 0x8D: try pushNew(text(try take(try readLength(8))))  // BINUNICODE8
            case 0x55, 0x54:  // SHORT_BINSTRING / BINSTRING: Python 2 str, read as latin-1
                let length = opcode == 0x55 ? try readLength(1) : try readLength(4)
                let raw = try take(length)
                try pushNew(.string(String(decoding: raw.map { UInt16($0) }, as: UTF16.self)))
            case 0x43: try pushNew(.bytes(Array(try take(try readLength(1)))))  // SHORT_BINBYTES
            case 0x42: try pushNew(.bytes(Array(try take(try readLength(4)))))  // BINBYTES
            case 0x8E, 0x96: try pushNew(.bytes(Array(try take(try readLength(8)))))  // BINBYTES8 / BYTEARRAY8

            case 0x29: try makeTuple([])
            case 0x74: try makeTuple(try popMark())
            case 0x85: try makeTuple([try pop()])
            case 0x86:
                let second = try pop(), first = try pop()
                try makeTuple([first, second])
            case 0x87:
                let third = try pop(), second = try pop(), first = try pop()
                try makeTuple([first, second, third])

            case 0x5D: try pushNew(.list(arena.adopt(PickleList())))
            case 0x6C:  // LIST
                let items = try popMark()
                let list = arena.adopt(PickleList())
                try appendItems(items, to: .list(list))
                try pushNew(.list(list))
            case 0x61:  // APPEND
                let item = try pop()
                try appendItems([item], to: try top())
            case 0x65:  // APPENDS
                let items = try popMark()
                try appendItems(items, to: try top())

            case 0x7D: try pushNew(.dict(arena.adopt(PickleDict())))
            case 0x64:  // DICT
                let items = try popMark()
                let dict = arena.adopt(PickleDict())
                try setItems(items, on: .dict(dict))
                try pushNew(.dict(dict))
            case 0x73:  // SETITEM
                let value = try pop(), key = try pop()
                try setItems([key, value], on: try top())
            case 0x75:  // SETITEMS
                let items = try popMark()
                try setItems(items, on: try top())

            case 0x8F: try pushNew(.set(arena.adopt(PickleList())))  // EMPTY_SET
            case 0x90:  // ADDITEMS
                let items = try popMark()
                guard case .set(let set) = try top() else { throw failure(.corrupt, "ADDITEMS target is not a set") }
                try appendItems(items, to: .list(set))
            case 0x91:  // FROZENSET
                let items = try popMark()
                let set = arena.adopt(PickleList())
                try appendItems(items, to: .list(set))
                try pushNew(.set(set))

            case 0x63:  // GLOBAL
                let module = try readLine()
                let name = try readLine()
                try pushSymbol(PickleSymbol(module, name))
            case 0x93:  // STACK_GLOBAL
                let name = try pop(), module = try pop()
                guard let moduleText = module.stringValue, let nameText = name.stringValue else {
                    throw failure(.corrupt, "STACK_GLOBAL needs two strings, got \(module.kindName) and \(name.kindName)")
                }
                try pushSymbol(PickleSymbol(moduleText, nameText))

            case 0x52:  // REDUCE
                let arguments = try pop(), callee = try pop()
                guard case .tuple(let tuple) = arguments else {
                    throw failure(.corrupt, "REDUCE arguments are a \(arguments.kindName), not a tuple")
                }
                try applyCall(callee: callee, arguments: tuple.items)
            case 0x81:  // NEWOBJ
                let arguments = try pop(), callee = try pop()
                guard case .tuple(let tuple) = arguments else {
                    throw failure(.corrupt, "NEWOBJ arguments are a \(arguments.kindName), not a tuple")
                }
                try applyCall(callee: callee, arguments: tuple.items)
            case 0x92:  // NEWOBJ_EX: always inert
                let keywords = try pop(), arguments = try pop(), callee = try pop()
                guard case .tuple(let tuple) = arguments, case .dict = keywords else {
                    throw failure(.corrupt, "NEWOBJ_EX needs a tuple and a dict")
                }
                try pushNew(.object(arena.adopt(PickleObject(callee: callee, arguments: tuple.items + [keywords]))))
            case 0x62:  // BUILD
                let state = try pop()
                switch try top() {
                case .object(let object):
                    if !state.isSameNode(as: object) { object.depth = max(object.depth, state.depth + 1) }
                    try checkNesting(object.depth)
                    object.state = state
                case .tensor, .dict:
                    break  // tensor attributes / OrderedDict state carry no weights
                case let other:
                    throw failure(.corrupt, "BUILD on a \(other.kindName)")
                }

            case 0x51:  // BINPERSID
                let id = try pop()
                guard let interpreter = machine.interpreter else {
                    throw failure(.corrupt, "persistent id where this pickle has none")
                }
                do {
                    try pushNew(try interpreter.persistentLoad(id, arena: arena))
                } catch let fault as PickleFault {
                    throw failure(fault.kind, fault.message)
                }

            case 0x71: try memoize(UInt32(try readUInt(1)))  // BINPUT
            case 0x72: try memoize(UInt32(try readUInt(4)))  // LONG_BINPUT
            case 0x94: try memoize(UInt32(truncatingIfNeeded: memoCount))  // MEMOIZE: the next index is len(memo)
            case 0x68: try recall(UInt32(try readUInt(1)))  // BINGET
            case 0x6A: try recall(UInt32(try readUInt(4)))  // LONG_BINGET

            case 0x49, 0x4C, 0x46, 0x53, 0x56, 0x70, 0x67:
                throw failure(.unsupported, "protocol 0/1 text opcode; only binary protocols 2 to 5 are read")
            case 0x69, 0x6F:
                throw failure(.unsafe, "INST/OBJ instantiate classes directly and are refused")
            case 0x82, 0x83, 0x84:
                throw failure(.unsafe, "extension-registry opcodes (EXT1/2/4) are refused")
            case 0x50:
                throw failure(.unsafe, "text persistent ids (PERSID) are refused")
            case 0x97, 0x98:
                throw failure(.unsupported, "out-of-band buffers (protocol 5) are not supported")
            default:
                throw failure(.corrupt, "unknown opcode")
            }
        }
    }

    mutating func pushSymbol(_ symbol: PickleSymbol) throws {
        let verdict: PickleGlobalVerdict
        if let known = verdicts[symbol] {
            verdict = known
        } else {
            guard !symbol.module.isEmpty, !symbol.name.isEmpty else {
                throw failure(.corrupt, "global '\(symbol)' has an empty module or name")
            }
            let steps = symbol.module.split(separator: ".", omittingEmptySubsequences: false)
                + symbol.name.split(separator: ".", omittingEmptySubsequences: false)
            guard !steps.contains(where: \.isEmpty) else {
                throw failure(.corrupt, "global '\(symbol)' is not a dotted Python name (it has an empty component)")
            }
            verdict = PickleGlobalPolicy.verdict(for: symbol)
            verdicts[symbol] = verdict
        }
        switch verdict {
        case .dangerous(let reason): throw failure(.unsafe, reason)
        case .unknown: machine.globals?.note(symbol)
        case .safe: break
        }
        try pushNew(.symbol(symbol))
    }
}

private extension PickleValue {
    /// True when this value is the given container itself (a self-reference).
    func isSameNode(as node: AnyObject) -> Bool {
        switch self {
        case .list(let list), .set(let list): return list === node
        case .dict(let dict): return dict === node
        case .object(let object): return object === node
        case .tuple(let tuple): return tuple === node
        default: return false
        }
    }
}
