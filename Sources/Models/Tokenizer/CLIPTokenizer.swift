import Foundation

/// The CLIP BPE tokenizer, id-for-id with `open_clip.tokenize` / `SimpleTokenizer` (and OpenAI
/// `clip.tokenize`, which agrees on ordinary text).
///
/// Pipeline (open_clip `SimpleTokenizer.encode`, clean="lower"):
/// 1. `ftfy.fix_text` (see `TextCleaner` for which repairs are reproduced),
/// 2. `html.unescape` twice, strip, collapse whitespace, Python `str.lower()`,
/// 3. the pre-tokenisation regex (`PreTokenizer`), UTF-8 → `bytes_to_unicode`, BPE merges.
/// `tokenize` adds start/end of text, truncates (the kept 77th token becomes end of text) and pads.
///
/// `init(folder:)` reads a model folder's own `vocab.json` + `merges.txt` instead (Hugging Face CLIP folders
/// ship them; see `HuggingFaceVocabularyReader`): the same cleaning and pre-tokenisation, its ids.
///
/// Thread-safe: the BPE cache is shared behind a lock, everything else is immutable.
public struct CLIPTokenizer: Sendable {
    /// The built-in vocabulary's start and end of text; an instance's own are `startOfText` / `endOfText`.
    public static let startOfTextID: Int32 = 49406
    public static let endOfTextID: Int32 = 49407
    public static let defaultContextLength = 77
    public static let vocabularyFileName = "bpe_simple_vocab_16e6.txt.gz"
    /// Environment variable naming a vocabulary file that overrides the bundled copy.
    public static let vocabularyEnvironmentKey = "SDSCLIP_BPE_VOCAB"

    public let vocabulary: BPEVocabulary
    private let cleaner = TextCleaner()
    private let cache = WordCache()

    /// Uses `SDSCLIP_BPE_VOCAB` if set, otherwise the vocabulary shipped in this module's resources.
    public init() throws(TokenizerError) {
        let url = try Self.locateVocabulary()
        do {
            try self.init(vocabularyURL: url)
        } catch {
            // A file the user named through the environment: say so, and what to set instead.
            guard let override = Self.environmentOverride else { throw error }
            let problem: String
            if case .vocabularyNotFound = error { problem = "no such file" } else { problem = error.description }
            throw .environmentVocabularyUnusable(variable: Self.vocabularyEnvironmentKey, path: override, problem: problem)
        }
    }

    private static var environmentOverride: String? {
        ProcessInfo.processInfo.environment[vocabularyEnvironmentKey].flatMap { $0.isEmpty ? nil : $0 }
    }

    public init(vocabularyURL: URL) throws(TokenizerError) {
        self.vocabulary = try BPEVocabulary(contentsOf: vocabularyURL)
    }

    public init(vocabulary: BPEVocabulary) {
        self.vocabulary = vocabulary
    }

    /// The tokenizer of a model folder that ships `vocab.json` + `merges.txt`.
    public init(folder: String) throws(TokenizerError) {
        self.vocabulary = try HuggingFaceVocabularyReader.read(folder: folder)
    }

    public var startOfText: Int { Int(vocabulary.startOfTextID) }
    public var endOfText: Int { Int(vocabulary.endOfTextID) }

    /// Token ids of `text` without start/end of text (open_clip `SimpleTokenizer.encode`).
    public func encode(_ text: String) -> [Int] {
        let cleaned = cleaner.clean(text)
        var ids: [Int] = []
        ids.reserveCapacity(cleaned.count)
        var utf8: [UInt8] = []
        for token in PreTokenizer.split(cleaned, specials: specials) {
            switch token {
            case .special(let id):
                ids.append(Int(id))
            case .piece(let range):
                utf8.removeAll(keepingCapacity: true)
                for cp in cleaned[range] { appendUTF8(cp, to: &utf8) }
                ids.append(contentsOf: bpe(utf8).lazy.map(Int.init))
            }
        }
        return ids
    }

    /// One row of `open_clip.tokenize`: start + ids + end, cut to `contextLength` (last kept
    /// token replaced by end of text) and padded with `padID` (0 as open_clip; 49407 as the
    /// Hugging Face SD1 tokenizer). With `truncate: false` an over-long text is an error.
    public func tokenize(_ text: String, contextLength: Int = defaultContextLength, padID: Int = 0,
                         truncate: Bool = true) throws(TokenizerError) -> [Int] {
        guard contextLength >= 1 else { throw .invalidContextLength(contextLength) }
        var tokens = [startOfText] + encode(text) + [endOfText]
        if tokens.count > contextLength {
            guard truncate else {
                throw .textTooLong(text: text, tokens: tokens.count, contextLength: contextLength)
            }
            tokens.removeLast(tokens.count - contextLength)
            tokens[contextLength - 1] = endOfText
        }
        tokens.append(contentsOf: repeatElement(padID, count: contextLength - tokens.count))
        return tokens
    }

    /// `tokenize` for several texts: one row of `contextLength` ids per text.
    public func tokenize(_ texts: [String], contextLength: Int = defaultContextLength, padID: Int = 0,
                         truncate: Bool = true) throws(TokenizerError) -> [[Int]] {
        var rows: [[Int]] = []
        rows.reserveCapacity(texts.count)
        for text in texts {
            rows.append(try tokenize(text, contextLength: contextLength, padID: padID, truncate: truncate))
        }
        return rows
    }

    /// open_clip `SimpleTokenizer.decode`: ids back to text ("</w>" → space, bad UTF-8 → U+FFFD).
    /// Ids outside the vocabulary are skipped.
    public func decode(_ ids: [Int]) -> String {
        var bytes: [UInt8] = []
        let decoder = Self.symbolToByte
        for id in ids where id >= 0 && id < vocabulary.tokenCount {
            for scalar in vocabulary.tokenTexts[id].unicodeScalars {
                if let byte = decoder[scalar.value] { bytes.append(byte) } else { appendUTF8(scalar.value, to: &bytes) }
            }
        }
        return String(decoding: bytes, as: UTF8.self).replacingOccurrences(of: "</w>", with: " ")
    }

    // MARK: internals

    private var specials: [PreTokenizer.Special] {
        [PreTokenizer.Special(vocabulary.specialTexts.start, vocabulary.startOfTextID),
         PreTokenizer.Special(vocabulary.specialTexts.end, vocabulary.endOfTextID)]
    }

    private static let symbolToByte: [UInt32: UInt8] = Dictionary(
        uniqueKeysWithValues: (0...255).map { (BPEVocabulary.byteSymbol(UInt8($0)).value, UInt8($0)) })

    private func bpe(_ bytes: [UInt8]) -> [Int32] {
        if let cached = cache.lookup(bytes) { return cached }
        let ids = bytes.withUnsafeBufferPointer { vocabulary.encodeWord($0) }
        cache.store(bytes, ids)
        return ids
    }

    /// Search order: `SDSCLIP_BPE_VOCAB`, then the module's resource bundle.
    static func locateVocabulary() throws(TokenizerError) -> URL {
        if let override = ProcessInfo.processInfo.environment[vocabularyEnvironmentKey], !override.isEmpty {
            return URL(fileURLWithPath: override)   // a missing file is reported by the loader with this path
        }
        var searched: [String] = []
        for directory in resourceDirectories() {
            let candidate = directory.appendingPathComponent(vocabularyFileName)
            searched.append(candidate.path)
            if FileManager.default.fileExists(atPath: candidate.path) { return candidate }
        }
        throw .vocabularyNotFound(searched: searched)
    }

    /// Where SwiftPM puts `Resources/` for this target. `Bundle.module` is not used because its
    /// generated accessor calls fatalError when the bundle is missing.
    private static func resourceDirectories() -> [URL] {
        let bundleName = "sdsclip_Models.resources"
        var roots: [URL] = [Bundle.main.bundleURL, Bundle.main.bundleURL.deletingLastPathComponent()]
        if let executable = Bundle.main.executableURL?.deletingLastPathComponent() { roots.append(executable) }
        for bundle in Bundle.allBundles + Bundle.allFrameworks {
            roots.append(bundle.bundleURL.deletingLastPathComponent())
        }
        var seen = Set<String>()
        return roots.flatMap { root in
            [root.appendingPathComponent(bundleName).appendingPathComponent("Resources"),
             root.appendingPathComponent(bundleName)]
        }.filter { seen.insert($0.path).inserted }
    }
}

@inline(__always)
private func appendUTF8(_ cp: UInt32, to bytes: inout [UInt8]) {
    switch cp {
    case 0..<0x80:
        bytes.append(UInt8(cp))
    case 0x80..<0x800:
        bytes.append(UInt8(0xC0 | (cp >> 6)))
        bytes.append(UInt8(0x80 | (cp & 0x3F)))
    case 0x800..<0x10000:
        bytes.append(UInt8(0xE0 | (cp >> 12)))
        bytes.append(UInt8(0x80 | ((cp >> 6) & 0x3F)))
        bytes.append(UInt8(0x80 | (cp & 0x3F)))
    default:
        bytes.append(UInt8(0xF0 | (cp >> 18)))
        bytes.append(UInt8(0x80 | ((cp >> 12) & 0x3F)))
        bytes.append(UInt8(0x80 | ((cp >> 6) & 0x3F)))
        bytes.append(UInt8(0x80 | (cp & 0x3F)))
    }
}

/// BPE results per pre-token, shared across copies of a tokenizer. Bounded so that a stream of
/// unique words cannot grow it without limit.
private final class WordCache: @unchecked Sendable {
    private let lock = NSLock()
    private var entries: [[UInt8]: [Int32]] = [:]
    private let capacity = 200_000

    func lookup(_ key: [UInt8]) -> [Int32]? {
        lock.lock(); defer { lock.unlock() }
        return entries[key]
    }

    func store(_ key: [UInt8], _ value: [Int32]) {
        lock.lock(); defer { lock.unlock() }
        if entries.count >= capacity { entries.removeAll(keepingCapacity: true) }
        entries[key] = value
    }
}
