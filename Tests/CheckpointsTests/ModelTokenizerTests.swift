import Foundation
import XCTest
@testable import Checkpoints
import Models
import Tensors

/// `ModelTokenizer`: a model folder's own vocab.json + merges.txt are used, and exports carry the model's
/// tokenizer, so a small-vocabulary CLIP (the trained demo CLIP) exports and loads back with its ids intact.
/// Tolerance: exact ids and bit-equal embeddings.
final class ModelTokenizerTests: XCTestCase {
    static func fixture(_ path: String) -> String { CLIPCheckpointTests.fixture(path) }
    static let captions = ["a red circle left of a blue square", "a blue circle left of a red square", "two shapes, 3 colours!"]

    func temporaryFolder() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("sdsclip-tokenizer-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    func testFolderVocabularyIsUsedAndTravelsWithEveryExport() throws {
        let source = Self.fixture("../demo/trained/clip")
        let own = try ModelTokenizer.forCLIP(at: source)
        XCTAssertLessThan(own.vocabulary.tokenCount, 1000)
        XCTAssertEqual(try ModelTokenizer.forCLIP(at: source + "/model.safetensors").vocabulary.tokenCount, own.vocabulary.tokenCount)
        let original = try CLIPLoader.load(source)
        XCTAssertEqual(original.model.configuration.text.vocabularySize, own.vocabulary.tokenCount)
        let ids = try own.tokenize(Self.captions, contextLength: original.model.configuration.text.contextLength)
        let expected = try withNoGrad { try original.model.encodeText(ids).scalars }
        let folder = try temporaryFolder()
        for layout in CLIPExportLayout.allCases {
            let out = folder.appendingPathComponent(layout.rawValue).path
            let summary = try CLIPExporter.export(modelAt: source, to: out, options: .init(layout: layout))
            XCTAssertTrue(summary.files.contains("vocab.json") && summary.files.contains("merges.txt"), "\(layout): \(summary.files)")
            let tokenizer = try ModelTokenizer.forCLIP(at: out)
            XCTAssertEqual(tokenizer.vocabulary.mergeLines, own.vocabulary.mergeLines, "\(layout)")
            let backIDs = try tokenizer.tokenize(Self.captions, contextLength: original.model.configuration.text.contextLength)
            XCTAssertEqual(backIDs, ids, "\(layout)")
            let back = try CLIPLoader.load(out)
            XCTAssertEqual(try withNoGrad { try back.model.encodeText(backIDs).scalars }, expected, "\(layout): text embeddings")
        }
    }

    func testTeacherTokenizerComesFromThePipelinesTokenizerFolder() throws {
        let pipeline = Self.fixture("../demo/trained/sd")
        let teacher = try ModelTokenizer.forTextEncoder(at: pipeline)
        XCTAssertEqual(teacher.vocabulary.mergeLines, try ModelTokenizer.forCLIP(at: Self.fixture("../demo/trained/clip")).vocabulary.mergeLines)
        XCTAssertEqual(try ModelTokenizer.forTextEncoder(at: pipeline + "/text_encoder").vocabulary.tokenCount, teacher.vocabulary.tokenCount)
        // Pipelines without tokenizer files (the random demo teacher) keep the built-in vocabulary.
        XCTAssertEqual(try ModelTokenizer.forTextEncoder(at: Self.fixture("../demo/sd")).vocabulary.tokenCount, BPEVocabulary.size)
        XCTAssertEqual(try ModelTokenizer.forTextEncoder(at: Self.fixture("../sd/sd1_tiny.ckpt")).vocabulary.tokenCount, BPEVocabulary.size)
    }

    /// What `export --layout hf` writes for a model of the real vocabulary (the built-in BPE table as
    /// vocab.json + merges.txt) tokenizes exactly as the built-in tokenizer.
    func testExportedBuiltInVocabularyTokenizesAsTheBuiltInOne() throws {
        let out = try temporaryFolder().appendingPathComponent("hf").path
        try CLIPExporter.export(modelAt: Self.fixture("../demo/clip"), to: out, options: .init(layout: .huggingFace))
        XCTAssertNotNil(ModelTokenizer.folder(among: [out]))
        let written = try ModelTokenizer.forCLIP(at: out), builtIn = try CLIPTokenizer()
        XCTAssertEqual(written.vocabulary.tokenCount, BPEVocabulary.size)
        XCTAssertEqual(written.startOfText, Int(CLIPTokenizer.startOfTextID))
        XCTAssertEqual(written.endOfText, Int(CLIPTokenizer.endOfTextID))
        for text in Self.captions + ["a photo of an astronaut riding a horse on mars", "don't  stop\u{2014}it's 3.14 &amp; caf\u{E9} <3",
                                     "日本語のテキスト", "Apple CoreML developer tools on a Macbook Air are fast"] {
            XCTAssertEqual(try written.tokenize(text), try builtIn.tokenize(text), text)
        }
    }
}
