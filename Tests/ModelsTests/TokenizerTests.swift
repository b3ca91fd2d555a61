import Foundation
import XCTest
@testable import Models

/// CLIPTokenizer against open_clip 3.3.0 (fixtures/tokenizer, made by tools/make_tokenizer_fixtures.py)
/// and the golden ids in shared/reference/models.md §2.6. Tolerance: exact equality of every id.
final class TokenizerTests: XCTestCase {
    private static let repoRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    private static let fixtureURL = repoRoot.appendingPathComponent("fixtures/tokenizer/open_clip_tokenize.jsonl")
    private static let vocabularyURL = repoRoot.appendingPathComponent("Sources/Models/Resources/bpe_simple_vocab_16e6.txt.gz")

    nonisolated(unsafe) private static var sharedTokenizer: CLIPTokenizer?
    private func tokenizer() throws -> CLIPTokenizer {
        if let tokenizer = Self.sharedTokenizer { return tokenizer }
        let tokenizer = try CLIPTokenizer(vocabularyURL: Self.vocabularyURL)
        Self.sharedTokenizer = tokenizer
        return tokenizer
    }

    // models.md §2.6 (OpenAI clip.tokenize == open_clip.tokenize), before padding.
    func testGoldenIDs() throws {
        let golden: [(String, [Int])] = [
            ("a photo of an astronaut riding a horse on mars",
             [49406, 320, 1125, 539, 550, 18376, 6765, 320, 4558, 525, 7496, 49407]),
            ("Apple CoreML developer tools on a Macbook Air are fast",
             [49406, 3055, 19622, 5780, 10929, 5771, 525, 320, 20617, 1922, 631, 1953, 49407]),
            ("a photograph of an astronaut riding a horse",
             [49406, 320, 8853, 539, 550, 18376, 6765, 320, 4558, 49407]),
            ("A photo of a cat", [49406, 320, 1125, 539, 320, 2368, 49407]),
            ("don't  stop\u{2014}it's 3.14 &amp; caf\u{E9} <3",
             [49406, 847, 713, 1691, 2005, 585, 568, 274, 269, 272, 275, 261, 15304, 283, 274, 49407]),
            ("日本語のテキスト", [49406, 39121, 44353, 34002, 252, 21575, 2429, 228, 47121, 32421, 486, 49407]),
        ]
        let tokenizer = try tokenizer()
        for (text, ids) in golden {
            let row = try tokenizer.tokenize(text)
            XCTAssertEqual(row.count, 77)
            XCTAssertEqual(Array(row.prefix(ids.count)), ids, text)
            XCTAssertEqual(Array(row.dropFirst(ids.count)), Array(repeating: 0, count: 77 - ids.count), text)
            XCTAssertEqual(tokenizer.encode(text), Array(ids.dropFirst().dropLast()), text)
        }
    }

    private struct FixtureRow: Decodable {
        let text: String
        let clean: String
        let ids: [Int]
        let context_length: Int?
    }

    /// Every row of the open_clip fixture, id for id; reports the first mismatching string.
    func testMatchesOpenCLIPFixture() throws {
        let lines = try String(contentsOf: Self.fixtureURL, encoding: .utf8).split(separator: "\n")
        XCTAssertGreaterThan(lines.count, 1000)
        let decoder = JSONDecoder()
        let tokenizer = try tokenizer()
        var checked = 0, cleanMismatches = 0, idMismatches = 0
        var firstFailure: String?
        for line in lines.dropFirst() {   // first line is the header
            let row = try decoder.decode(FixtureRow.self, from: Data(line.utf8))
            let cleaned = String(String.UnicodeScalarView(TextCleaner().clean(row.text).compactMap(Unicode.Scalar.init)))
            if cleaned != row.clean {
                cleanMismatches += 1
                if firstFailure == nil {
                    firstFailure = "clean(\(debugScalars(row.text))) = \(debugScalars(cleaned)), expected \(debugScalars(row.clean))"
                }
            }
            let ids = try tokenizer.tokenize(row.text, contextLength: row.context_length ?? 77)
            if ids != row.ids {
                idMismatches += 1
                if firstFailure == nil {
                    firstFailure = "tokenize(\(debugScalars(row.text))) = \(ids), expected \(row.ids)"
                }
            }
            checked += 1
        }
        XCTAssertGreaterThanOrEqual(checked, 1000)
        XCTAssertEqual(cleanMismatches, 0, "first failure: \(firstFailure ?? "-")")
        XCTAssertEqual(idMismatches, 0, "first failure: \(firstFailure ?? "-")")
        print("TokenizerTests: \(checked) open_clip rows checked, \(idMismatches) id mismatches, \(cleanMismatches) clean mismatches")
    }

    func testPaddingWithEndOfText() throws {
        let row = try tokenizer().tokenize("A photo of a cat", padID: 49407)
        XCTAssertEqual(row, [49406, 320, 1125, 539, 320, 2368] + Array(repeating: 49407, count: 71))
    }

    func testTruncationKeepsEndOfText() throws {
        let tokenizer = try tokenizer()
        let text = Array(repeating: "cat", count: 100).joined(separator: " ")
        let row = try tokenizer.tokenize(text)
        XCTAssertEqual(row.count, 77)
        XCTAssertEqual(row.first, 49406)
        XCTAssertEqual(row.last, 49407)
        XCTAssertEqual(Set(row[1..<76]), [2368])
        XCTAssertThrowsError(try tokenizer.tokenize(text, truncate: false)) { error in
            XCTAssertEqual(error as? TokenizerError, .textTooLong(text: text, tokens: 102, contextLength: 77))
        }
        XCTAssertThrowsError(try tokenizer.tokenize("cat", contextLength: 0)) { error in
            XCTAssertEqual(error as? TokenizerError, .invalidContextLength(0))
        }
        XCTAssertEqual(try tokenizer.tokenize("a cat", contextLength: 1), [49407])   // open_clip: tokens[:1], last := EOT
        XCTAssertEqual(try tokenizer.tokenize(["a", "A photo of a cat"], contextLength: 4),
                       [[49406, 320, 49407, 0], [49406, 320, 1125, 49407]])
    }

    func testDecode() throws {
        let tokenizer = try tokenizer()
        XCTAssertEqual(tokenizer.decode([320, 1125, 539, 320, 2368]), "a photo of a cat ")
        XCTAssertEqual(tokenizer.decode(tokenizer.encode("café 日本")), "café 日本 ")
    }

    func testVocabularyStructure() throws {
        let vocabulary = try tokenizer().vocabulary
        XCTAssertEqual(vocabulary.tokenTexts.count, BPEVocabulary.size)
        XCTAssertEqual(vocabulary.tokenTexts[0], "!")
        XCTAssertEqual(vocabulary.tokenTexts[256], "!</w>")
        XCTAssertEqual(vocabulary.tokenTexts[49406], "<start_of_text>")
        XCTAssertEqual(vocabulary.merges.count, 48_894)
        // The 68 unprintable bytes map to U+0100…: byte 0 → "Ā" (id 188), space (0x20) → "Ġ".
        XCTAssertEqual(vocabulary.tokenTexts[188], "\u{100}")
        XCTAssertEqual(BPEVocabulary.byteSymbol(0x20), "\u{120}")
    }

    /// The transformers files (vocab.json, merges.txt) are derived from these: the merges are the
    /// file's lines 1…48,894 verbatim, and each merged token's text is its two parts joined.
    func testHuggingFaceTokensAndMergeLines() throws {
        let vocabulary = try tokenizer().vocabulary
        let text = try Gunzip.decompress(Data(contentsOf: Self.vocabularyURL), path: "vocab")
        let fileLines = String(decoding: text, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        let merges = vocabulary.mergeLines
        XCTAssertEqual(merges.count, BPEVocabulary.mergeCount)
        XCTAssertEqual(merges, fileLines[1...BPEVocabulary.mergeCount].map(String.init))
        let tokens = vocabulary.huggingFaceTokens
        XCTAssertEqual(tokens.count, BPEVocabulary.size)
        XCTAssertEqual(Set(tokens).count, tokens.count, "token texts are unique")
        XCTAssertEqual([tokens[0], tokens[256], tokens[49406], tokens[49407]], ["!", "!</w>", "<|startoftext|>", "<|endoftext|>"])
        for (rank, line) in merges.enumerated() {
            XCTAssertEqual(tokens[512 + rank], line.replacingOccurrences(of: " ", with: ""), "merge \(rank)")
        }
    }

    func testBundledAndEnvironmentVocabulary() throws {
        let bundled = try CLIPTokenizer()
        XCTAssertEqual(bundled.encode("a photo of a cat"), [320, 1125, 539, 320, 2368])
        setenv(CLIPTokenizer.vocabularyEnvironmentKey, "/nonexistent/bpe.txt.gz", 1)
        defer { unsetenv(CLIPTokenizer.vocabularyEnvironmentKey) }
        XCTAssertThrowsError(try CLIPTokenizer()) { error in
            XCTAssertEqual(error as? TokenizerError, .environmentVocabularyUnusable(variable: "SDSCLIP_BPE_VOCAB", path: "/nonexistent/bpe.txt.gz",
                                                                                 problem: "no such file"))
            XCTAssertFalse("\(error)".contains("init(vocabularyURL:)"), "\(error)")
        }
        setenv(CLIPTokenizer.vocabularyEnvironmentKey, Self.vocabularyURL.path, 1)
        XCTAssertEqual(try CLIPTokenizer().encode("mars"), [7496])
    }

    // MARK: bad vocabulary files: typed errors, never a crash

    private func temporaryFile(_ bytes: [UInt8], name: String) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("h5-\(UUID().uuidString)-\(name)")
        try Data(bytes).write(to: url)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    func testTruncatedGzipIsReported() throws {
        let gz = [UInt8](try Data(contentsOf: Self.vocabularyURL))
        let url = try temporaryFile(Array(gz.prefix(gz.count / 2)), name: "half.txt.gz")
        XCTAssertThrowsError(try CLIPTokenizer(vocabularyURL: url)) { error in
            guard case .corruptCompressedVocabulary(let path, let offset, let reason)? = error as? TokenizerError else {
                return XCTFail("unexpected \(error)")
            }
            XCTAssertEqual(path, url.path)
            XCTAssertEqual(offset, gz.count / 2)
            XCTAssertEqual(reason, "stream truncated")
        }
    }

    func testCorruptGzipIsReported() throws {
        var gz = [UInt8](try Data(contentsOf: Self.vocabularyURL))
        for i in 100..<200 { gz[i] ^= 0x5A }
        let url = try temporaryFile(gz, name: "corrupt.txt.gz")
        XCTAssertThrowsError(try CLIPTokenizer(vocabularyURL: url)) { error in
            guard case .corruptCompressedVocabulary(let path, let offset, _)? = error as? TokenizerError else {
                return XCTFail("unexpected \(error)")
            }
            XCTAssertEqual(path, url.path)
            XCTAssertGreaterThan(offset, 0)
            XCTAssertLessThan(offset, gz.count)
        }
    }

    func testShortOrMalformedMergesAreReported() throws {
        let short = try temporaryFile(Array("#version: 0.2\ni n\nt h\n".utf8), name: "short.txt")
        XCTAssertThrowsError(try CLIPTokenizer(vocabularyURL: short)) { error in
            XCTAssertEqual(error as? TokenizerError, .invalidVocabulary(
                path: short.path, line: 4, reason: "file ends after 2 merges; expected 48894"))
        }
        let bad = try temporaryFile(Array("#version: 0.2\ni n\nt h e\n".utf8), name: "bad.txt")
        XCTAssertThrowsError(try CLIPTokenizer(vocabularyURL: bad)) { error in
            XCTAssertEqual(error as? TokenizerError, .invalidVocabulary(
                path: bad.path, line: 3, reason: "expected two space-separated symbols, found 3"))
        }
        let unknown = try temporaryFile(Array("#version: 0.2\nin n\n".utf8), name: "unknown.txt")
        XCTAssertThrowsError(try CLIPTokenizer(vocabularyURL: unknown)) { error in
            XCTAssertEqual(error as? TokenizerError, .invalidVocabulary(
                path: unknown.path, line: 2, reason: "merge \"in n\" uses a symbol no earlier line defines"))
        }
        let invalidUTF8 = try temporaryFile([0x23, 0x0A, 0xFF, 0x20, 0x6E, 0x0A], name: "utf8.txt")
        XCTAssertThrowsError(try CLIPTokenizer(vocabularyURL: invalidUTF8)) { error in
            XCTAssertEqual(error as? TokenizerError, .invalidVocabulary(path: invalidUTF8.path, line: 2, reason: "not valid UTF-8"))
        }
    }

    func testLoadTime() throws {
        let start = Date()
        _ = try CLIPTokenizer(vocabularyURL: Self.vocabularyURL)
        print("TokenizerTests: vocabulary load \(String(format: "%.3f", Date().timeIntervalSince(start))) s")
    }

    private func debugScalars(_ text: String) -> String {
        "\"" + text.unicodeScalars.map { $0.isASCII && $0.value >= 0x20 ? String($0) : String(format: "\\u{%X}", $0.value) }.joined() + "\""
    }
}

extension TokenizerTests {
    /// The shared BPE cache under contention gives the same ids as a fresh single-threaded run.
    func testConcurrentEncodingAgrees() throws {
        let texts = (0..<64).map { "a photo number \($0) of a café, «\($0 * 7)» 猫 \u{1F431} don't" }
        let sequential = try CLIPTokenizer(vocabularyURL: Self.vocabularyURL)   // its own cache
        let expected = texts.map { sequential.encode($0) }
        let shared = try CLIPTokenizer(vocabularyURL: Self.vocabularyURL)
        let results = ResultSlots(count: texts.count)
        DispatchQueue.concurrentPerform(iterations: texts.count * 4) { i in
            results.set(i % texts.count, shared.encode(texts[i % texts.count]))
        }
        XCTAssertEqual(results.values, expected)
    }
}

private final class ResultSlots: @unchecked Sendable {
    private let lock = NSLock()
    private var slots: [[Int]]
    init(count: Int) { slots = Array(repeating: [], count: count) }
    func set(_ index: Int, _ value: [Int]) { lock.lock(); slots[index] = value; lock.unlock() }
    var values: [[Int]] { lock.lock(); defer { lock.unlock() }; return slots }
}

extension TokenizerTests {
    /// Arbitrary code points (unassigned, private use, controls, astral) never crash and always
    /// give a well-formed row: SOT first, an EOT, ids inside the vocabulary, pad after the EOT.
    func testArbitraryScalarsGiveWellFormedRows() throws {
        let tokenizer = try tokenizer()
        var generator = SplitMix64(seed: 0x5D5C_11B0)
        for _ in 0..<400 {
            var scalars = String.UnicodeScalarView()
            for _ in 0..<Int(generator.next() % 40) {
                let raw = UInt32(truncatingIfNeeded: generator.next() % (generator.next() % 2 == 0 ? 0x800 : 0x110000))
                if let scalar = Unicode.Scalar(raw) { scalars.append(scalar) }
            }
            let text = String(scalars)
            let row = try tokenizer.tokenize(text)
            XCTAssertEqual(row.count, 77)
            XCTAssertEqual(row.first, 49406)
            guard let end = row.firstIndex(of: 49407) else { return XCTFail("no EOT for \(text.debugDescription)") }
            XCTAssertTrue(row[..<end].allSatisfy { (0..<49407).contains($0) }, text.debugDescription)
            XCTAssertTrue(row[(end + 1)...].allSatisfy { $0 == 0 }, text.debugDescription)
        }
    }
}

/// Deterministic generator for the robustness test (no dependence on the system RNG).
private struct SplitMix64 {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
