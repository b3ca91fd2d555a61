/// Everything that can go wrong loading the vocabulary or tokenizing, with enough context to act on.
public enum TokenizerError: Error, Equatable, CustomStringConvertible {
    /// No vocabulary at any searched location.
    case vocabularyNotFound(searched: [String])
    /// The file named by `SDSCLIP_BPE_VOCAB` is missing or bad; `problem` says how.
    case environmentVocabularyUnusable(variable: String, path: String, problem: String)
    /// The file exists but could not be read.
    case unreadableVocabulary(path: String, reason: String)
    /// A gzip stream that zlib rejects; `offset` is the compressed byte offset reached.
    case corruptCompressedVocabulary(path: String, offset: Int, reason: String)
    /// Decompressed content that is not a CLIP merges file; `line` is 1-based in the text.
    case invalidVocabulary(path: String, line: Int, reason: String)
    /// `contextLength` must be at least 1 (room for the end-of-text token).
    case invalidContextLength(Int)
    /// `truncate: false` and the text needs more than `contextLength` tokens.
    case textTooLong(text: String, tokens: Int, contextLength: Int)

    public var description: String {
        switch self {
        case .vocabularyNotFound(let searched):
            return "CLIP BPE vocabulary not found; looked in: \(searched.joined(separator: ", ")) "
                + "(set SDSCLIP_BPE_VOCAB to a copy of bpe_simple_vocab_16e6.txt.gz, or keep sdsclip_Models.resources beside the binary)"
        case .environmentVocabularyUnusable(let variable, let path, let problem):
            return "\(variable)=\(path) cannot be used: \(problem); set \(variable) to a CLIP BPE vocabulary "
                + "(bpe_simple_vocab_16e6.txt.gz, gzipped or plain), or unset it to use the one shipped with sdsclip"
        case .unreadableVocabulary(let path, let reason):
            return "cannot read CLIP BPE vocabulary \(path): \(reason)"
        case .corruptCompressedVocabulary(let path, let offset, let reason):
            return "corrupt gzip data in CLIP BPE vocabulary \(path) at compressed byte \(offset): \(reason)"
        case .invalidVocabulary(let path, let line, let reason):
            return "invalid CLIP BPE vocabulary \(path), line \(line): \(reason)"
        case .invalidContextLength(let length):
            return "context length \(length) is invalid; expected at least 1"
        case .textTooLong(let text, let tokens, let contextLength):
            let preview = text.count > 60 ? String(text.prefix(60)) + "…" : text
            return "text needs \(tokens) tokens, more than the context length \(contextLength) "
                + "(truncate is off): \"\(preview)\""
        }
    }
}
