import XCTest
@testable import WeightsIO

/// The symbolic pickle VM on handcrafted opcode streams: encodings, memo sharing, refusals and limits.
final class PickleMachineTests: XCTestCase {
    private func evaluate<T>(_ bytes: [UInt8], limits: PickleLimits = .init(), requireEnd: Bool = true,
                             _ inspect: (PickleValue) throws -> T) throws -> T {
        try bytes.withUnsafeBytes { raw in
            let interpreter = TorchPickleInterpreter(form: .zip, limits: limits, resolveRecord: nil)
            let machine = PickleMachine(bytes: raw, file: "test.pkl", record: "archive/data.pkl", limits: limits, interpreter: interpreter)
            return try machine.run(requireEnd: requireEnd) { value, _ in try inspect(value) }
        }
    }

    private func int(_ bytes: [UInt8]) throws -> Int64? {
        try evaluate([0x80, 0x02] + bytes + [0x2E]) { $0.intValue }
    }

    func testIntegerEncodings() throws {
        XCTAssertEqual(try int([0x4B, 0xFF]), 255, "BININT1 is unsigned")
        XCTAssertEqual(try int([0x4D, 0xFF, 0xFF]), 65535, "BININT2 is unsigned")
        XCTAssertEqual(try int([0x4A, 0xFF, 0xFF, 0xFF, 0xFF]), -1, "BININT is signed")
        XCTAssertEqual(try int([0x8A, 0x01, 0xFF]), -1, "LONG1 sign-extends")
        XCTAssertEqual(try int([0x8A, 0x02, 0x00, 0x80]), -32768)
        XCTAssertEqual(try int([0x8A, 0x02, 0xFF, 0x00]), 255, "a zero top byte keeps it positive")
        XCTAssertEqual(try int([0x8A, 0x05, 0x00, 0x00, 0x00, 0x00, 0x01]), 1 << 32, "storage sizes ≥ 4 GiB")
        XCTAssertEqual(try int([0x8A, 0x00]), 0)
        // Wider than 8 bytes: an inert big integer, never a usable size.
        try evaluate([0x80, 0x02, 0x8A, 0x09, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0x2E]) { value in
            guard case .bigInt(let raw) = value else { return XCTFail("expected a big int, got \(value.kindName)") }
            XCTAssertEqual(raw.count, 9)
        }
    }

    func testBinFloatIsBigEndian() throws {
        try evaluate([0x80, 0x02, 0x47, 0x3F, 0xF8, 0, 0, 0, 0, 0, 0, 0x2E]) { value in
            guard case .float(let number) = value else { return XCTFail("not a float") }
            XCTAssertEqual(number, 1.5)
        }
    }

    func testStringsAndBytes() throws {
        try evaluate([0x80, 0x04, 0x8C, 0x03] + Array("abc".utf8) + [0x2E]) { XCTAssertEqual($0.stringValue, "abc") }
        // A lone surrogate (torch writes with surrogatepass) is kept, but never as a usable string.
        try evaluate([0x80, 0x02, 0x58, 3, 0, 0, 0, 0xED, 0xA0, 0x80, 0x2E]) { value in
            guard case .malformedString = value else { return XCTFail("expected a malformed string") }
        }
        // Python 2 str: latin-1.
        try evaluate([0x80, 0x02, 0x55, 0x02, 0x41, 0xE9, 0x2E]) { XCTAssertEqual($0.stringValue, "Aé") }
        // _codecs.encode(str, 'latin1') → bytes, as torch writes Python bytes under protocol 2.
        var pickle = PickleBuilder()
        pickle.global("_codecs", "encode"); pickle.mark(); pickle.string("\u{00}\u{FF}A"); pickle.string("latin1"); pickle.tuple()
        pickle.reduce(); pickle.stop()
        try evaluate(pickle.bytes) { value in
            guard case .bytes(let bytes) = value else { return XCTFail("expected bytes") }
            XCTAssertEqual(bytes, [0x00, 0xFF, 0x41])
        }
        // Any other codec is refused.
        var other = PickleBuilder()
        other.global("_codecs", "encode"); other.mark(); other.string("x"); other.string("rot13"); other.tuple(); other.reduce(); other.stop()
        assertWeightsError(.unsupported, ["rot13"]) { try self.evaluate(other.bytes) { _ in () } }
    }

    func testMemoValuesAreSharedNotCopied() throws {
        // d = {'a': L, 'b': L} with L memoised once and fetched by BINGET, then L gets an item.
        let bytes: [UInt8] = [0x80, 0x02, 0x7D, 0x28, 0x58, 1, 0, 0, 0, 0x61, 0x5D, 0x71, 0x07,
                              0x58, 1, 0, 0, 0, 0x62, 0x68, 0x07, 0x75, 0x2E]
        try evaluate(bytes) { value in
            guard case .dict(let dict) = value, case .list(let first)? = dict["a"], case .list(let second)? = dict["b"] else {
                return XCTFail("unexpected shape")
            }
            XCTAssertTrue(first === second)
        }
    }

    func testExponentialMemoFanOutStaysLinear() throws {
        // t0 = (); t(n+1) = (tn, tn): 2^200 leaves if copied, 200 nodes when shared.
        var bytes: [UInt8] = [0x80, 0x02, 0x29, 0x71, 0x00]
        for _ in 0 ..< 200 { bytes += [0x30, 0x68, 0x00, 0x68, 0x00, 0x86, 0x71, 0x00] }
        bytes += [0x2E]
        let start = Date()
        try evaluate(bytes) { value in XCTAssertEqual(value.depth, 201) }
        XCTAssertLessThan(Date().timeIntervalSince(start), 2)
    }

    func testLongBinputAtMaximumIndexUsesNoTable() throws {
        let bytes: [UInt8] = [0x80, 0x02, 0x4E, 0x72, 0xFF, 0xFF, 0xFF, 0xFF, 0x30, 0x6A, 0xFF, 0xFF, 0xFF, 0xFF, 0x2E]
        try evaluate(bytes) { value in
            guard case .none = value else { return XCTFail("expected None") }
        }
    }

    func testMemoMixesSequentialAndSparseSlots() throws {
        // put 0 = 10, put 9 = 11 (sparse), put 1 = 12 (sequential again); then fetch 9, 1, 0 into a tuple.
        let bytes: [UInt8] = [0x80, 0x02, 0x4B, 10, 0x71, 0, 0x30, 0x4B, 11, 0x71, 9, 0x30, 0x4B, 12, 0x71, 1, 0x30,
                              0x68, 9, 0x68, 1, 0x68, 0, 0x87, 0x2E]
        try evaluate(bytes) { value in
            XCTAssertEqual(value.sequenceItems?.compactMap(\.intValue), [11, 12, 10])
        }
    }

    func testStructuralErrorsFailClosed() {
        let cases: [(String, [UInt8], String)] = [
            ("BINGET of an unset slot", [0x80, 0x02, 0x68, 0x05, 0x2E], "memo slot 5"),
            ("pop from empty stack", [0x80, 0x02, 0x52, 0x2E], "empty stack"),
            ("odd SETITEMS", [0x80, 0x02, 0x7D, 0x28, 0x4B, 0x01, 0x75, 0x2E], "odd number"),
            ("APPEND on a dict", [0x80, 0x02, 0x7D, 0x4B, 0x01, 0x61, 0x2E], "not a list"),
            ("SETITEM on a list", [0x80, 0x02, 0x5D, 0x4B, 0x01, 0x4B, 0x02, 0x73, 0x2E], "not a dict"),
            ("missing STOP", [0x80, 0x02, 0x4E], "without a STOP"),
            ("missing MARK", [0x80, 0x02, 0x4E, 0x74, 0x2E], "no MARK"),
            ("unclosed MARK", [0x80, 0x02, 0x28, 0x4E, 0x2E], "unclosed"),
            ("two values left at STOP", [0x80, 0x02, 0x4E, 0x4E, 0x2E], "leaves 1"),
            ("truncated string", [0x80, 0x02, 0x58, 0x10, 0, 0, 0, 0x41, 0x2E], "runs past the end"),
            ("truncated after GLOBAL", [0x80, 0x02, 0x63] + Array("torch\nFloat".utf8), "no newline"),
            ("REDUCE with non-tuple args", [0x80, 0x02, 0x63] + Array("torch\nSize\n".utf8) + [0x4E, 0x52, 0x2E], "not a tuple"),
            ("BUILD on an int", [0x80, 0x02, 0x4B, 0x01, 0x4E, 0x62, 0x2E], "BUILD on a int"),
            ("unknown opcode", [0x80, 0x02, 0xFF, 0x2E], "unknown opcode"),
            ("BINPERSID without 'storage'", [0x80, 0x02, 0x4B, 0x01, 0x85, 0x51, 0x2E], "persistent id"),
        ]
        for (label, bytes, fragment) in cases {
            do {
                _ = try evaluate(bytes) { _ in () }
                XCTFail("\(label): accepted")
            } catch let error as WeightsError {
                XCTAssertTrue([.corrupt, .format].contains(error.kind), "\(label): \(error)")
                XCTAssertTrue(error.description.contains(fragment), "\(label): '\(error)' lacks '\(fragment)'")
                XCTAssertTrue(error.description.contains("archive/data.pkl byte"), "\(label): no position in '\(error)'")
            } catch {
                XCTFail("\(label): \(error)")
            }
        }
    }

    func testBytesAfterStopAreRefusedWhereTheRecordMustEnd() throws {
        assertWeightsError(.corrupt, ["1 bytes follow the STOP"]) { try self.evaluate([0x80, 0x02, 0x4E, 0x2E, 0x00]) { _ in () } }
        try evaluate([0x80, 0x02, 0x4E, 0x2E, 0x00], requireEnd: false) { value in
            guard case .none = value else { return XCTFail() }
        }
    }

    func testRefusedOpcodes() {
        assertWeightsError(.unsupported, ["text opcode"]) { try self.evaluate(Array("I1\n.".utf8)) { _ in () } }
        assertWeightsError(.unsupported, ["protocol 1"]) { try self.evaluate([0x80, 0x01, 0x4E, 0x2E]) { _ in () } }
        assertWeightsError(.unsafe, ["INST"]) { try self.evaluate([0x80, 0x02, 0x28, 0x69] + Array("os\nsystem\n".utf8) + [0x2E]) { _ in () } }
        assertWeightsError(.unsafe, ["EXT"]) { try self.evaluate([0x80, 0x02, 0x82, 0x01, 0x2E]) { _ in () } }
        assertWeightsError(.unsafe, ["PERSID"]) { try self.evaluate([0x80, 0x02, 0x50] + Array("0\n".utf8) + [0x2E]) { _ in () } }
        assertWeightsError(.unsupported, ["out-of-band"]) { try self.evaluate([0x80, 0x05, 0x97, 0x2E]) { _ in () } }
    }

    func testDangerousGlobalsAreRefusedByName() {
        let globals = [("os", "system"), ("posix", "system"), ("nt", "system"), ("subprocess", "Popen"),
                       ("builtins", "eval"), ("builtins", "exec"), ("__builtin__", "getattr"), ("builtins", "__import__"),
                       ("runpy", "_run_code"), ("_pickle", "loads"), ("operator", "attrgetter"), ("functools", "partial"),
                       ("torch.serialization", "load"), ("pkgutil", "resolve_name"), ("pydoc", "locate"),
                       ("os.path", "join"), ("collections", "OrderedDict.__init__.__globals__")]
        for (module, name) in globals {
            var pickle = PickleBuilder()
            pickle.global(module, name); pickle.mark(); pickle.string("echo pwned"); pickle.tuple(); pickle.reduce(); pickle.stop()
            assertWeightsError(.unsafe, ["\(module).\(name)", "archive/data.pkl byte 2"]) { try self.evaluate(pickle.bytes) { _ in () } }
        }
        // STACK_GLOBAL (protocol 4) is checked the same way.
        let stackGlobal: [UInt8] = [0x80, 0x04, 0x8C, 0x02] + Array("os".utf8) + [0x8C, 0x06] + Array("system".utf8) + [0x93, 0x2E]
        assertWeightsError(.unsafe, ["os.system"]) { try self.evaluate(stackGlobal) { _ in () } }
    }

    func testUnknownGlobalsStayInert() throws {
        var pickle = PickleBuilder()
        pickle.global("numpy._core.multiarray", "scalar"); pickle.mark(); pickle.int(1); pickle.tuple(); pickle.reduce()
        pickle.emptyDict(); pickle.op(0x62); pickle.stop()
        try evaluate(pickle.bytes) { value in
            guard case .object(let object) = value else { return XCTFail("expected an inert object") }
            XCTAssertEqual(object.classSymbol, PickleSymbol("numpy._core.multiarray", "scalar"))
            XCTAssertEqual(object.arguments.count, 1)
            guard case .dict? = object.state else { return XCTFail("BUILD state not recorded") }
        }
    }

    func testNestingLimit() {
        // TUPLE1 wrapped 300 times.
        let tuples: [UInt8] = [0x80, 0x02, 0x29] + [UInt8](repeating: 0x85, count: 300) + [0x2E]
        assertWeightsError(.limit, ["nested 257 deep"]) { try self.evaluate(tuples) { _ in () } }
        // Lists appended into each other through MARK/LIST.
        let lists: [UInt8] = [0x80, 0x02] + [UInt8](repeating: 0x28, count: 300) + [UInt8](repeating: 0x6C, count: 300) + [0x2E]
        assertWeightsError(.limit, ["nested"]) { try self.evaluate(lists) { _ in () } }
        // A configured, smaller limit is honoured.
        var limits = PickleLimits()
        limits.maxNesting = 3
        assertWeightsError(.limit, ["limit is 3"]) {
            try self.evaluate([0x80, 0x02, 0x29, 0x85, 0x85, 0x85, 0x2E], limits: limits) { _ in () }
        }
    }

    func testStackOpcodeMemoAndStringLimits() {
        var limits = PickleLimits()
        limits.maxStackDepth = 10
        assertWeightsError(.limit, ["stack depth"]) {
            try self.evaluate([0x80, 0x02] + [UInt8](repeating: 0x4E, count: 20) + [0x2E], limits: limits) { _ in () }
        }
        limits = PickleLimits()
        limits.maxOpcodes = 5
        assertWeightsError(.limit, ["opcodes"]) {
            try self.evaluate([0x80, 0x02] + [UInt8](repeating: 0x4E, count: 3) + [0x30, 0x30, 0x2E], limits: limits) { _ in () }
        }
        limits = PickleLimits()
        limits.maxMemoEntries = 2
        assertWeightsError(.limit, ["memo"]) {
            try self.evaluate([0x80, 0x02, 0x4E, 0x71, 1, 0x71, 2, 0x71, 3, 0x2E], limits: limits) { _ in () }
        }
        limits = PickleLimits()
        limits.maxStringBytes = 4
        assertWeightsError(.limit, ["length 5"]) {
            try self.evaluate([0x80, 0x02, 0x58, 5, 0, 0, 0] + Array("hello".utf8) + [0x2E], limits: limits) { _ in () }
        }
    }

    func testCyclesDoNotHang() throws {
        // L = []; L.append(L)
        try evaluate([0x80, 0x02, 0x5D, 0x71, 0x00, 0x68, 0x00, 0x61, 0x2E]) { value in
            guard case .list(let list) = value, case .list(let inner) = list.items.first else { return XCTFail() }
            XCTAssertTrue(list === inner)
        }
        // d = {}; d["a"] = d, 300 times: a cycle is not 300 levels of nesting.
        var bytes: [UInt8] = [0x80, 0x02, 0x7D, 0x71, 0x00]
        for _ in 0 ..< 300 { bytes += [0x58, 1, 0, 0, 0, 0x61, 0x68, 0x00, 0x73] }
        bytes += [0x2E]
        try evaluate(bytes) { value in
            guard case .dict(let dict) = value else { return XCTFail() }
            XCTAssertEqual(dict.entries.count, 1)
        }
        // A flattener walking a self-containing state dict stops at the nesting limit instead of recursing forever.
        let selfDict: [UInt8] = [0x80, 0x02, 0x7D, 0x71, 0x00, 0x58, 1, 0, 0, 0, 0x61, 0x68, 0x00, 0x73, 0x2E]
        assertWeightsError(.limit, ["nested more than 256"]) {
            try selfDict.withUnsafeBytes { raw in
                try PickleMachine(bytes: raw, file: "cycle.pkl", record: "data.pkl", limits: .init(), interpreter: nil).run(requireEnd: true) { root, _ in
                    var flattener = TorchStateFlattener(file: "cycle.pkl", limits: .init(), pickleBytes: selfDict.count)
                    try flattener.flatten(root: root)
                }
            }
        }
    }

    func testTorchScriptContainerHelpersAreIdentity() throws {
        var pickle = PickleBuilder()
        pickle.global("torch.jit._pickle", "restore_type_tag")
        pickle.mark()
        pickle.global("torch.jit._pickle", "build_intlist"); pickle.mark(); pickle.op(0x5D); pickle.mark(); pickle.int(3); pickle.int(4)
        pickle.op(0x65); pickle.tuple(); pickle.reduce()
        pickle.string("List[int]"); pickle.tuple(); pickle.reduce(); pickle.stop()
        try evaluate(pickle.bytes) { value in
            guard case .list(let list) = value else { return XCTFail("expected the list itself, got \(value.kindName)") }
            XCTAssertEqual(list.items.compactMap(\.intValue), [3, 4])
        }
    }
}
