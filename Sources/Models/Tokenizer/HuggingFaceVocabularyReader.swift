import Foundation
import WeightsIO

/// Reads the tokenizer files Hugging Face CLIP folders ship, `vocab.json` (token → id) and `merges.txt`
/// (a version line, then one "left right" merge per line in rank order), with transformers'
/// `CLIPTokenizer` semantics: byte-level BPE over `bytes_to_unicode` symbols with "</w>" word ends;
/// merges past line 48,895 are ignored and a later duplicate merge takes the later rank (as its
/// `merges[1:49152-256-2+1]` and `dict(zip(merges, range))`); a piece the vocabulary lacks becomes
/// `<|endoftext|>` (its default `unk_token`). Start and end of text are the vocabulary's
/// `<|startoftext|>` and `<|endoftext|>`, and are recognised in text in that spelling.
public enum HuggingFaceVocabularyReader {
    public static let vocabularyFile = "vocab.json"
    public static let mergesFile = "merges.txt"
    public static let startOfText = "<|startoftext|>"
    public static let endOfText = "<|endoftext|>"
    /// Ids are dense, so this bounds the tables a hostile file can make us allocate.
    static let maximumTokens = 1 << 22

    /// Whether `folder` holds both files.
    public static func isPresent(in folder: String) -> Bool {
        let manager = FileManager.default
        return manager.fileExists(atPath: (folder as NSString).appendingPathComponent(vocabularyFile))
            && manager.fileExists(atPath: (folder as NSString).appendingPathComponent(mergesFile))
    }

    public static func read(folder: String) throws(TokenizerError) -> BPEVocabulary {
        try read(vocabulary: URL(fileURLWithPath: (folder as NSString).appendingPathComponent(vocabularyFile)),
                 merges: URL(fileURLWithPath: (folder as NSString).appendingPathComponent(mergesFile)))
    }

    public static func read(vocabulary vocabularyURL: URL, merges mergesURL: URL) throws(TokenizerError) -> BPEVocabulary {
        var tokenTexts = try tokens(vocabularyURL)
        let tokenCount = tokenTexts.count
        let path = vocabularyURL.path
        var idOfText: [[UInt8]: Int32] = [:]
        idOfText.reserveCapacity(tokenCount)
        for (id, text) in tokenTexts.enumerated() { idOfText[Array(text.utf8)] = Int32(id) }
        guard let start = idOfText[Array(startOfText.utf8)], let end = idOfText[Array(endOfText.utf8)] else {
            throw .invalidVocabulary(path: path, line: 1, reason: "expected the special tokens \"\(startOfText)\" and \"\(endOfText)\"")
        }
        /// The id of a symbol's text, adding it past the vocabulary when a merge needs one it lacks.
        func symbol(_ bytes: [UInt8]) -> Int32 {
            if let id = idOfText[bytes] { return id }
            let id = Int32(tokenTexts.count)
            idOfText[bytes] = id
            tokenTexts.append(String(decoding: bytes, as: UTF8.self))
            return id
        }
        var byteSymbolID = [Int32](repeating: 0, count: 512)
        for byte in 0...255 {
            let text = Array(String(Character(BPEVocabulary.byteSymbol(UInt8(byte)))).utf8)
            byteSymbolID[byte] = symbol(text)
            byteSymbolID[256 + byte] = symbol(text + Array("</w>".utf8))
        }

        let mergesPath = mergesURL.path
        let raw = try BPEVocabulary.read(mergesURL)
        var lines = LineReader([UInt8](raw))
        guard let header = lines.next(), header.first == UInt8(ascii: "#") else {
            throw .invalidVocabulary(path: mergesPath, line: 1, reason: "expected the version line \"#version: 0.2\" (transformers skips the first line)")
        }
        var merges: [UInt64: BPEVocabulary.Merge] = [:]
        var mergeLines: [String] = []
        var lineNumber = 1
        while mergeLines.count < BPEVocabulary.mergeCount, let line = lines.next() {
            lineNumber += 1
            guard String(validating: line, as: UTF8.self) != nil else {
                throw .invalidVocabulary(path: mergesPath, line: lineNumber, reason: "not valid UTF-8")
            }
            let parts = BPEVocabulary.mergeParts(line)
            if parts.isEmpty { continue }
            guard parts.count == 2 else {
                throw .invalidVocabulary(path: mergesPath, line: lineNumber,
                                         reason: "expected two space-separated symbols, found \(parts.count)")
            }
            let left = symbol(Array(parts[0])), right = symbol(Array(parts[1]))
            let result = symbol(Array(parts[0]) + Array(parts[1]))
            merges[BPEVocabulary.pairKey(left, right)] = BPEVocabulary.Merge(rank: Int32(mergeLines.count), result: result)
            mergeLines.append(String(decoding: parts[0], as: UTF8.self) + " " + String(decoding: parts[1], as: UTF8.self))
        }
        return BPEVocabulary(byteSymbolID: byteSymbolID, merges: merges, tokenTexts: tokenTexts, tokenCount: tokenCount,
                             startOfTextID: start, endOfTextID: end, unknownID: end,
                             specialTexts: (startOfText, endOfText), mergeLines: mergeLines)
    }

    /// `vocab.json` as token texts in id order: a JSON object of strings to the ids 0..<n, each once.
    static func tokens(_ url: URL) throws(TokenizerError) -> [String] {
        let path = url.path
        let data = try BPEVocabulary.read(url)
        let value: JSONValue
        do {
            value = try JSONParser.parse([UInt8](data))
        } catch {
            throw .invalidVocabulary(path: path, line: line(of: error.offset, in: data), reason: "not valid JSON: \(error.message)")
        }
        guard let entries = value.objectValue else {
            throw .invalidVocabulary(path: path, line: 1, reason: "expected a JSON object of token → id, found \(value.kindName)")
        }
        guard entries.count > 0, entries.count <= maximumTokens else {
            throw .invalidVocabulary(path: path, line: 1, reason: "expected 1 to \(maximumTokens) tokens, found \(entries.count)")
        }
        var texts = [String?](repeating: nil, count: entries.count)
        for (text, member) in entries.members {
            guard let id = member.numberValue?.int64Value, id >= 0 else {
                throw .invalidVocabulary(path: path, line: line(ofKey: text, in: data),
                                         reason: "token \"\(text)\" has id \(String(decoding: JSONWriter.encode(member), as: UTF8.self)); expected a non-negative integer")
            }
            guard id < entries.count else {
                throw .invalidVocabulary(path: path, line: line(ofKey: text, in: data),
                                         reason: "token \"\(text)\" has id \(id); the \(entries.count) ids must be 0 to \(entries.count - 1)")
            }
            if let other = texts[Int(id)] {
                throw .invalidVocabulary(path: path, line: line(ofKey: text, in: data),
                                         reason: "tokens \"\(other)\" and \"\(text)\" both have id \(id)")
            }
            texts[Int(id)] = text
        }
        return texts.map { $0 ?? "" }   // every slot is filled: n distinct ids below n
    }

    /// 1-based line of a byte offset.
    static func line(of offset: Int, in data: Data) -> Int {
        1 + data.prefix(max(0, offset)).reduce(0) { $0 + ($1 == 0x0A ? 1 : 0) }
    }

    /// The line where a key is written (its JSON string, unescaped text searched as is), for messages.
    static func line(ofKey key: String, in data: Data) -> Int {
        let needle = Data(("\"" + key + "\"").utf8)
        guard let range = data.range(of: needle) else { return 1 }
        return line(of: range.lowerBound - data.startIndex, in: data)
    }
}
