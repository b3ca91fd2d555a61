import Foundation
import FuzzSupport
import Models

// A model folder's tokenizer: `vocab.json` and `merges.txt` (the input's two parts, split at
// FuzzInput.separator) read with transformers' rules, and the first part alone as an open_clip merges
// file (plain or gzip); each vocabulary that loads then tokenizes a few texts.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzVocabulary(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let parts = FuzzInput.parts(UnsafeRawBufferPointer(start: data, count: size), count: 2)
    let vocabulary = URL(fileURLWithPath: FuzzInput.scratchFile(parts[0], name: "vocab.json"))
    let merges = URL(fileURLWithPath: FuzzInput.scratchFile(parts[1], name: "merges.txt"))
    let mergesOnly = URL(fileURLWithPath: FuzzInput.scratchFile(parts[0], name: "bpe.txt"))
    var loaded: [BPEVocabulary] = []
    if let table = try? HuggingFaceVocabularyReader.read(vocabulary: vocabulary, merges: merges) { loaded.append(table) }
    if let table = try? BPEVocabulary(contentsOf: mergesOnly) { loaded.append(table) }
    for table in loaded {
        let tokenizer = CLIPTokenizer(vocabulary: table)
        for text in ["a red circle left of a blue square", "ÿ\u{0}<|endoftext|>", "  !!  ", "日本語のテキスト 123"] {
            let ids = tokenizer.encode(text)
            _ = tokenizer.decode(ids)
            _ = try? tokenizer.tokenize(text)
        }
    }
    return 0
}
