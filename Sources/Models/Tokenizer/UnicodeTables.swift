// Fast lookups over the Python-derived tables in TokenizerTables.generated.swift.
// Parsed once (static lets are lazily and thread-safely initialised).

/// A set of code points: a bitmap for the BMP, binary search over ranges above it.
struct ScalarSet: Sendable {
    private let bmpBits: [UInt64]                 // 65536 bits
    private let astral: [ClosedRange<UInt32>]     // sorted ranges above U+FFFF

    init(ranges text: String) {
        var bits = [UInt64](repeating: 0, count: 1024)
        var astral: [ClosedRange<UInt32>] = []
        for item in text.split(whereSeparator: { $0 == " " || $0 == "\n" }) {
            let bounds = item.split(separator: "-")
            guard bounds.count == 2, let lo = UInt32(bounds[0], radix: 16),
                  let hi = UInt32(bounds[1], radix: 16), lo <= hi else {
                preconditionFailure("malformed generated table entry \(item)")  // build-time data, not input
            }
            var cp = lo
            while cp <= min(hi, 0xFFFF) {
                bits[Int(cp >> 6)] |= 1 << UInt64(cp & 63)
                cp += 1
            }
            if hi > 0xFFFF { astral.append(max(lo, 0x10000)...hi) }
        }
        self.bmpBits = bits
        self.astral = astral
    }

    @inline(__always)
    func contains(_ cp: UInt32) -> Bool {
        if cp <= 0xFFFF { return bmpBits[Int(cp >> 6)] & (1 << UInt64(cp & 63)) != 0 }
        var lo = 0, hi = astral.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if astral[mid].upperBound < cp { lo = mid + 1 } else { hi = mid }
        }
        return lo < astral.count && astral[lo].contains(cp)
    }
}

/// Parses `K:V1,V2 K:V …` (hex) into a code point → replacement map.
func parseScalarMap(_ text: String) -> [UInt32: [UInt32]] {
    var map: [UInt32: [UInt32]] = [:]
    for item in text.split(whereSeparator: { $0 == " " || $0 == "\n" }) {
        let parts = item.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, let key = UInt32(parts[0], radix: 16) else {
            preconditionFailure("malformed generated table entry \(item)")
        }
        map[key] = parseHexSequence(parts[1])
    }
    return map
}

/// Parses `name hexseq` lines (HTML entity tables).
func parseEntityTable(_ text: String) -> [String: [UInt32]] {
    var map: [String: [UInt32]] = [:]
    for line in text.split(separator: "\n") {
        let parts = line.split(separator: " ")
        guard parts.count == 2 else { preconditionFailure("malformed generated entity line \(line)") }
        map[String(parts[0])] = parseHexSequence(parts[1])
    }
    return map
}

private func parseHexSequence(_ text: Substring) -> [UInt32] {
    if text.isEmpty { return [] }
    return text.split(separator: ",").map { piece in
        guard let value = UInt32(piece, radix: 16) else { preconditionFailure("bad hex \(piece)") }
        return value
    }
}

/// Character classes and mappings that must agree with CPython 3.11 / `regex` exactly.
enum PythonUnicode {
    static let whitespace = ScalarSet(ranges: TokenizerTables.pythonWhitespace)   // str.isspace
    static let decimal = ScalarSet(ranges: TokenizerTables.pythonDecimal)         // re \d
    static let regexLetter = ScalarSet(ranges: TokenizerTables.regexLetters)      // regex [\p{L}] /i
    static let regexNumber = ScalarSet(ranges: TokenizerTables.regexNumbers)      // regex [\p{N}] /i
    static let regexOther = ScalarSet(ranges: TokenizerTables.regexOthers)        // regex [^\s\p{L}\p{N}] /i
    static let lowercase = parseScalarMap(TokenizerTables.pythonLowercase)

    @inline(__always)
    static func isSpace(_ cp: UInt32) -> Bool {
        whitespace.contains(cp)
    }

    /// `str.lower()`, including CPython's Final_Sigma rule for U+03A3.
    static func lower(_ text: [UInt32]) -> [UInt32] {
        var out: [UInt32] = []
        out.reserveCapacity(text.count)
        for i in text.indices {
            let cp = text[i]
            if cp < 0x80 {
                out.append(cp >= 0x41 && cp <= 0x5A ? cp + 0x20 : cp)
            } else if cp == 0x3A3 {
                out.append(isFinalSigma(text, at: i) ? 0x3C2 : 0x3C3)
            } else if let mapped = lowercase[cp] {
                out.append(contentsOf: mapped)
            } else {
                out.append(cp)
            }
        }
        return out
    }

    // Mirrors CPython `handle_capital_sigma`: \p{cased}\p{case-ignorable}* Σ !(\p{case-ignorable}* \p{cased}).
    private static func isFinalSigma(_ text: [UInt32], at i: Int) -> Bool {
        var j = i - 1
        while j >= 0, isCaseIgnorable(text[j]) { j -= 1 }
        guard j >= 0, isCased(text[j]) else { return false }
        j = i + 1
        while j < text.count, isCaseIgnorable(text[j]) { j += 1 }
        return j == text.count || !isCased(text[j])
    }

    private static func isCased(_ cp: UInt32) -> Bool {
        Unicode.Scalar(cp)?.properties.isCased ?? false
    }

    private static func isCaseIgnorable(_ cp: UInt32) -> Bool {
        Unicode.Scalar(cp)?.properties.isCaseIgnorable ?? false
    }
}
