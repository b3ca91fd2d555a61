// HTML character references, exactly as CPython 3.11 `html.unescape` and ftfy 6.3
// `fixes.unescape_html` decode them. Text is handled as arrays of code points.

enum HTMLUnescape {
    private static let html5 = parseEntityTable(TokenizerTables.html5Entities)
    private static let ftfyUppercase = parseEntityTable(TokenizerTables.ftfyUppercaseEntities)
    private static let invalidCharrefs = parseScalarMap(TokenizerTables.htmlInvalidCharrefs)
    private static let invalidCodepoints: Set<UInt32> = Set(
        TokenizerTables.htmlInvalidCodepoints.split(separator: " ").compactMap { UInt32($0, radix: 16) })

    private static let ampersand: UInt32 = 0x26, hash: UInt32 = 0x23, semicolon: UInt32 = 0x3B

    // MARK: Python html.unescape

    /// `html.unescape(s)`: regex `&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)`.
    static func pythonUnescape(_ text: [UInt32]) -> [UInt32] {
        guard text.contains(ampersand) else { return text }
        var out: [UInt32] = []
        out.reserveCapacity(text.count)
        var i = 0
        while i < text.count {
            if text[i] == ampersand, let (replacement, end) = charref(text, at: i + 1) {
                out.append(contentsOf: replacement)
                i = end
            } else {
                out.append(text[i])
                i += 1
            }
        }
        return out
    }

    /// Tries the charref alternatives at `start` (just after '&'); returns the replacement and the end index.
    private static func charref(_ text: [UInt32], at start: Int) -> ([UInt32], Int)? {
        guard start < text.count else { return nil }
        if text[start] == hash {
            var j = start + 1
            var isHex = false
            if j < text.count, text[j] == 0x78 || text[j] == 0x58 { isHex = true; j += 1 }
            // `#[0-9]+` is tried first; "&#x" only reaches the hex branch.
            if isHex, j < text.count, !isHexDigit(text[j]) { isHex = false; j = start + 1 }
            let digitsStart = j
            var value: UInt32 = 0
            let radix: UInt32 = isHex ? 16 : 10
            while j < text.count, let digit = digitValue(text[j], hex: isHex) {
                // Saturate: everything above 0x10FFFF decodes to U+FFFD. (CPython's int() refuses
                // more than 4300 digits and html.unescape then raises; we return U+FFFD instead.)
                value = value > 0x110000 ? value : value * radix + digit
                j += 1
            }
            guard j > digitsStart else { return nil }  // '#' is excluded from the named branch
            if j < text.count, text[j] == semicolon { j += 1 }
            return (numericReplacement(value), j)
        }
        var j = start
        while j < text.count, j - start < 32, !isNameTerminator(text[j]) { j += 1 }
        guard j > start else { return nil }
        if j < text.count, text[j] == semicolon { j += 1 }
        let name = Array(text[start..<j])
        return (namedReplacement(name), j)
    }

    private static func numericReplacement(_ value: UInt32) -> [UInt32] {
        if let fixed = invalidCharrefs[value] { return fixed }
        if (0xD800...0xDFFF).contains(value) || value > 0x10FFFF { return [0xFFFD] }
        if invalidCodepoints.contains(value) { return [] }
        return [value]
    }

    private static func namedReplacement(_ name: [UInt32]) -> [UInt32] {
        if let value = html5[asciiKey(name[...])] { return value }
        // Longest prefix of at least 2 characters (legacy names such as "amp", "not").
        var x = name.count - 1
        while x > 1 {
            if let value = html5[asciiKey(name[..<x])] { return value + name[x...] }
            x -= 1
        }
        return [ampersand] + name
    }

    // MARK: ftfy unescape_html

    /// ftfy `unescape_html`: `&#?[0-9A-Za-z]{1,24};` replaced from ftfy's entity table, numeric
    /// references through `html.unescape` only when that consumes the ';'.
    static func ftfyUnescape(_ text: [UInt32]) -> [UInt32] {
        guard text.contains(ampersand) else { return text }
        var out: [UInt32] = []
        out.reserveCapacity(text.count)
        var i = 0
        while i < text.count {
            guard text[i] == ampersand, let end = ftfyEntityEnd(text, at: i) else {
                out.append(text[i])
                i += 1
                continue
            }
            let entity = Array(text[i..<end])
            out.append(contentsOf: ftfyReplacement(entity))
            i = end
        }
        return out
    }

    /// End index (after ';') of an ftfy entity starting at the '&' at `i`, if one matches.
    private static func ftfyEntityEnd(_ text: [UInt32], at i: Int) -> Int? {
        var j = i + 1
        if j < text.count, text[j] == hash { j += 1 }
        let runStart = j
        while j < text.count, isASCIIAlphanumeric(text[j]) { j += 1 }
        let runLength = j - runStart
        guard runLength >= 1, runLength <= 24, j < text.count, text[j] == semicolon else { return nil }
        return j + 1
    }

    private static func ftfyReplacement(_ entity: [UInt32]) -> [UInt32] {
        let name = asciiKey(entity[1...])
        if entity[1] != hash {
            return html5[name] ?? ftfyUppercase[name] ?? entity   // every ftfy key ends in ';'
        }
        let decoded = pythonUnescape(entity)
        return decoded.contains(semicolon) ? entity : decoded
    }

    // MARK: Character helpers

    private static func asciiKey(_ scalars: ArraySlice<UInt32>) -> String {
        var result = String.UnicodeScalarView()
        for cp in scalars { if let scalar = Unicode.Scalar(cp) { result.append(scalar) } }
        return String(result)
    }

    @inline(__always) private static func isNameTerminator(_ cp: UInt32) -> Bool {
        cp == 0x09 || cp == 0x0A || cp == 0x0C || cp == 0x20 || cp == 0x3C || cp == ampersand || cp == hash || cp == semicolon
    }

    @inline(__always) private static func isASCIIAlphanumeric(_ cp: UInt32) -> Bool {
        (cp >= 0x30 && cp <= 0x39) || (cp >= 0x41 && cp <= 0x5A) || (cp >= 0x61 && cp <= 0x7A)
    }

    @inline(__always) private static func isHexDigit(_ cp: UInt32) -> Bool {
        digitValue(cp, hex: true) != nil
    }

    @inline(__always) private static func digitValue(_ cp: UInt32, hex: Bool) -> UInt32? {
        if cp >= 0x30 && cp <= 0x39 { return cp - 0x30 }
        guard hex else { return nil }
        if cp >= 0x61 && cp <= 0x66 { return cp - 0x61 + 10 }
        if cp >= 0x41 && cp <= 0x46 { return cp - 0x41 + 10 }
        return nil
    }
}
