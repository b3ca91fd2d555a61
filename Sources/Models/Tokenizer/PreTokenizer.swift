/// open_clip's pre-tokenisation regex, as a scanner over lower-cased code points:
///
///     <start_of_text>|<end_of_text>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
///
/// compiled by the `regex` module with IGNORECASE and applied with `findall`: leftmost match,
/// alternatives tried in order, whitespace never matched. Character classes are the tables
/// dumped from `regex` itself, so they agree with it rather than with Swift's Unicode data.
/// A few characters (e.g. U+0345, which case-folds to a letter) match no alternative and are
/// skipped like whitespace.
enum PreToken: Equatable {
    case special(Int32)       // start / end of text typed in the text
    case piece(Range<Int>)    // a span of the input to byte-encode and BPE
}

enum PreTokenizer {
    /// A special token's spelling (open_clip's "<start_of_text>", transformers' "<|startoftext|>") and its id.
    struct Special {
        let pattern: [UInt32]
        let id: Int32
        init(_ text: String, _ id: Int32) {
            pattern = text.lowercased().unicodeScalars.map(\.value)
            self.id = id
        }
    }
    // Contraction suffixes after the apostrophe, in the regex's order.
    private static let contractions: [[UInt32]] = ["s", "t", "re", "ve", "m", "ll", "d"]
        .map { $0.unicodeScalars.map(\.value) }

    static func split(_ text: [UInt32], specials: [Special]) -> [PreToken] {
        var tokens: [PreToken] = []
        let letter = PythonUnicode.regexLetter, number = PythonUnicode.regexNumber, other = PythonUnicode.regexOther
        var i = 0
        let n = text.count
        while i < n {
            if let (id, length) = matchSpecial(text, at: i, specials) {
                tokens.append(.special(id))
                i += length
                continue
            }
            let cp = text[i]
            if cp == 0x27, let length = matchContraction(text, at: i) {
                tokens.append(.piece(i..<(i + length)))
                i += length
            } else if letter.contains(cp) {
                var j = i + 1
                while j < n, letter.contains(text[j]) { j += 1 }
                tokens.append(.piece(i..<j))
                i = j
            } else if number.contains(cp) {
                tokens.append(.piece(i..<(i + 1)))   // digits are one token each
                i += 1
            } else if other.contains(cp) {
                var j = i + 1
                while j < n, other.contains(text[j]) { j += 1 }
                tokens.append(.piece(i..<j))
                i = j
            } else {
                i += 1
            }
        }
        return tokens
    }

    private static func matchSpecial(_ text: [UInt32], at i: Int, _ specials: [Special]) -> (Int32, Int)? {
        guard text[i] == 0x3C else { return nil }
        for special in specials where matchesIgnoringCase(text, at: i, special.pattern) {
            return (special.id, special.pattern.count)
        }
        return nil
    }

    private static func matchContraction(_ text: [UInt32], at i: Int) -> Int? {
        for suffix in contractions where matchesIgnoringCase(text, at: i + 1, suffix) {
            return suffix.count + 1
        }
        return nil
    }

    /// `regex` IGNORECASE (simple case folding) against an ASCII lower-case pattern: a letter
    /// also matches its upper case, and 's' also matches U+017F LATIN SMALL LETTER LONG S
    /// (the only non-ASCII fold among these letters; checked in tools/make_tokenizer_tables.py's run).
    private static func matchesIgnoringCase(_ text: [UInt32], at start: Int, _ pattern: [UInt32]) -> Bool {
        guard start + pattern.count <= text.count else { return false }
        for (offset, p) in pattern.enumerated() {
            let cp = text[start + offset]
            if cp == p { continue }
            let isLowerLetter = p >= 0x61 && p <= 0x7A
            if isLowerLetter && (cp == p - 0x20 || (p == 0x73 && cp == 0x17F)) { continue }
            return false
        }
        return true
    }
}
