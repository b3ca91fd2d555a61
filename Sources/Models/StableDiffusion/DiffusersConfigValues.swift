import Foundation
import WeightsIO

/// A diffusers config value that is either one number for every block or one per block
/// (`attention_head_dim: 8` vs `[5, 10, 20, 20]`).
public enum PerBlockValue: Codable, Equatable, Sendable {
    case shared(Int)
    case perBlock([Int])

    public init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let value = try? container.decode(Int.self) {
            self = .shared(value)
        } else {
            self = .perBlock(try container.decode([Int].self))
        }
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .shared(let value): try container.encode(value)
        case .perBlock(let values): try container.encode(values)
        }
    }

    /// One value per block; a list of the wrong length is a configuration error.
    func expanded(_ count: Int, key: String) throws -> [Int] {
        switch self {
        case .shared(let value): return Array(repeating: value, count: count)
        case .perBlock(let values):
            guard values.count == count else {
                throw ModelError.invalidConfiguration("\(key) lists \(values.count) values for \(count) blocks")
            }
            return values
        }
    }
}

extension KeyedDecodingContainer {
    /// The value, or the library default when the key is absent or null (diffusers writes nulls).
    func value<T: Decodable>(_ key: Key, default fallback: T) throws -> T {
        try decodeIfPresent(T.self, forKey: key) ?? fallback
    }
}

/// Decodes a diffusers `config.json` into one of the configuration structs, naming the file on failure.
public enum DiffusersConfigReader {
    public static func decode<T: Decodable>(_ type: T.Type, from data: Data, file: String) throws -> T {
        do {
            return try JSONDecoder().decode(T.self, from: data)
        } catch let error as DecodingError {
            // A file that is not JSON at all is told apart from a bad value inside it, with its position.
            if let syntax = JSONSyntaxReport.problem(in: data) {
                throw ModelError.invalidConfiguration("\(file): not valid JSON: \(syntax)")
            }
            throw ModelError.invalidConfiguration("\(file): \(describe(error))")
        }
    }

    static func describe(_ error: DecodingError) -> String {
        func path(_ keys: [CodingKey]) -> String { keys.map(\.stringValue).joined(separator: ".") }
        switch error {
        case let .typeMismatch(type, context): return "'\(path(context.codingPath))' is not a \(type): \(context.debugDescription)"
        case let .valueNotFound(type, context): return "'\(path(context.codingPath))' is missing a \(type)"
        case let .keyNotFound(key, _): return "required key '\(key.stringValue)' is missing"
        case let .dataCorrupted(context):
            return context.codingPath.isEmpty ? "not valid JSON (\(context.debugDescription))"
                : "'\(path(context.codingPath))' is invalid: \(context.debugDescription)"
        @unknown default: return "\(error)"
        }
    }
}
