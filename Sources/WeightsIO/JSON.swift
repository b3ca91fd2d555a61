import Foundation

// A small, strict JSON reader and writer for weight-file headers and index files.
// Foundation's JSONSerialization rounds integers above 2^53 and silently keeps the last of
// duplicate keys; safetensors offsets above 4 GiB are normal and duplicates must be refused,
// so numbers are kept as their literal text and converted exactly on request.

/// A JSON number, kept as its literal text so integers of any size convert exactly.
public struct JSONNumber: Sendable, Equatable, CustomStringConvertible {
    public let literal: String

    /// The value when the literal is a non-negative integer that fits a UInt64 (no fraction,
    /// no exponent, no sign); otherwise nil.
    public var uint64Value: UInt64? {
        guard !literal.isEmpty, literal.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        return UInt64(literal)
    }

    /// The value when the literal is an integer (no fraction or exponent) that fits an Int64.
    public var int64Value: Int64? {
        guard literal.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || $0 == UInt8(ascii: "-") }) else { return nil }
        return Int64(literal)
    }

    /// The nearest Double (correctly rounded by the standard library's parser).
    public var doubleValue: Double { Double(literal) ?? .nan }

    public var description: String { literal }
}

extension JSONNumber {
    /// An integer's literal (in an extension, so the memberwise `init(literal:)` stays for this module).
    public init(_ value: some BinaryInteger) { self.init(literal: String(value)) }

    /// The shortest literal that reads back as `value`; nil for NaN and infinities, which JSON cannot hold.
    public init?(_ value: Double) {
        guard value.isFinite else { return nil }
        self.init(literal: "\(value)")
    }
}

/// An object's members in document order, with lookup by key. Keys are unique by construction.
public struct JSONObject: Sendable, Equatable {
    public private(set) var keys: [String] = []
    public private(set) var values: [JSONValue] = []
    private var index: [String: Int] = [:]

    public init() {}

    /// Appends a member; returns false (and changes nothing) when the key is already present.
    @discardableResult
    public mutating func append(_ key: String, _ value: JSONValue) -> Bool {
        guard index[key] == nil else { return false }
        index[key] = keys.count
        keys.append(key)
        values.append(value)
        return true
    }

    public subscript(key: String) -> JSONValue? {
        guard let position = index[key] else { return nil }
        return values[position]
    }

    public var count: Int { keys.count }
    public var members: Zip2Sequence<[String], [JSONValue]> { zip(keys, values) }

    public static func == (lhs: JSONObject, rhs: JSONObject) -> Bool {
        lhs.keys == rhs.keys && lhs.values == rhs.values
    }
}

public indirect enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case number(JSONNumber)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)

    public var objectValue: JSONObject? { if case .object(let o) = self { return o } else { return nil } }
    public var arrayValue: [JSONValue]? { if case .array(let a) = self { return a } else { return nil } }
    public var stringValue: String? { if case .string(let s) = self { return s } else { return nil } }
    public var numberValue: JSONNumber? { if case .number(let n) = self { return n } else { return nil } }

    /// A short name of the value's kind, for error messages ("expected a string, found an array").
    public var kindName: String {
        switch self {
        case .null: return "null"
        case .bool: return "a boolean"
        case .number(let n): return "the number \(n.literal)"
        case .string: return "a string"
        case .array: return "an array"
        case .object: return "an object"
        }
    }
}

/// A JSON syntax or limit violation at a byte offset of the parsed text.
public struct JSONError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        case syntax
        case duplicateKey(String)
        case tooDeep
    }

    public let kind: Kind
    /// Byte offset into the parsed buffer.
    public let offset: Int
    public let message: String

    public var description: String { "byte \(offset): \(message)" }
}

/// Recursive-descent parser over raw bytes. Accepts RFC 8259 JSON only (no comments, no trailing
/// commas, no NaN/Infinity), requires valid UTF-8, refuses duplicate keys and deep nesting.
public struct JSONParser {
    /// Default nesting limit; headers and index files need 3 levels.
    public static let defaultMaxDepth = 64

    public static func parse(_ bytes: UnsafeRawBufferPointer, maxDepth: Int = defaultMaxDepth) throws(JSONError) -> JSONValue {
        var parser = JSONParser(bytes: bytes, maxDepth: maxDepth)
        parser.skipWhitespace()
        let value = try parser.parseValue(depth: 0)
        parser.skipWhitespace()
        guard parser.position == bytes.count else {
            throw parser.error("unexpected content after the top-level value")
        }
        return value
    }

    public static func parse(_ bytes: [UInt8], maxDepth: Int = defaultMaxDepth) throws(JSONError) -> JSONValue {
        do {
            return try bytes.withUnsafeBytes { buffer in try parse(buffer, maxDepth: maxDepth) }
        } catch let error as JSONError {
            throw error
        } catch {
            throw JSONError(kind: .syntax, offset: 0, message: "\(error)")
        }
    }

    private let bytes: UnsafeRawBufferPointer
    private let maxDepth: Int
    private var position = 0

    private init(bytes: UnsafeRawBufferPointer, maxDepth: Int) {
        self.bytes = bytes
        self.maxDepth = maxDepth
    }

    private func error(_ message: String, at offset: Int? = nil, kind: JSONError.Kind = .syntax) -> JSONError {
        JSONError(kind: kind, offset: offset ?? position, message: message)
    }

    private var atEnd: Bool { position >= bytes.count }
    private var current: UInt8 { bytes[position] }

    private mutating func skipWhitespace() {
        while position < bytes.count {
            switch bytes[position] {
            case 0x20, 0x09, 0x0A, 0x0D: position += 1
            default: return
            }
        }
    }

    private mutating func parseValue(depth: Int) throws(JSONError) -> JSONValue {
        guard !atEnd else { throw error("unexpected end of text, expected a value") }
        switch current {
        case UInt8(ascii: "{"): return try parseObject(depth: depth + 1)
        case UInt8(ascii: "["): return try parseArray(depth: depth + 1)
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try expectWord("true"); return .bool(true)
        case UInt8(ascii: "f"): try expectWord("false"); return .bool(false)
        case UInt8(ascii: "n"): try expectWord("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try parseNumber())
        default: throw error("unexpected character \(describe(current)), expected a value")
        }
    }

    private func describe(_ byte: UInt8) -> String {
        (0x21...0x7E).contains(byte) ? "'\(Character(Unicode.Scalar(byte)))'" : String(format: "0x%02X", byte)
    }

    private mutating func expectWord(_ word: StaticString) throws(JSONError) {
        let start = position
        let count = word.utf8CodeUnitCount
        guard bytes.count - position >= count else { throw error("invalid literal", at: start) }
        let expected = UnsafeRawBufferPointer(start: word.utf8Start, count: count)
        for i in 0..<count where bytes[position + i] != expected[i] {
            throw error("invalid literal", at: start)
        }
        position += count
    }

    private mutating func parseObject(depth: Int) throws(JSONError) -> JSONValue {
        guard depth <= maxDepth else { throw error("nesting deeper than \(maxDepth) levels", kind: .tooDeep) }
        position += 1  // '{'
        var object = JSONObject()
        skipWhitespace()
        if !atEnd && current == UInt8(ascii: "}") {
            position += 1
            return .object(object)
        }
        while true {
            skipWhitespace()
            guard !atEnd, current == UInt8(ascii: "\"") else { throw error("expected a string key") }
            let keyOffset = position
            let key = try parseString()
            skipWhitespace()
            guard !atEnd, current == UInt8(ascii: ":") else { throw error("expected ':' after an object key") }
            position += 1
            skipWhitespace()
            let value = try parseValue(depth: depth)
            guard object.append(key, value) else {
                throw error("duplicate key \"\(key)\"", at: keyOffset, kind: .duplicateKey(key))
            }
            skipWhitespace()
            guard !atEnd else { throw error("unexpected end of text inside an object") }
            if current == UInt8(ascii: ",") { position += 1; continue }
            if current == UInt8(ascii: "}") { position += 1; return .object(object) }
            throw error("expected ',' or '}' in an object")
        }
    }

    private mutating func parseArray(depth: Int) throws(JSONError) -> JSONValue {
        guard depth <= maxDepth else { throw error("nesting deeper than \(maxDepth) levels", kind: .tooDeep) }
        position += 1  // '['
        var elements: [JSONValue] = []
        skipWhitespace()
        if !atEnd && current == UInt8(ascii: "]") {
            position += 1
            return .array(elements)
        }
        while true {
            skipWhitespace()
            elements.append(try parseValue(depth: depth))
            skipWhitespace()
            guard !atEnd else { throw error("unexpected end of text inside an array") }
            if current == UInt8(ascii: ",") { position += 1; continue }
            if current == UInt8(ascii: "]") { position += 1; return .array(elements) }
            throw error("expected ',' or ']' in an array")
        }
    }

    private mutating func parseNumber() throws(JSONError) -> JSONNumber {
        let start = position
        if current == UInt8(ascii: "-") { position += 1 }
        guard !atEnd, isDigit(current) else { throw error("expected a digit", at: position) }
        if current == UInt8(ascii: "0") {
            position += 1
            if !atEnd && isDigit(current) { throw error("leading zeros are not allowed", at: start) }
        } else {
            while !atEnd && isDigit(current) { position += 1 }
        }
        if !atEnd && current == UInt8(ascii: ".") {
            position += 1
            guard !atEnd, isDigit(current) else { throw error("expected a digit after '.'") }
            while !atEnd && isDigit(current) { position += 1 }
        }
        if !atEnd && (current == UInt8(ascii: "e") || current == UInt8(ascii: "E")) {
            position += 1
            if !atEnd && (current == UInt8(ascii: "+") || current == UInt8(ascii: "-")) { position += 1 }
            guard !atEnd, isDigit(current) else { throw error("expected a digit in the exponent") }
            while !atEnd && isDigit(current) { position += 1 }
        }
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<position]), as: UTF8.self)
        return JSONNumber(literal: text)
    }

    private func isDigit(_ byte: UInt8) -> Bool { byte >= 0x30 && byte <= 0x39 }

    /// Parses a string starting at '"'. Plain runs are validated as UTF-8 and copied in one go;
    /// escapes are decoded, with \u surrogate pairs combined and lone surrogates refused.
    private mutating func parseString() throws(JSONError) -> String {
        position += 1  // opening quote
        var result = ""
        var runStart = position
        while true {
            guard !atEnd else { throw error("unterminated string") }
            let byte = current
            if byte == UInt8(ascii: "\"") {
                try appendRun(from: runStart, to: position, into: &result)
                position += 1
                return result
            }
            if byte < 0x20 {
                throw error("control character \(String(format: "0x%02X", byte)) inside a string must be escaped")
            }
            if byte != UInt8(ascii: "\\") {
                position += 1
                continue
            }
            try appendRun(from: runStart, to: position, into: &result)
            let escapeStart = position
            position += 1
            guard !atEnd else { throw error("unterminated escape") }
            let code = current
            position += 1
            switch code {
            case UInt8(ascii: "\""): result.append("\"")
            case UInt8(ascii: "\\"): result.append("\\")
            case UInt8(ascii: "/"): result.append("/")
            case UInt8(ascii: "b"): result.append("\u{08}")
            case UInt8(ascii: "f"): result.append("\u{0C}")
            case UInt8(ascii: "n"): result.append("\n")
            case UInt8(ascii: "r"): result.append("\r")
            case UInt8(ascii: "t"): result.append("\t")
            case UInt8(ascii: "u"):
                let first = try parseHex4()
                var scalarValue = UInt32(first)
                if (0xD800...0xDBFF).contains(first) {
                    guard bytes.count - position >= 6, bytes[position] == UInt8(ascii: "\\"),
                          bytes[position + 1] == UInt8(ascii: "u") else {
                        throw error("high surrogate without a following low surrogate", at: escapeStart)
                    }
                    position += 2
                    let second = try parseHex4()
                    guard (0xDC00...0xDFFF).contains(second) else {
                        throw error("high surrogate followed by a non-low surrogate", at: escapeStart)
                    }
                    scalarValue = 0x10000 + ((UInt32(first) - 0xD800) << 10) + (UInt32(second) - 0xDC00)
                } else if (0xDC00...0xDFFF).contains(first) {
                    throw error("lone low surrogate", at: escapeStart)
                }
                guard let scalar = Unicode.Scalar(scalarValue) else {
                    throw error("invalid unicode escape", at: escapeStart)
                }
                result.unicodeScalars.append(scalar)
            default:
                throw error("invalid escape '\\\(Character(Unicode.Scalar(code)))'", at: escapeStart)
            }
            runStart = position
        }
    }

    private mutating func appendRun(from start: Int, to end: Int, into result: inout String) throws(JSONError) {
        guard end > start else { return }
        let run = UnsafeRawBufferPointer(rebasing: bytes[start..<end])
        guard let text = String(validating: run, as: UTF8.self) else {
            throw error("string is not valid UTF-8", at: start)
        }
        result += text
    }

    private mutating func parseHex4() throws(JSONError) -> UInt16 {
        guard bytes.count - position >= 4 else { throw error("truncated \\u escape") }
        var value: UInt16 = 0
        for _ in 0..<4 {
            let byte = current
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw error("invalid hex digit in \\u escape")
            }
            value = value << 4 | UInt16(digit)
            position += 1
        }
        return value
    }
}

/// Compact JSON output in serde_json's style (no spaces; `"`, `\` and control characters
/// escaped, everything else raw UTF-8), so our headers match the reference writer byte for byte.
public struct JSONWriter {
    public private(set) var bytes: [UInt8] = []

    public init() {}

    public mutating func write(_ value: JSONValue) {
        switch value {
        case .null: append("null")
        case .bool(let b): append(b ? "true" : "false")
        case .number(let n): append(n.literal)
        case .string(let s): writeString(s)
        case .array(let elements):
            bytes.append(UInt8(ascii: "["))
            for (i, element) in elements.enumerated() {
                if i > 0 { bytes.append(UInt8(ascii: ",")) }
                write(element)
            }
            bytes.append(UInt8(ascii: "]"))
        case .object(let object):
            bytes.append(UInt8(ascii: "{"))
            for (i, (key, member)) in object.members.enumerated() {
                if i > 0 { bytes.append(UInt8(ascii: ",")) }
                writeString(key)
                bytes.append(UInt8(ascii: ":"))
                write(member)
            }
            bytes.append(UInt8(ascii: "}"))
        }
    }

    public mutating func append(_ raw: String) { bytes.append(contentsOf: raw.utf8) }

    public mutating func writeString(_ string: String) {
        bytes.append(UInt8(ascii: "\""))
        for byte in string.utf8 {
            switch byte {
            case UInt8(ascii: "\""): append("\\\"")
            case UInt8(ascii: "\\"): append("\\\\")
            case 0x08: append("\\b")
            case 0x0C: append("\\f")
            case 0x0A: append("\\n")
            case 0x0D: append("\\r")
            case 0x09: append("\\t")
            case 0..<0x20:
                let hex: [UInt8] = Array("0123456789abcdef".utf8)
                append("\\u00")
                bytes.append(hex[Int(byte >> 4)])
                bytes.append(hex[Int(byte & 0xF)])
            default: bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    public static func encode(_ value: JSONValue) -> [UInt8] {
        var writer = JSONWriter()
        writer.write(value)
        return writer.bytes
    }
}
