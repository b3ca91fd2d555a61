import Foundation

/// Builds a plain ustar archive in memory (webdataset shards of the example data, test
/// fixtures). Every header field that could vary (time, owner) is fixed, so the same members
/// give the same bytes.
public struct TarWriter: Sendable {
    public private(set) var bytes: [UInt8] = []

    public init() {}

    /// ustar keeps names up to 100 bytes, or 255 split at a '/' into prefix and name.
    public mutating func add(name: String, data: some Collection<UInt8>) throws {
        let (prefix, base) = try Self.splitName(name)
        var header = [UInt8](repeating: 0, count: 512)
        func put(_ text: String, at offset: Int, width: Int) {
            for (index, byte) in text.utf8.prefix(width).enumerated() { header[offset + index] = byte }
        }
        func putOctal(_ value: Int, at offset: Int, width: Int) {
            // width-1 octal digits, zero-padded, then NUL.
            let digits = String(value, radix: 8)
            put(String(repeating: "0", count: max(0, width - 1 - digits.count)) + digits, at: offset, width: width - 1)
        }
        guard data.count < 1 << 33 else { throw DataError(file: name, "a ustar member holds less than 8 GiB") }
        put(base, at: 0, width: 100)
        putOctal(0o644, at: 100, width: 8)  // mode
        putOctal(0, at: 108, width: 8)  // uid
        putOctal(0, at: 116, width: 8)  // gid
        putOctal(data.count, at: 124, width: 12)
        putOctal(0, at: 136, width: 12)  // mtime: the epoch, for reproducible shards
        header[156] = UInt8(ascii: "0")  // regular file
        put("ustar", at: 257, width: 6)
        put("00", at: 263, width: 2)
        put(prefix, at: 345, width: 155)
        // The checksum is computed with its own field read as spaces.
        for index in 148..<156 { header[index] = UInt8(ascii: " ") }
        let checksum = header.reduce(0) { $0 + Int($1) }
        putOctal(checksum, at: 148, width: 7)  // six digits, NUL, then the space already there
        header[154] = 0
        bytes += header
        bytes += data
        bytes += [UInt8](repeating: 0, count: (512 - data.count % 512) % 512)
    }

    /// The archive with its end marker (two zero blocks).
    public func finished() -> [UInt8] { bytes + [UInt8](repeating: 0, count: 1024) }

    private static func splitName(_ name: String) throws -> (prefix: String, name: String) {
        let utf8 = Array(name.utf8)
        guard !utf8.isEmpty else { throw DataError(file: name, "a tar member needs a name") }
        if utf8.count <= 100 { return ("", name) }
        // The last '/' that leaves a prefix of at most 155 bytes and a name of at most 100.
        for index in utf8.indices.reversed() where utf8[index] == UInt8(ascii: "/") && index <= 155 && utf8.count - index - 1 <= 100 {
            return (String(decoding: utf8[..<index], as: UTF8.self), String(decoding: utf8[(index + 1)...], as: UTF8.self))
        }
        throw DataError(file: name, "name too long for ustar (100 bytes, or 255 with a folder split)")
    }
}
