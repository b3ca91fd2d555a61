import Foundation

/// open_clip's `_clean_lower`: `whitespace_clean(basic_clean(text)).lower()`, where
/// `basic_clean` is `ftfy.fix_text` + `html.unescape` twice + `strip`.
///
/// ftfy 6.3 `fix_text` (default config) is reproduced step by step, in its order and with its
/// line-by-line segmenting and fixed-point loop: `unescape_html="auto"` (off for the rest of
/// the text once a segment contains '<'), `fix_c1_controls`, `fix_latin_ligatures`,
/// `fix_character_width`, `uncurl_quotes`, `fix_line_breaks`, `remove_terminal_escapes`,
/// `remove_control_chars` and NFC. Character tables come from the reference interpreter
/// (tools/make_tokenizer_tables.py).
///
/// Not reproduced (rare in real captions; documented in Resources/README.md):
/// - `fix_encoding` (mojibake detection by ftfy's badness heuristic and re-decoding through
///   latin-1/windows-125x/macroman/cp437, with its sub-steps `restore_byte_a0`,
///   `replace_lossy_sequences`, `decode_inconsistent_utf8`). Text such as "cafÃ©" stays as is.
/// - `fix_surrogates`: Swift strings cannot hold lone surrogates, so there is nothing to fix.
/// - NFC uses Swift's Unicode tables (16.0) rather than CPython 3.11's (14.0); they differ only
///   for characters assigned after Unicode 14.
struct TextCleaner: Sendable {
    private static let ligatures = parseScalarMap(TokenizerTables.ftfyLigatures)
    private static let widthMap = parseScalarMap(TokenizerTables.ftfyWidthMap)
    private static let c1Controls = parseScalarMap(TokenizerTables.ftfyC1Controls)
    private static let controlChars = ScalarSet(ranges: TokenizerTables.ftfyControlChars)
    /// Every code point one of the per-character fixers changes (C1, ligatures, width, quotes).
    private static let mappedChars: Set<UInt32> = Set(c1Controls.keys).union(ligatures.keys).union(widthMap.keys)
        .union([0x2BC, 0x2018, 0x2019, 0x201A, 0x201B, 0x201C, 0x201D, 0x201E, 0x201F])

    private static let newline: UInt32 = 0x0A
    private static let ftfyMaxSegment = 1_000_000   // ftfy `max_decode_length`

    /// The full clean-up; returns code points ready for pre-tokenisation.
    func clean(_ text: String) -> [UInt32] {
        var scalars = text.unicodeScalars.map(\.value)
        scalars = Self.fixText(scalars)
        scalars = HTMLUnescape.pythonUnescape(HTMLUnescape.pythonUnescape(scalars))
        scalars = Self.collapseWhitespace(scalars)   // strip + " ".join(split()) + strip
        return PythonUnicode.lower(scalars)
    }

    // MARK: ftfy.fix_text

    static func fixText(_ text: [UInt32]) -> [UInt32] {
        var out: [UInt32] = []
        out.reserveCapacity(text.count)
        var unescapeHTML = true   // "auto"; once disabled it stays disabled, as in ftfy
        var position = 0
        while position < text.count {
            var end = text[position...].firstIndex(of: newline).map { $0 + 1 } ?? text.count
            if end - position > ftfyMaxSegment { end = position + ftfyMaxSegment }
            let segment = Array(text[position..<end])
            if unescapeHTML, segment.contains(0x3C) { unescapeHTML = false }
            out.append(contentsOf: fixSegment(segment, unescapeHTML: unescapeHTML))
            position = end
        }
        return out
    }

    /// ftfy `fix_and_explain`: apply the fixers until the text stops changing.
    private static func fixSegment(_ segment: [UInt32], unescapeHTML: Bool) -> [UInt32] {
        var text = segment
        while true {
            let original = text
            if unescapeHTML { text = HTMLUnescape.ftfyUnescape(text) }
            text = translate(text) { cp in
                // c1 controls, ligatures, width, quotes are independent per-character maps applied
                // in sequence; compose them for a single pass.
                var mapped: [UInt32] = [cp]
                if let c1 = c1Controls[cp] { mapped = c1 }
                mapped = mapped.flatMap { ligatures[$0] ?? [$0] }
                mapped = mapped.flatMap { widthMap[$0] ?? [$0] }
                return mapped.map(uncurl)
            }
            text = fixLineBreaks(text)
            text = removeTerminalEscapes(text)
            text.removeAll(where: controlChars.contains)
            text = nfc(text)
            if text == original { return text }
        }
    }

    /// Applies a per-character mapping, with a fast path for characters no table touches.
    private static func translate(_ text: [UInt32], _ map: (UInt32) -> [UInt32]) -> [UInt32] {
        var out: [UInt32] = []
        out.reserveCapacity(text.count)
        for cp in text {
            if cp < 0x80 || !mappedChars.contains(cp) {
                out.append(cp)
            } else {
                out.append(contentsOf: map(cp))
            }
        }
        return out
    }

    @inline(__always) private static func uncurl(_ cp: UInt32) -> UInt32 {
        if cp == 0x2BC || (0x2018...0x201B).contains(cp) { return 0x27 }
        if (0x201C...0x201F).contains(cp) { return 0x22 }
        return cp
    }

    /// CRLF, CR, U+2028, U+2029 and U+0085 all become "\n".
    private static func fixLineBreaks(_ text: [UInt32]) -> [UInt32] {
        var out: [UInt32] = []
        out.reserveCapacity(text.count)
        var i = 0
        while i < text.count {
            let cp = text[i]
            switch cp {
            case 0x0D:
                out.append(newline)
                if i + 1 < text.count, text[i + 1] == newline { i += 1 }
            case 0x2028, 0x2029, 0x85:
                out.append(newline)
            default:
                out.append(cp)
            }
            i += 1
        }
        return out
    }

    /// Removes `\x1b\[((?:\d|;)*)([a-zA-Z])` (ANSI escapes; `\d` is Unicode Nd).
    private static func removeTerminalEscapes(_ text: [UInt32]) -> [UInt32] {
        guard text.contains(0x1B) else { return text }
        var out: [UInt32] = []
        out.reserveCapacity(text.count)
        var i = 0
        while i < text.count {
            if text[i] == 0x1B, i + 1 < text.count, text[i + 1] == 0x5B {
                var j = i + 2
                while j < text.count, text[j] == 0x3B || PythonUnicode.decimal.contains(text[j]) { j += 1 }
                if j < text.count, isASCIILetter(text[j]) {
                    i = j + 1
                    continue
                }
            }
            out.append(text[i])
            i += 1
        }
        return out
    }

    @inline(__always) private static func isASCIILetter(_ cp: UInt32) -> Bool {
        (cp >= 0x41 && cp <= 0x5A) || (cp >= 0x61 && cp <= 0x7A)
    }

    /// NFC. Code points below U+0300 are NFC-stable and never compose with a neighbour,
    /// so pure Latin-1 text skips the (allocating) Foundation call.
    private static func nfc(_ text: [UInt32]) -> [UInt32] {
        guard text.contains(where: { $0 >= 0x300 }) else { return text }
        var view = String.UnicodeScalarView()
        for cp in text { if let scalar = Unicode.Scalar(cp) { view.append(scalar) } }
        return String(view).precomposedStringWithCanonicalMapping.unicodeScalars.map(\.value)
    }

    // MARK: whitespace

    /// `" ".join(text.split()).strip()` after `strip()`: runs of `str.isspace` characters
    /// become one space; leading and trailing ones vanish.
    static func collapseWhitespace(_ text: [UInt32]) -> [UInt32] {
        var out: [UInt32] = []
        out.reserveCapacity(text.count)
        var pendingSpace = false
        for cp in text {
            if PythonUnicode.isSpace(cp) {
                pendingSpace = !out.isEmpty
            } else {
                if pendingSpace { out.append(0x20); pendingSpace = false }
                out.append(cp)
            }
        }
        return out
    }
}
