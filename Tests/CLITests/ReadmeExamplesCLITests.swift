import Foundation
import XCTest

/// The README's "Examples" block runs as written: every `sdsclip …` line in the ```bash block after the
/// `<!-- examples: run by … -->` marker is run with the built binary, from a scratch folder that holds
/// the repository's `fixtures/` (so outputs land there, not in the checkout). A line's expected exit
/// status is 0 unless it ends in `# exit N`.
final class ReadmeExamplesCLITests: XCTestCase {
    struct Example {
        let line: String
        let arguments: [String]
        let status: Int32
    }

    static func examples() throws -> [Example] {
        let readme = try String(contentsOf: CLITests.root.appendingPathComponent("README.md"), encoding: .utf8)
        guard let marker = readme.range(of: "<!-- examples: run by") else { return [] }
        let rest = readme[marker.upperBound...]
        guard let open = rest.range(of: "```bash\n"), let close = rest[open.upperBound...].range(of: "```") else { return [] }
        return try rest[open.upperBound..<close.lowerBound].split(separator: "\n").compactMap { raw in
            let line = raw.trimmingCharacters(in: .whitespaces)
            guard line.hasPrefix("sdsclip ") else { return nil }
            var status: Int32 = 0
            var command = line
            if let comment = line.range(of: " # exit ") {
                status = Int32(line[comment.upperBound...].trimmingCharacters(in: .whitespaces)) ?? -1
                command = String(line[..<comment.lowerBound])
            } else if let comment = line.range(of: "  # ") {
                command = String(line[..<comment.lowerBound])
            }
            let words = try shellWords(command)
            return Example(line: line, arguments: Array(words.dropFirst()), status: status)
        }
    }

    /// Splits a command line as a POSIX shell would for the README's simple cases: spaces, single and double quotes.
    static func shellWords(_ text: String) throws -> [String] {
        var words: [String] = [], current = "", quote: Character? = nil, started = false
        for character in text {
            if let open = quote {
                if character == open { quote = nil } else { current.append(character) }
            } else if character == "'" || character == "\"" {
                quote = character
                started = true
            } else if character == " " {
                if started || !current.isEmpty { words.append(current) }
                current = ""
                started = false
            } else {
                current.append(character)
            }
        }
        guard quote == nil else { throw NSError(domain: "readme", code: 1, userInfo: [NSLocalizedDescriptionKey: "unclosed quote in: \(text)"]) }
        if started || !current.isEmpty { words.append(current) }
        return words
    }

    func testEveryReadmeExampleRunsAsWritten() throws {
        let examples = try Self.examples()
        XCTAssertGreaterThanOrEqual(examples.count, 5, "the README's examples block was not found")
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("sdsclip-readme-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        for folder in ["fixtures", "formats"] {
            try FileManager.default.createSymbolicLink(at: scratch.appendingPathComponent(folder),
                                                       withDestinationURL: CLITests.root.appendingPathComponent(folder))
        }
        for example in examples {
            let run = try CLITests.sdsclip(example.arguments, in: scratch)
            XCTAssertEqual(run.status, example.status, "\(example.line)\n\(run.stderr)")
        }
    }
}
