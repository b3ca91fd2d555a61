import Foundation
import XCTest
@testable import WeightsIO

/// The strict JSON parser/writer used for safetensors headers and index files.
final class SafetensorsJSONTests: XCTestCase {
    private func parse(_ text: String, maxDepth: Int = 64) throws(JSONError) -> JSONValue {
        try JSONParser.parse(Array(text.utf8), maxDepth: maxDepth)
    }

    private func fails(_ text: String, at offset: Int, _ fragment: String, line: UInt = #line) {
        do {
            _ = try parse(text)
            XCTFail("\(text) parsed", line: line)
        } catch {
            XCTAssertEqual(error.offset, offset, "\(error)", line: line)
            XCTAssertTrue(error.message.contains(fragment), "\(error)", line: line)
        }
    }

    func testIntegersAreExact() throws {
        let value = try parse("[18446744073709551615, 9007199254740993, -9223372036854775808, 0, 1.5, 1e3, -0, 18446744073709551616]")
        let numbers = try XCTUnwrap(value.arrayValue).compactMap(\.numberValue)
        XCTAssertEqual(numbers[0].uint64Value, .max)
        XCTAssertEqual(numbers[1].uint64Value, 9_007_199_254_740_993, "2^53+1 survives, Foundation would round it")
        XCTAssertEqual(numbers[2].int64Value, .min)
        XCTAssertNil(numbers[2].uint64Value, "negative is not a size")
        XCTAssertEqual(numbers[3].uint64Value, 0)
        XCTAssertNil(numbers[4].uint64Value)
        XCTAssertEqual(numbers[4].doubleValue, 1.5)
        XCTAssertNil(numbers[5].uint64Value, "exponent form is not an exact integer")
        XCTAssertNil(numbers[6].uint64Value)
        XCTAssertNil(numbers[7].uint64Value, "2^64 does not fit")
    }

    func testStringsAndEscapes() throws {
        let value = try parse(#"{"a\"\\\/\b\f\n\r\t": "\u00e9\ud83d\ude00€", "": "x"}"#)
        let object = try XCTUnwrap(value.objectValue)
        XCTAssertEqual(object.keys, ["a\"\\/\u{08}\u{0C}\n\r\t", ""])
        XCTAssertEqual(object["a\"\\/\u{08}\u{0C}\n\r\t"], .string("é😀€"))
        fails(#"["\ud83d"]"#, at: 2, "high surrogate without")
        fails(#"["\ud83d\u0041"]"#, at: 2, "non-low surrogate")
        fails(#"["\x"]"#, at: 2, "invalid escape")
        fails("[\"a\u{01}\"]", at: 3, "control character")
        fails(#"["abc"#, at: 5, "unterminated string")
    }

    func testRejectsNonStandardJSON() {
        fails(#"{"a":1,"a":2}"#, at: 7, "duplicate key")
        fails("[1,]", at: 3, "expected a value")
        fails("[01]", at: 1, "leading zeros")
        fails("[NaN]", at: 1, "expected a value")
        fails("[1.]", at: 3, "after '.'")
        fails("{'a':1}", at: 1, "expected a string key")
        fails("[tru]", at: 1, "invalid literal")
        fails("{} x", at: 3, "after the top-level value")
        fails("", at: 0, "unexpected end")
        XCTAssertThrowsError(try parse(String(repeating: "[", count: 65) + String(repeating: "]", count: 65))) {
            XCTAssertEqual(($0 as? JSONError)?.kind, .tooDeep)
        }
        XCTAssertNoThrow(try parse(String(repeating: "[", count: 64) + String(repeating: "]", count: 64)))
        do {
            _ = try parse(#"{"k":1,"k":2}"#)
        } catch {
            XCTAssertEqual(error.kind, .duplicateKey("k"))
        }
    }

    func testWriterIsCompactEscapedAndRoundTrips() throws {
        var object = JSONObject()
        object.append("name\"\n\u{01}/é", .array([.number(JSONNumber(literal: "18446744073709551615")), .bool(true), .null]))
        object.append("b", .object(JSONObject()))
        XCTAssertFalse(object.append("b", .null), "duplicate appends are refused")
        let bytes = JSONWriter.encode(.object(object))
        XCTAssertEqual(String(decoding: bytes, as: UTF8.self), #"{"name\"\n\u0001/é":[18446744073709551615,true,null],"b":{}}"#)
        XCTAssertEqual(try JSONParser.parse(bytes), .object(object))
    }
}
