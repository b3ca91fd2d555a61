import Foundation
import XCTest
@testable import WeightsIO

final class SafetensorsReaderTests: XCTestCase {
    // MARK: Valid files from the real safetensors writer

    /// Every dtype written by `safetensors.torch.save_file`; values checked against the exact values
    /// torch reported (all_dtypes_expected.json), integers bit-exact, floats exact after widening.
    func testEveryDTypeMatchesTorchValues() throws {
        let store = try SafetensorsReader.read(path: SafetensorsFixtures.path("all_dtypes.safetensors"))
        let expectedJSON = try JSONParser.parse(try SafetensorsFixtures.bytes("all_dtypes_expected.json"))
        guard let expected = expectedJSON.objectValue, let tensors = expected["tensors"]?.objectValue,
              let order = expected["header_order"]?.arrayValue else { return XCTFail("bad expected file") }

        XCTAssertEqual(store.format, .safetensors)
        XCTAssertEqual(store.metadata, ["format": "pt"])
        XCTAssertEqual(store.names, order.compactMap(\.stringValue), "names keep the header's order")
        XCTAssertEqual(store.count, tensors.count)
        XCTAssertEqual(Set(store.records.values.map(\.dtype)).count, 15, "all dtypes but C64 are present")

        for (name, value) in tensors.members {
            guard let record = store[name], let spec = value.objectValue,
                  let values = spec["values"]?.arrayValue else { XCTFail("missing \(name)"); continue }
            XCTAssertEqual(record.dtype.torchName, spec["dtype"]?.stringValue, name)
            XCTAssertEqual(record.shape, spec["shape"]?.arrayValue?.compactMap { $0.numberValue?.uint64Value.map(Int.init) }, name)
            XCTAssertEqual(record.elementCount, values.count, name)
            try checkValues(record, values)
        }
        XCTAssertEqual(store["f32.scalar"]?.shape, [])
        XCTAssertEqual(store["f32.empty"]?.byteCount, 0)
    }

    private func checkValues(_ record: TensorRecord, _ expected: [JSONValue]) throws {
        let name = record.name
        switch record.dtype {
        case .bool, .u8: checkIntegers(record, expected, as: UInt8.self)
        case .i8: checkIntegers(record, expected, as: Int8.self)
        case .u16: checkIntegers(record, expected, as: UInt16.self)
        case .i16: checkIntegers(record, expected, as: Int16.self)
        case .u32: checkIntegers(record, expected, as: UInt32.self)
        case .i32: checkIntegers(record, expected, as: Int32.self)
        case .u64: checkIntegers(record, expected, as: UInt64.self)
        case .i64: checkIntegers(record, expected, as: Int64.self)
        case .f64:
            let got = SafetensorsFixtures.values(record, as: Double.self)
            for (g, e) in zip(got, expected) { XCTAssertTrue(same(g, e), "\(name): \(g) vs \(e)") }
        default:
            let got = try DTypeConversion.floats(of: record)
            for (g, e) in zip(got, expected) { XCTAssertTrue(same(Double(g), e), "\(name): \(g) vs \(e)") }
        }
    }

    /// Integers compare exactly: the expected JSON holds them as exact integer literals.
    private func checkIntegers<T: FixedWidthInteger>(_ record: TensorRecord, _ expected: [JSONValue], as _: T.Type) {
        let got = SafetensorsFixtures.values(record, as: T.self)
        let want = expected.map { value -> T? in
            guard let number = value.numberValue else { return nil }
            return T.isSigned ? number.int64Value.flatMap { T(exactly: $0) } : number.uint64Value.flatMap { T(exactly: $0) }
        }
        XCTAssertEqual(got.map(Optional.init), want, record.name)
    }

    private func same(_ value: Double, _ expected: JSONValue) -> Bool {
        switch expected {
        case .string("nan"): return value.isNaN
        case .string("inf"): return value == .infinity
        case .string("-inf"): return value == -.infinity
        case .number(let n): return value == n.doubleValue && value.sign == n.doubleValue.sign
        default: return false
        }
    }

    func testRecordsViewTheMappingWithoutCopying() throws {
        let path = SafetensorsFixtures.path("all_dtypes.safetensors")
        let store = try SafetensorsReader.read(path: path)
        let owner = try XCTUnwrap(store.orderedRecords.first?.storage.owner)
        let header = try SafetensorsReader.readHeader(owner.bytes, file: path)
        let owners = Set(store.records.values.map { ObjectIdentifier($0.storage.owner) })
        XCTAssertEqual(owners.count, 1, "one mapping for the whole file")
        for entry in header.entries {
            XCTAssertEqual(store[entry.name]?.storage.range,
                           (header.dataStart + entry.dataOffsets.lowerBound)..<(header.dataStart + entry.dataOffsets.upperBound))
        }
        XCTAssertEqual(header.dataStart % 8, 0, "the reference writer pads the header to 8 bytes")
    }

    // MARK: Accepted variations (formats.md §1.3 item 7)

    func testAcceptsWhitespacePaddingUnpaddedHeadersExtraFieldsAndEscapedNames() throws {
        // Unpadded header of odd length: the F32 data is misaligned and must still read correctly.
        let values: [Float] = [1.5, -2.25, 1e-3]
        let data = values.withUnsafeBytes { Array($0) } + [0x01, 0x00]
        let header = "\n {\"w\\ud83d\\ude00\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12],\"extra\":[1,{\"x\":null}]},"
            + "\"z\":{\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[12,14]},"
            + "\"e\":{\"dtype\":\"BF16\",\"shape\":[0,4],\"data_offsets\":[14,14]},"
            + "\"__metadata__\":{\"k\":\"v\\n\\\"q\\\"\"}} \t"
        XCTAssertNotEqual((8 + header.utf8.count) % 4, 0, "test needs misaligned data")
        let store = try SafetensorsFixtures.read(SafetensorsFixtures.file(header: header, data: data))
        XCTAssertEqual(store.names, ["w😀", "z", "e"])
        XCTAssertEqual(try DTypeConversion.floats(of: try XCTUnwrap(store["w😀"])), values)
        XCTAssertEqual(try DTypeConversion.floats(of: try XCTUnwrap(store["z"])), [Float(bitPattern: 0x3380_0000)])  // f16 0x0001 = 2^-24
        XCTAssertEqual(store["e"]?.shape, [0, 4])
        XCTAssertEqual(store.metadata, ["k": "v\n\"q\""])
    }

    func testAcceptsEmptyHeaderAndZeroSizedTensorsAnywhere() throws {
        XCTAssertEqual(try SafetensorsFixtures.read(SafetensorsFixtures.file(header: "{}      ")).count, 0)
        let header = "{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]},\"b\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[2,2]},"
            + "\"c\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]},\"d\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[2,3]}}"
        let store = try SafetensorsFixtures.read(SafetensorsFixtures.file(header: header, data: [7, 8, 9]))
        XCTAssertEqual(SafetensorsFixtures.values(try XCTUnwrap(store["d"]), as: UInt8.self), [9])
        XCTAssertEqual(store["c"]?.byteCount, 0)
    }

    // MARK: Rejected files: each rule of formats.md §1.3 plus our stricter ones

    private func entry(_ name: String = "t", dtype: String = "F32", shape: String = "[2]", offsets: String = "[0,8]") -> String {
        "\"\(name)\":{\"dtype\":\"\(dtype)\",\"shape\":\(shape),\"data_offsets\":\(offsets)}"
    }

    private func rejects(_ kind: WeightsError.Kind, _ fragment: String, header: String, data: [UInt8] = [UInt8](repeating: 0, count: 8),
                         declaredLength: UInt64? = nil, line: UInt = #line) {
        assertSafetensorsError(kind, fragment, line: line) {
            try SafetensorsFixtures.read(SafetensorsFixtures.file(header: header, data: data, declaredLength: declaredLength))
        }
    }

    func testRejectsBadLengthPrefix() {
        assertSafetensorsError(.format, "shorter than the 8-byte") { try SafetensorsFixtures.read([1, 0, 0, 0, 0]) }
        rejects(.limit, "exceeds the limit", header: "{}", declaredLength: 100_000_001)
        rejects(.limit, "exceeds the limit", header: "{}", declaredLength: UInt64.max)
        rejects(.corrupt, "past the end", header: "{}", data: [], declaredLength: 3)
    }

    func testRejectsInvalidJSONWithByteOffsets() {
        // The trailing comma sits at file byte 8 + 33.
        let header = "{" + entry() + ",}"
        rejects(.format, "header byte \(8 + header.utf8.count - 1)", header: header)
        rejects(.format, "invalid header JSON", header: "{" + entry().replacingOccurrences(of: ":", with: "=") + "}")
        var invalidUTF8 = SafetensorsFixtures.file(header: "{\"ab\":{}}")
        invalidUTF8[10] = 0xFF
        assertSafetensorsError(.format, "not valid UTF-8") { try SafetensorsFixtures.read(invalidUTF8) }
        rejects(.format, "lone low surrogate", header: "{\"\\udc00\":{}}")
        rejects(.format, "expected a value", header: "{\"t\":NaN}")
        rejects(.format, "unexpected content after", header: "{} {}")
    }

    func testRejectsStructuralViolations() {
        rejects(.format, "duplicate key \"t\"", header: "{" + entry() + "," + entry(offsets: "[8,16]") + "}", data: [UInt8](repeating: 0, count: 16))
        rejects(.format, "must be a JSON object", header: "[1,2]")
        rejects(.format, "must not be empty", header: "{" + entry("") + "}")
        rejects(.format, "entry must be an object", header: "{\"t\":[0,8]}")
        rejects(.format, "missing \"data_offsets\"", header: "{\"t\":{\"dtype\":\"F32\",\"shape\":[2]}}")
        rejects(.format, "missing \"dtype\"", header: "{\"t\":{\"shape\":[2],\"data_offsets\":[0,8]}}")
        rejects(.format, "two integers", header: "{" + entry(offsets: "[0,4,8]") + "}")
        rejects(.limit, "nesting deeper than 64", header: "{" + entry() + ",\"__metadata__\":{\"x\":" + String(repeating: "[", count: 70) + "}}")
    }

    func testRejectsBadFieldTypes() {
        rejects(.format, "unknown dtype \"F33\"", header: "{" + entry(dtype: "F33") + "}")
        rejects(.unsupported, "F8_E8M0 is not supported", header: "{" + entry(dtype: "F8_E8M0", shape: "[8]") + "}")
        rejects(.format, "found -2", header: "{" + entry(shape: "[-2]") + "}")
        rejects(.format, "found 2.0", header: "{" + entry(shape: "[2.0]") + "}")
        rejects(.format, "found 2e0", header: "{" + entry(shape: "[2e0]") + "}")
        rejects(.format, "found a string", header: "{" + entry(shape: "[\"2\"]") + "}")
        rejects(.format, "metadata values must be strings, found the number 1", header: "{\"__metadata__\":{\"a\":1}," + entry() + "}")
        rejects(.format, "must be an object of strings", header: "{\"__metadata__\":[]," + entry() + "}")
        rejects(.limit, "does not fit a 64-bit signed size", header: "{" + entry(offsets: "[0,18446744073709551615]") + "}")
        rejects(.format, "found 18446744073709551616", header: "{" + entry(offsets: "[0,18446744073709551616]") + "}")
    }

    func testRejectsOffsetsThatDoNotTileTheData() {
        let two = [UInt8](repeating: 0, count: 16)
        rejects(.corrupt, "(a gap)", header: "{" + entry("a", offsets: "[0,8]") + "," + entry("b", offsets: "[9,17]") + "}",
                data: [UInt8](repeating: 0, count: 17))
        rejects(.corrupt, "(an overlap)", header: "{" + entry("a", offsets: "[0,8]") + "," + entry("b", shape: "[1]", offsets: "[4,8]") + "}", data: two)
        rejects(.corrupt, "(a gap)", header: "{" + entry("a", offsets: "[8,16]") + "}", data: two)
        rejects(.corrupt, "needs 8 bytes but data_offsets [0, 12] span 12", header: "{" + entry(offsets: "[0,12]") + "}", data: [UInt8](repeating: 0, count: 12))
        rejects(.corrupt, "end before they begin", header: "{" + entry(offsets: "[8,0]") + "}")
        rejects(.corrupt, "8 trailing bytes", header: "{" + entry() + "}", data: two)
        rejects(.corrupt, "file truncated", header: "{" + entry() + "}", data: [0, 0, 0])
        rejects(.corrupt, "overflows", header: "{" + entry(shape: "[4611686018427387904,4]") + "}")
        rejects(.corrupt, "overflows", header: "{" + entry(dtype: "U8", shape: "[4294967296,4294967296]") + "}")
    }
}
