import Foundation

/// Checks a JSON value (as JSONSerialization gives it) against the subset of JSON Schema our published
/// schemas (docs/schemas/) use: type, const, enum, properties, required, additionalProperties (false or a schema),
/// items, minimum, oneOf and local `$ref`s into `$defs`. Returns one line per violation, with its path.
struct JSONSchemaValidator {
    let root: [String: Any]

    init(schemaFile: String) throws {
        guard let object = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: schemaFile))) as? [String: Any] else {
            throw NSError(domain: "schema", code: 1, userInfo: [NSLocalizedDescriptionKey: "\(schemaFile) is not a JSON object"])
        }
        root = object
    }

    func violations(of value: Any) -> [String] { check(value, against: root, at: "$") }

    private func check(_ value: Any, against schema: [String: Any], at path: String) -> [String] {
        if let reference = schema["$ref"] as? String {
            guard let resolved = resolve(reference) else { return ["\(path): unresolvable $ref \(reference)"] }
            return check(value, against: resolved, at: path)
        }
        var problems: [String] = []
        if let alternatives = schema["oneOf"] as? [[String: Any]] {
            let matching = alternatives.filter { check(value, against: $0, at: path).isEmpty }.count
            if matching != 1 { problems.append("\(path): matches \(matching) of the oneOf alternatives, not exactly 1") }
        }
        if let expected = schema["const"], !Self.equal(value, expected) { problems.append("\(path): is not \(expected)") }
        if let options = schema["enum"] as? [Any], !options.contains(where: { Self.equal(value, $0) }) {
            problems.append("\(path): \(value) is not one of \(options)")
        }
        if let type = schema["type"] {
            let types = (type as? [String]) ?? [type as? String ?? ""]
            if !types.contains(where: { Self.matches(value, type: $0) }) { problems.append("\(path): is not of type \(types)") }
        }
        if let minimum = schema["minimum"] as? Double, let number = value as? NSNumber, !Self.isBool(value), number.doubleValue < minimum {
            problems.append("\(path): \(number) is below \(minimum)")
        }
        if let object = value as? [String: Any] {
            let properties = schema["properties"] as? [String: Any] ?? [:]
            for key in schema["required"] as? [String] ?? [] where object[key] == nil {
                problems.append("\(path): missing required key '\(key)'")
            }
            for (key, element) in object {
                if let property = properties[key] as? [String: Any] {
                    problems += check(element, against: property, at: "\(path).\(key)")
                } else if (schema["additionalProperties"] as? Bool) == false {
                    problems.append("\(path): key '\(key)' is not in the schema")
                } else if let others = schema["additionalProperties"] as? [String: Any] {
                    problems += check(element, against: others, at: "\(path).\(key)")
                }
            }
        }
        if let array = value as? [Any], let items = schema["items"] as? [String: Any] {
            for (index, element) in array.enumerated() { problems += check(element, against: items, at: "\(path)[\(index)]") }
        }
        return problems
    }

    private func resolve(_ reference: String) -> [String: Any]? {
        guard reference.hasPrefix("#/") else { return nil }
        var node: Any = root
        for part in reference.dropFirst(2).split(separator: "/") {
            guard let object = node as? [String: Any], let next = object[String(part)] else { return nil }
            node = next
        }
        return node as? [String: Any]
    }

    private static func isBool(_ value: Any) -> Bool {
        guard let number = value as? NSNumber else { return false }
        return String(cString: number.objCType) == "c"
    }

    private static func matches(_ value: Any, type: String) -> Bool {
        switch type {
        case "null": return value is NSNull
        case "boolean": return isBool(value)
        case "integer":
            guard let number = value as? NSNumber, !isBool(value) else { return false }
            return number.doubleValue.rounded() == number.doubleValue
        case "number": return value is NSNumber && !isBool(value)
        case "string": return value is String
        case "array": return value is [Any]
        case "object": return value is [String: Any]
        default: return false
        }
    }

    private static func equal(_ a: Any, _ b: Any) -> Bool {
        switch (a, b) {
        case let (x as String, y as String): return x == y
        case let (x as NSNumber, y as NSNumber): return isBool(x) == isBool(y) && x == y
        case (is NSNull, is NSNull): return true
        default: return false
        }
    }
}
