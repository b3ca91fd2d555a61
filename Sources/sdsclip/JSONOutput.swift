import Foundation

/// The `--json` reports are built as plain dictionaries so that every key is written, with
/// `NSNull` where a value is unknown (Codable's synthesized encoders leave nil keys out).
enum JSONOutput {
    static func render(_ object: [String: Any]) throws -> String {
        let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        return String(decoding: data, as: UTF8.self)
    }

    /// `value`, or JSON null.
    static func orNull(_ value: Any?) -> Any { value ?? NSNull() }

    /// Paths in reports are absolute, so a report stays meaningful away from the shell that made it.
    static func absolute(_ path: String) -> String { URL(fileURLWithPath: path).standardizedFileURL.path }

    /// A Double as a JSON number, non-finite values spelled as strings as for Float.
    static func number(_ value: Double) -> Any {
        if value.isNaN { return "nan" }
        if value.isInfinite { return value > 0 ? "inf" : "-inf" }
        return value
    }

    /// A Float as a JSON number; JSON has none for NaN and the infinities, spelled as strings.
    static func number(_ value: Float) -> Any {
        if value.isNaN { return "nan" }
        if value.isInfinite { return value > 0 ? "inf" : "-inf" }
        return Double(value.description) ?? Double(value)   // the shortest decimal that reads back
    }
}
