import Foundation
import Yams

/// A JSON or YAML configuration file as plain values (`[String: Any]`, `[Any]`, String, Int, Double,
/// Bool, NSNull), built from Yams' node tree by our own walk rather than `Yams.load`: its constructor
/// force-unwraps mapping keys (a file with `? [a]: 1` would crash the tool) and would expand alias
/// "billion laughs" without bound. Keys must be scalars; nesting and node count are bounded.
struct ConfigurationDocument {
    static let maxDepth = 64
    static let maxNodes = 1_000_000

    let origin: String
    private var visited = 0

    /// The top-level mapping of `text`.
    static func mapping(yaml text: String, origin: String) throws(ConfigurationError) -> [String: Any] {
        let root: Node?
        do { root = try Yams.compose(yaml: text) } catch {
            throw ConfigurationError("\(origin): not valid JSON or YAML (\(error))")
        }
        guard let root, case .mapping = root else {
            throw ConfigurationError("\(origin): a configuration is a mapping of setting names to values")
        }
        var document = ConfigurationDocument(origin: origin)
        guard let mapping = try document.value(of: root, depth: 0) as? [String: Any] else {
            throw ConfigurationError("\(origin): a configuration is a mapping of setting names to values")
        }
        return mapping
    }

    private init(origin: String) { self.origin = origin }

    private mutating func value(of node: Node, depth: Int) throws(ConfigurationError) -> Any {
        visited += 1
        guard visited <= Self.maxNodes else {
            throw ConfigurationError("\(origin): more than \(Self.maxNodes) values (aliases expanding without end?)")
        }
        guard depth <= Self.maxDepth else {
            throw ConfigurationError("\(origin)\(Self.line(of: node)): nested deeper than \(Self.maxDepth) levels")
        }
        switch node {
        case .scalar:
            return Self.scalar(node)
        case .sequence(let sequence):
            var values: [Any] = []
            for element in sequence { values.append(try value(of: element, depth: depth + 1)) }
            return values
        case .mapping(let mapping):
            var values: [String: Any] = [:]
            for (key, element) in mapping {
                guard case .scalar = key, let name = key.string else {
                    throw ConfigurationError("\(origin)\(Self.line(of: key)): a setting name must be plain text, not a list or mapping")
                }
                values[name] = try value(of: element, depth: depth + 1)
            }
            return values
        }
    }

    /// A scalar typed as YAML's core schema resolves it (quoted text stays text).
    private static func scalar(_ node: Node) -> Any {
        // The resolved tag's name (`Tag.name` itself is internal to Yams).
        switch node.tag.description {
        case Tag.Name.null.rawValue: return NSNull()
        case Tag.Name.bool.rawValue: if let value = node.bool { return value }
        case Tag.Name.int.rawValue: if let value = node.int { return value }
        case Tag.Name.float.rawValue: if let value = node.float { return value }
        default: break
        }
        return node.string ?? ""
    }

    private static func line(of node: Node) -> String {
        node.mark.map { ", line \($0.line)" } ?? ""
    }
}
