import Foundation
import WeightsIO

/// JSON for config files that keeps every number as written: transformers 5 checks config field types
/// strictly (`initializer_factor: 1` is refused where a float is declared), and Foundation's
/// JSONSerialization writes 1.0 as 1. Numbers go through `JSONNumber` literals instead.
enum LiteralJSON {
    /// The top-level object of a JSON file, its numbers' literals kept.
    static func object(_ bytes: [UInt8], file: String) throws -> JSONObject {
        let parsed: JSONValue
        do { parsed = try JSONParser.parse(bytes) } catch {
            throw CheckpointError(file: file, "not valid JSON: \(error)")
        }
        guard let object = parsed.objectValue else { throw CheckpointError(file: file, "expected a JSON object") }
        return object
    }

    /// `object` with `key` set to `value` (in its place, or appended) and the `removing` keys left out.
    static func setting(_ object: JSONObject, _ key: String, _ value: JSONValue, removing: Set<String> = []) -> JSONObject {
        var result = JSONObject()
        for (name, member) in object.members where !removing.contains(name) {
            result.append(name, name == key ? value : member)
        }
        result.append(key, value)   // no-op when it was already there
        return result
    }

    /// Swift values as JSON: strings, Bool, integers, Double (always with a decimal point or exponent),
    /// NSNull, arrays and string-keyed dictionaries (keys sorted, as diffusers writes configs).
    static func value(_ any: Any) -> JSONValue {
        switch any {
        case let string as String: return .string(string)
        case let bool as Bool: return .bool(bool)
        case let integer as Int: return .number(JSONNumber(integer))
        case let real as Double: return JSONNumber(real).map(JSONValue.number) ?? .null
        case let real as Float: return JSONNumber(Double("\(real)") ?? Double(real)).map(JSONValue.number) ?? .null
        case let array as [Any]: return .array(array.map(value))
        case let dictionary as [String: Any]:
            var object = JSONObject()
            for key in dictionary.keys.sorted() { object.append(key, value(dictionary[key] as Any)) }
            return .object(object)
        default: return .null
        }
    }

    static func bytes(_ value: JSONValue) -> [UInt8] { JSONWriter.encode(value) + [0x0A] }
}
