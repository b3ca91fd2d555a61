import CZlib
import Foundation
import WeightsIO

/// A CLIP byte-level BPE table: the built-in `bpe_simple_vocab_16e6.txt(.gz)` (lines 1…48,894 are merges) or a
/// model folder's `vocab.json` + `merges.txt` (`init(huggingFaceVocabulary:merges:)`).
///
/// The built-in ids follow open_clip's `SimpleTokenizer`: 256 byte symbols (in `bytes_to_unicode`
/// order), the same 256 with "</w>", then one id per merge in rank order (the merged token of
/// rank r has id 512 + r), then start/end of text. A folder's ids are whatever its `vocab.json` says.
/// Symbols are kept as ids, so BPE never builds strings.
public struct BPEVocabulary: Sendable {
    public static let mergeCount = 49152 - 256 - 2   // 48,894, `merges[1:49152-256-2+1]`
    public static let size = 512 + mergeCount + 2     // 49,408: the built-in vocabulary

    /// One merge: its rank (lower merges first) and the symbol it makes.
    struct Merge: Sendable {
        let rank: Int32
        let result: Int32
    }

    /// Byte b → id of its bytes_to_unicode symbol (index b) and of that symbol + "</w>" (index 256 + b).
    let byteSymbolID: [Int32]
    /// (left id << 32 | right id) → merge.
    let merges: [UInt64: Merge]
    /// Symbol id → text (byte symbols, "</w>" marks a word end). Ids below `tokenCount` are the vocabulary's
    /// tokens; ids past it are strings a merge builds that the vocabulary lacks (they encode as `unknownID`).
    let tokenTexts: [String]
    /// The number of tokens: the ids a text tower's embedding table must cover.
    public let tokenCount: Int
    public let startOfTextID: Int32
    public let endOfTextID: Int32
    let unknownID: Int32
    /// How start and end of text are written in text (open_clip's or transformers' spelling).
    let specialTexts: (start: String, end: String)
    /// The merges in rank order as lines of a merges file ("left right"), without the version header.
    public let mergeLines: [String]

    /// Loads a gzip-compressed or plain merges file.
    public init(contentsOf url: URL) throws(TokenizerError) {
        let path = url.path
        let raw = try Self.read(url)
        let bytes = raw.starts(with: [0x1F, 0x8B]) ? try Gunzip.decompress(raw, path: path) : [UInt8](raw)
        try self.init(mergesText: bytes, path: path)
    }

    static func read(_ url: URL) throws(TokenizerError) -> Data {
        do {
            return Data(try InputFile.readAll(url.path))  // regular files only: never block on a FIFO
        } catch {
            if !FileManager.default.fileExists(atPath: url.path) { throw .vocabularyNotFound(searched: [url.path]) }
            throw .unreadableVocabulary(path: url.path, reason: (error as? WeightsError)?.message ?? error.localizedDescription)
        }
    }

    /// Parses the decompressed text. `path` only labels errors.
    init(mergesText bytes: [UInt8], path: String) throws(TokenizerError) {
        let byteOrder = Self.bytesToUnicodeOrder()
        var byteSymbolID = [Int32](repeating: 0, count: 512)
        var tokenTexts: [String] = []
        tokenTexts.reserveCapacity(Self.size)
        for (index, byte) in byteOrder.enumerated() {
            byteSymbolID[Int(byte)] = Int32(index)
            byteSymbolID[256 + Int(byte)] = Int32(256 + index)
            tokenTexts.append(String(Character(Self.byteSymbol(byte))))
        }
        tokenTexts += tokenTexts.map { $0 + "</w>" }

        // Keyed by UTF-8 bytes: exact (String equality is canonical equivalence) and fast to hash.
        var idOfText: [[UInt8]: Int32] = [:]
        idOfText.reserveCapacity(Self.size)
        for (id, text) in tokenTexts.enumerated() { idOfText[Array(text.utf8)] = Int32(id) }

        var merges: [UInt64: Merge] = [:]
        merges.reserveCapacity(Self.mergeCount)
        var mergeLines: [String] = []
        mergeLines.reserveCapacity(Self.mergeCount)
        var lines = LineReader(bytes)
        _ = lines.next()   // "#version: 0.2" header
        for rank in 0..<Self.mergeCount {
            let lineNumber = rank + 2
            guard let line = lines.next() else {
                throw .invalidVocabulary(path: path, line: lineNumber,
                                         reason: "file ends after \(rank) merges; expected \(Self.mergeCount)")
            }
            guard let text = String(validating: line, as: UTF8.self) else {
                throw .invalidVocabulary(path: path, line: lineNumber, reason: "not valid UTF-8")
            }
            let parts = Self.mergeParts(line)
            guard parts.count == 2 else {
                throw .invalidVocabulary(path: path, line: lineNumber,
                                         reason: "expected two space-separated symbols, found \(parts.count)")
            }
            guard let left = idOfText[Array(parts[0])], let right = idOfText[Array(parts[1])] else {
                throw .invalidVocabulary(path: path, line: lineNumber,
                                         reason: "merge \"\(text)\" uses a symbol no earlier line defines")
            }
            let merged = Array(parts[0]) + Array(parts[1])
            guard idOfText.updateValue(Int32(512 + rank), forKey: merged) == nil else {
                throw .invalidVocabulary(path: path, line: lineNumber,
                                         reason: "duplicate token \"\(String(decoding: merged, as: UTF8.self))\"")
            }
            guard merges.updateValue(Merge(rank: Int32(rank), result: Int32(512 + rank)), forKey: Self.pairKey(left, right)) == nil else {
                throw .invalidVocabulary(path: path, line: lineNumber, reason: "duplicate merge \"\(text)\"")
            }
            tokenTexts.append(String(decoding: merged, as: UTF8.self))
            mergeLines.append(String(decoding: parts[0], as: UTF8.self) + " " + String(decoding: parts[1], as: UTF8.self))
        }
        tokenTexts += ["<start_of_text>", "<end_of_text>"]
        self.byteSymbolID = byteSymbolID
        self.merges = merges
        self.tokenTexts = tokenTexts
        self.tokenCount = Self.size
        self.startOfTextID = Int32(Self.size - 2)
        self.endOfTextID = Int32(Self.size - 1)
        self.unknownID = endOfTextID
        self.specialTexts = ("<start_of_text>", "<end_of_text>")
        self.mergeLines = mergeLines
    }

    /// Symbols never contain whitespace (bytes_to_unicode avoids it), so ASCII whitespace splits.
    static func mergeParts(_ line: ArraySlice<UInt8>) -> [ArraySlice<UInt8>] {
        line.split(whereSeparator: { $0 == 0x20 || (0x09...0x0D).contains($0) })
    }

    /// A vocabulary from its parts (`HuggingFaceVocabularyReader` builds one from a folder's files).
    init(byteSymbolID: [Int32], merges: [UInt64: Merge], tokenTexts: [String], tokenCount: Int, startOfTextID: Int32,
         endOfTextID: Int32, unknownID: Int32, specialTexts: (start: String, end: String), mergeLines: [String]) {
        self.byteSymbolID = byteSymbolID
        self.merges = merges
        self.tokenTexts = tokenTexts
        self.tokenCount = tokenCount
        self.startOfTextID = startOfTextID
        self.endOfTextID = endOfTextID
        self.unknownID = unknownID
        self.specialTexts = specialTexts
        self.mergeLines = mergeLines
    }

    /// Every token's text in id order as transformers' `CLIPTokenizer` spells it in `vocab.json`
    /// (byte symbols, "</w>" word ends, merged tokens, and "<|startoftext|>" and "<|endoftext|>").
    public var huggingFaceTokens: [String] {
        var tokens = Array(tokenTexts[0..<tokenCount])
        tokens[Int(startOfTextID)] = HuggingFaceVocabularyReader.startOfText
        tokens[Int(endOfTextID)] = HuggingFaceVocabularyReader.endOfText
        return tokens
    }

    /// `bytes_to_unicode` key order: printable Latin-1 first, then the other 68 bytes.
    static func bytesToUnicodeOrder() -> [UInt8] {
        let all = (0...255).map { UInt8($0) }
        return all.filter(isPrintable) + all.filter { !isPrintable($0) }
    }

    /// The visible stand-in for a byte: itself if printable, else U+0100 + its rank among the rest.
    static func byteSymbol(_ byte: UInt8) -> Unicode.Scalar {
        if isPrintable(byte) { return Unicode.Scalar(byte) }
        let rank = (0..<byte).filter { !isPrintable($0) }.count
        return Unicode.Scalar(UInt8(0)).withOffset(0x100 + rank)
    }

    private static func isPrintable(_ byte: UInt8) -> Bool {
        (0x21...0x7E).contains(byte) || (0xA1...0xAC).contains(byte) || (0xAE...0xFF).contains(byte)
    }

    /// Byte-pair encodes one pre-token (its UTF-8 bytes); returns vocabulary ids.
    func encodeWord(_ bytes: UnsafeBufferPointer<UInt8>) -> [Int32] {
        guard let last = bytes.last else { return [] }
        var symbols = [Int32]()
        symbols.reserveCapacity(bytes.count)
        for byte in bytes.dropLast() { symbols.append(byteSymbolID[Int(byte)]) }
        symbols.append(byteSymbolID[256 + Int(last)])
        while symbols.count > 1 {
            // Lowest-ranked adjacent pair present in the table.
            var bestRank = Int32.max, bestIndex = -1, merged: Int32 = 0
            for i in 0..<(symbols.count - 1) {
                if let merge = merges[Self.pairKey(symbols[i], symbols[i + 1])], merge.rank < bestRank {
                    bestRank = merge.rank
                    bestIndex = i
                    merged = merge.result
                }
            }
            if bestIndex < 0 { break }
            // Merge every non-overlapping occurrence, left to right (as CLIP's `bpe`).
            let left = symbols[bestIndex], right = symbols[bestIndex + 1]
            var out = [Int32]()
            out.reserveCapacity(symbols.count - 1)
            var i = 0
            while i < symbols.count {
                if i + 1 < symbols.count, symbols[i] == left, symbols[i + 1] == right {
                    out.append(merged)
                    i += 2
                } else {
                    out.append(symbols[i])
                    i += 1
                }
            }
            symbols = out
        }
        // Strings the merges build but the vocabulary lacks become the unknown token (transformers' `unk_token`).
        if tokenCount < tokenTexts.count {
            for i in symbols.indices where Int(symbols[i]) >= tokenCount { symbols[i] = unknownID }
        }
        return symbols
    }

    @inline(__always) static func pairKey(_ a: Int32, _ b: Int32) -> UInt64 {
        UInt64(UInt32(bitPattern: a)) << 32 | UInt64(UInt32(bitPattern: b))
    }
}

/// Splits bytes on "\n" without copying.
struct LineReader {
    private let bytes: [UInt8]
    private var position = 0
    init(_ bytes: [UInt8]) { self.bytes = bytes }

    /// The empty piece after a final "\n" is not a line.
    mutating func next() -> ArraySlice<UInt8>? {
        guard position < bytes.count else { return nil }
        let end = bytes[position...].firstIndex(of: 0x0A) ?? bytes.count
        defer { position = end + 1 }
        return bytes[position..<end]
    }
}

/// One-shot gzip decompression with zlib.
enum Gunzip {
    static func decompress(_ data: Data, path: String) throws(TokenizerError) -> [UInt8] {
        var stream = z_stream()
        // 16 + MAX_WBITS: expect a gzip header and trailer (checks CRC-32 and length).
        guard inflateInit2_(&stream, 16 + 15, zlibVersion(), Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw .corruptCompressedVocabulary(path: path, offset: 0, reason: "zlib initialisation failed")
        }
        defer { inflateEnd(&stream) }
        var output = [UInt8]()
        output.reserveCapacity(data.count * 3)
        var chunk = [UInt8](repeating: 0, count: 1 << 18)
        let input = [UInt8](data)
        var status: Int32 = Z_OK
        input.withUnsafeBufferPointer { inputBuffer in
            stream.next_in = UnsafeMutablePointer(mutating: inputBuffer.baseAddress)
            stream.avail_in = UInt32(inputBuffer.count)
            repeat {
                chunk.withUnsafeMutableBufferPointer { chunkBuffer in
                    stream.next_out = chunkBuffer.baseAddress
                    stream.avail_out = UInt32(chunkBuffer.count)
                    status = inflate(&stream, Z_NO_FLUSH)
                    output.append(contentsOf: chunkBuffer[0..<(chunkBuffer.count - Int(stream.avail_out))])
                }
            } while status == Z_OK
        }
        guard status == Z_STREAM_END else {
            let offset = Int(stream.total_in)
            let reason: String
            switch status {
            case Z_BUF_ERROR: reason = "stream truncated"
            case Z_DATA_ERROR: reason = stream.msg.map { String(cString: $0) } ?? "invalid compressed data"
            case Z_MEM_ERROR: reason = "out of memory"
            default: reason = "zlib status \(status)"
            }
            throw .corruptCompressedVocabulary(path: path, offset: offset, reason: reason)
        }
        return output
    }
}

private extension Unicode.Scalar {
    /// U+0100…U+0143 are always valid scalars; used for the 68 non-printable bytes.
    func withOffset(_ offset: Int) -> Unicode.Scalar {
        Unicode.Scalar(UInt32(Int(value) + offset)) ?? "?"
    }
}
