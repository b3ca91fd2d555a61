import Foundation

/// Turns a webdataset source into its shard files: one `.tar`/`.tar.gz`/`.tgz` file, a folder
/// of them (sorted by name), or a brace pattern such as `shards/train-{000..009}.tar`.
public enum ShardList {
    public static let extensions = [".tar", ".tar.gz", ".tgz"]
    /// A pattern that would name more shards than this is refused (a typo like {0..99999999}).
    public static let maximumShards = 1_000_000
    /// Longer patterns are refused: expansion recurses once per brace group.
    public static let maximumPatternLength = 4096

    public static func resolve(_ source: String) throws -> [String] {
        var isFolder: ObjCBool = false
        if FileManager.default.fileExists(atPath: source, isDirectory: &isFolder) {
            guard isFolder.boolValue else { return [source] }
            let names = (try? FileManager.default.contentsOfDirectory(atPath: source)) ?? []
            let shards = names.filter(isShardName).sorted()
            guard !shards.isEmpty else {
                throw DataError(file: source, "the folder holds no shards (files ending \(extensions.joined(separator: ", ")))")
            }
            return shards.map { URL(fileURLWithPath: source).appendingPathComponent($0).path }
        }
        guard source.contains("{") else { throw DataError(file: source, "no such shard file or folder") }
        let shards = try expandBraces(source)
        let missing = shards.filter { !FileManager.default.fileExists(atPath: $0) }
        guard missing.isEmpty else {
            let shown = missing.prefix(3).joined(separator: ", ") + (missing.count > 3 ? ", …" : "")
            throw DataError(file: source, "\(missing.count) of the \(shards.count) shards it names do not exist: \(shown)")
        }
        return shards
    }

    public static func isShardName(_ name: String) -> Bool {
        let lower = name.lowercased()
        return extensions.contains { lower.hasSuffix($0) } && !name.hasPrefix(".")
    }

    /// Shell-style brace expansion: `{000..009}` (zero-padded when an end has a leading zero,
    /// descending when the first end is larger), `{a,b,c}`; several groups multiply, and lists
    /// may nest. Text without braces is returned as is.
    public static func expandBraces(_ pattern: String) throws -> [String] {
        guard pattern.count <= maximumPatternLength else {
            throw DataError(file: String(pattern.prefix(80)) + "…", "a shard pattern is limited to \(maximumPatternLength) characters")
        }
        var results: [String] = []
        try expand(Array(pattern), prefix: "", into: &results, pattern: pattern)
        return results
    }

    private static func expand(_ characters: [Character], prefix: String, into results: inout [String], pattern: String) throws {
        guard let open = characters.firstIndex(of: "{") else {
            try append(prefix + String(characters), to: &results, pattern: pattern)
            return
        }
        guard let close = matchingBrace(characters, from: open) else {
            throw DataError(file: pattern, "unbalanced '{' at character \(open + 1 + prefix.count)")
        }
        let head = prefix + String(characters[..<open])
        let body = Array(characters[(open + 1)..<close])
        let tail = Array(characters[(close + 1)...])
        for choice in try alternatives(body, pattern: pattern) {
            // A choice may hold braces of its own ({a,{b,c}}): expand it with the tail.
            try expand(Array(choice) + tail, prefix: head, into: &results, pattern: pattern)
        }
    }

    private static func append(_ name: String, to results: inout [String], pattern: String) throws {
        guard results.count < maximumShards else {
            throw DataError(file: pattern, "the pattern names more than \(maximumShards) shards")
        }
        results.append(name)
    }

    private static func matchingBrace(_ characters: [Character], from open: Int) -> Int? {
        var depth = 0
        for index in open..<characters.count {
            if characters[index] == "{" { depth += 1 }
            if characters[index] == "}" {
                depth -= 1
                if depth == 0 { return index }
            }
        }
        return nil
    }

    /// The choices of one group: a numeric range, or a comma list split at depth 0.
    private static func alternatives(_ body: [Character], pattern: String) throws -> [String] {
        let text = String(body)
        if !text.contains(","), let range = text.range(of: "..") {
            let low = String(text[..<range.lowerBound])
            let high = String(text[range.upperBound...])
            guard let first = Int(low), let last = Int(high), !low.hasPrefix("+"), !high.hasPrefix("+") else {
                throw DataError(file: pattern, "range {\(text)} needs whole numbers at both ends, like {000..009}")
            }
            let (span, overflow) = (max(first, last)).subtractingReportingOverflow(min(first, last))
            guard !overflow, span < maximumShards else {
                throw DataError(file: pattern, "range {\(text)} names more than \(maximumShards) shards")
            }
            let padded = [low, high].contains { $0.count > 1 && ($0.hasPrefix("0") || $0.hasPrefix("-0")) }
            let width = padded ? max(low.count, high.count) : 0
            let values = first <= last ? Array(first...last) : Array((last...first).reversed())
            return values.map { value in
                let digits = String(abs(value))
                let sign = value < 0 ? "-" : ""
                return sign + String(repeating: "0", count: max(0, width - sign.count - digits.count)) + digits
            }
        }
        var choices: [String] = []
        var current = ""
        var depth = 0
        for character in body {
            if character == "," && depth == 0 {
                choices.append(current)
                current = ""
                continue
            }
            if character == "{" { depth += 1 }
            if character == "}" { depth -= 1 }
            current.append(character)
        }
        choices.append(current)
        guard choices.count > 1 else {
            throw DataError(file: pattern, "{\(text)} is neither a range {A..B} nor a list {a,b}")
        }
        return choices
    }
}
