import Foundation
import XCTest
@testable import Models

/// `CLIPTokenizer(folder:)` on a model folder's own vocab.json + merges.txt: ids equal to transformers'
/// CLIPTokenizer on the demo models' small vocabulary (fixtures/tokenizer/demo_vocab_ids.jsonl, made by
/// tools/make_demo_models.py), and malformed files named with their line. Tolerance: exact ids.
final class FolderTokenizerTests: XCTestCase {
    static let repoRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let demoCLIP = repoRoot.appendingPathComponent("fixtures/demo/trained/clip").path
    static let demoTeacherTokenizer = repoRoot.appendingPathComponent("fixtures/demo/trained/sd/tokenizer").path
    static let fixture = repoRoot.appendingPathComponent("fixtures/tokenizer/demo_vocab_ids.jsonl")

    func rows() throws -> [(text: String, ids: [Int])] {
        let text = try String(contentsOf: Self.fixture, encoding: .utf8)
        return try text.split(separator: "\n").map { line in
            let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            return (try XCTUnwrap(object["text"] as? String), try XCTUnwrap(object["ids"] as? [Int]))
        }
    }

    func testIdsEqualTransformersOnTheDemoVocabulary() throws {
        let rows = try rows()
        XCTAssertGreaterThanOrEqual(rows.count, 15)
        for folder in [Self.demoCLIP, Self.demoTeacherTokenizer] {
            let tokenizer = try CLIPTokenizer(folder: folder)
            for row in rows {
                let ids = try tokenizer.tokenize(row.text, contextLength: 200, padID: -1).filter { $0 >= 0 }
                XCTAssertEqual(ids, row.ids, "\(folder): \(row.text)")
            }
        }
    }

    func testDemoVocabularyShape() throws {
        let tokenizer = try CLIPTokenizer(folder: Self.demoCLIP)
        let count = tokenizer.vocabulary.tokenCount
        XCTAssertLessThan(count, 1000)
        XCTAssertEqual(tokenizer.startOfText, count - 2)
        XCTAssertEqual(tokenizer.endOfText, count - 1)
        // Every example-world word is one token; the decoder gives the text back.
        let ids = tokenizer.encode("a purple triangle below a yellow square")
        XCTAssertEqual(ids.count, 7)
        XCTAssertEqual(tokenizer.decode(ids), "a purple triangle below a yellow square ")
        // transformers' spelling of the special tokens is recognised in text.
        XCTAssertEqual(tokenizer.encode("red <|endoftext|>"), [tokenizer.encode("red")[0], tokenizer.endOfText])
    }

    /// The built-in vocabulary written out as transformers' files tokenizes as the built-in tokenizer,
    /// on every text of the open_clip fixture.
    func testBuiltInVocabularyWrittenOutTokenizesIdentically() throws {
        let builtIn = try CLIPTokenizer(vocabularyURL: Self.repoRoot.appendingPathComponent("Sources/Models/Resources/bpe_simple_vocab_16e6.txt.gz"))
        let folder = try temporaryFolder()
        var vocab: [String: Int] = [:]
        for (id, token) in builtIn.vocabulary.huggingFaceTokens.enumerated() { vocab[token] = id }
        try JSONSerialization.data(withJSONObject: vocab).write(to: URL(fileURLWithPath: folder + "/vocab.json"))
        try ("#version: 0.2\n" + builtIn.vocabulary.mergeLines.joined(separator: "\n") + "\n")
            .write(toFile: folder + "/merges.txt", atomically: true, encoding: .utf8)
        let written = try CLIPTokenizer(folder: folder)
        XCTAssertEqual(written.vocabulary.tokenCount, BPEVocabulary.size)
        XCTAssertEqual(written.vocabulary.mergeLines, builtIn.vocabulary.mergeLines)
        let lines = try String(contentsOf: Self.repoRoot.appendingPathComponent("fixtures/tokenizer/open_clip_tokenize.jsonl"), encoding: .utf8)
            .split(separator: "\n").dropFirst()
        XCTAssertGreaterThan(lines.count, 1000)
        var compared = 0
        for line in lines {
            let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            let text = try XCTUnwrap(object["text"] as? String)
            // Start/end of text typed in text are each side's own spelling (open_clip's "<start_of_text>",
            // transformers' "<|startoftext|>"), so those texts differ by design.
            let lower = text.lowercased()
            if ["<start_of_text>", "<end_of_text>", "<|startoftext|>", "<|endoftext|>"].contains(where: lower.contains) { continue }
            XCTAssertEqual(written.encode(text), builtIn.encode(text), text)
            compared += 1
        }
        XCTAssertGreaterThan(compared, lines.count - 20)
        XCTAssertEqual(written.encode("a <|endoftext|>"), [320, 49407])
        XCTAssertEqual(builtIn.encode("a <end_of_text>"), [320, 49407])
    }

    func temporaryFolder() throws -> String {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("folder-tokenizer-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: folder) }
        return folder
    }

    func expectError(vocab: String, merges: String, file: String, line: Int, containing text: String,
                     sourceLine: UInt = #line) throws {
        let folder = try temporaryFolder()
        try vocab.write(toFile: folder + "/vocab.json", atomically: true, encoding: .utf8)
        try merges.write(toFile: folder + "/merges.txt", atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try CLIPTokenizer(folder: folder), line: sourceLine) { error in
            guard case .invalidVocabulary(let path, let errorLine, let reason) = error as? TokenizerError else {
                return XCTFail("unexpected \(error)", line: sourceLine)
            }
            XCTAssertEqual(path, folder + "/" + file, line: sourceLine)
            XCTAssertEqual(errorLine, line, reason, line: sourceLine)
            XCTAssertTrue(reason.contains(text), reason, line: sourceLine)
        }
    }

    func testMalformedFilesAreNamedWithTheirLine() throws {
        let good = "{\n\"a\": 0,\n\"b\": 1,\n\"<|startoftext|>\": 2,\n\"<|endoftext|>\": 3\n}"
        let merges = "#version: 0.2\na b\n"
        try expectError(vocab: "{\n\"a\": 0,\n\"b\": oops\n}", merges: merges, file: "vocab.json", line: 3, containing: "not valid JSON")
        try expectError(vocab: "[1, 2]", merges: merges, file: "vocab.json", line: 1, containing: "JSON object")
        try expectError(vocab: "{\n\"a\": 0,\n\"a\": 1\n}", merges: merges, file: "vocab.json", line: 3, containing: "not valid JSON")
        try expectError(vocab: "{\n\"a\": 0,\n\"b\": \"one\",\n\"<|startoftext|>\": 2,\n\"<|endoftext|>\": 3\n}", merges: merges,
                        file: "vocab.json", line: 3, containing: "non-negative integer")
        try expectError(vocab: "{\n\"a\": 0,\n\"b\": 0,\n\"<|startoftext|>\": 2,\n\"<|endoftext|>\": 3\n}", merges: merges,
                        file: "vocab.json", line: 3, containing: "both have id 0")
        try expectError(vocab: "{\n\"a\": 0,\n\"b\": 7,\n\"<|startoftext|>\": 2,\n\"<|endoftext|>\": 3\n}", merges: merges,
                        file: "vocab.json", line: 3, containing: "must be 0 to 3")
        try expectError(vocab: "{\"a\": 0, \"b\": 1}", merges: merges, file: "vocab.json", line: 1, containing: "<|startoftext|>")
        try expectError(vocab: good, merges: "a b\n", file: "merges.txt", line: 1, containing: "#version")
        try expectError(vocab: good, merges: "#version: 0.2\na b\na b c\n", file: "merges.txt", line: 3, containing: "found 3")
        XCTAssertThrowsError(try CLIPTokenizer(folder: "/nonexistent-folder")) { error in
            XCTAssertEqual(error as? TokenizerError, .vocabularyNotFound(searched: ["/nonexistent-folder/vocab.json"]))
        }
    }

    /// A piece the merges build but the vocabulary lacks becomes <|endoftext|>, as transformers' unk_token.
    func testPiecesOutsideTheVocabularyAreUnknown() throws {
        let folder = try temporaryFolder()
        // Only the bytes "a" and "b</w>" and the merged "ab</w>"… is left out, so "ab" has no token.
        let vocab = "{\"a\": 0, \"b</w>\": 1, \"<|startoftext|>\": 2, \"<|endoftext|>\": 3}"
        try vocab.write(toFile: folder + "/vocab.json", atomically: true, encoding: .utf8)
        try "#version: 0.2\na b</w>\n".write(toFile: folder + "/merges.txt", atomically: true, encoding: .utf8)
        let tokenizer = try CLIPTokenizer(folder: folder)
        XCTAssertEqual(tokenizer.encode("ab"), [3])
        XCTAssertEqual(tokenizer.encode("a"), [3])            // "a</w>" is not in this vocabulary
        XCTAssertEqual(tokenizer.encode("b"), [1])
        XCTAssertEqual(try tokenizer.tokenize("b", contextLength: 4, padID: 3), [2, 1, 3, 3])
    }
}
