import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What a file's first bytes say it is.
public enum DetectedFormat: Sendable, Equatable {
    /// A zip archive: torch zip checkpoints (`.pt`/`.pth`/`.bin`/`.ckpt`) and TorchScript archives.
    case zip
    /// Legacy (pre-1.6) `torch.save` stream: pickle protocol 2 starting with torch's magic number.
    case torchLegacy
    /// The ancient tar-based torch format (`ustar` at byte 257).
    case tar
    /// safetensors with the given header length.
    case safetensors(headerLength: Int)
    case unknown
}

/// Tells weight formats apart by content only, never by extension (formats.md §0), checking zip,
/// legacy pickle, tar, then safetensors.
public enum FormatDetection {
    /// Bytes `detect(path:)` reads; enough for every check.
    public static let prefixLength = 4096

    /// PROTO 2, LONG1 of torch's magic 0x1950a86a20f9469cfc6c, STOP.
    static let legacyMagic: [UInt8] = [0x80, 0x02, 0x8A, 0x0A, 0x6C, 0xFC, 0x9C, 0x46, 0xF9, 0x20, 0x6A, 0xA8, 0x50, 0x19, 0x2E]

    /// Classifies `bytes`, the start of a file (or all of it). `fileSize`, when known, rules out
    /// safetensors headers that claim more bytes than the file has.
    public static func detect(bytes: UnsafeRawBufferPointer, fileSize: Int? = nil) -> DetectedFormat {
        if starts(bytes, with: [0x50, 0x4B, 0x03, 0x04]) { return .zip }
        if starts(bytes, with: legacyMagic) { return .torchLegacy }
        if bytes.count >= 262, starts(UnsafeRawBufferPointer(rebasing: bytes[257...]), with: Array("ustar".utf8)) { return .tar }
        if let length = safetensorsHeaderLength(bytes, fileSize: fileSize ?? Int.max) {
            return .safetensors(headerLength: length)
        }
        return .unknown
    }

    public static func detect(bytes: [UInt8], fileSize: Int? = nil) -> DetectedFormat {
        bytes.withUnsafeBytes { detect(bytes: $0, fileSize: fileSize ?? $0.count) }
    }

    /// Reads the first `prefixLength` bytes of `path` and classifies them.
    public static func detect(path: String) throws -> DetectedFormat {
        let (fd, size) = try InputFile.openRegular(path)
        defer { close(fd) }
        var prefix = [UInt8](repeating: 0, count: prefixLength)
        var filled = 0
        while filled < prefixLength {
            let got = prefix.withUnsafeMutableBytes { raw -> Int in
                guard let base = raw.baseAddress else { return 0 }
                return read(fd, base + filled, prefixLength - filled)
            }
            if got < 0 {
                if errno == EINTR { continue }
                throw WeightsError(.io, file: path, "cannot read: \(String(cString: strerror(errno)))")
            }
            if got == 0 { break }
            filled += got
        }
        return prefix.withUnsafeBytes {
            detect(bytes: UnsafeRawBufferPointer(rebasing: $0[0..<filled]), fileSize: size)
        }
    }

    private static func starts(_ bytes: UnsafeRawBufferPointer, with magic: [UInt8]) -> Bool {
        bytes.count >= magic.count && zip(bytes, magic).allSatisfy { $0 == $1 }
    }

    /// A u64 length N ≥ 2 followed by '{' after optional JSON whitespace (the reference writer never
    /// emits whitespace, but the reader accepts it). N is reported as is (clamped to Int.max).
    private static func safetensorsHeaderLength(_ bytes: UnsafeRawBufferPointer, fileSize: Int) -> Int? {
        guard bytes.count >= 9 else { return nil }
        let length = bytes.loadUnaligned(fromByteOffset: 0, as: UInt64.self).littleEndian
        // The length is not checked against the cap or the file size here: a file that looks like
        // safetensors must reach the reader, whose error says exactly which rule it breaks.
        guard length >= 2 else { return nil }
        var position = 8
        let end = length > UInt64(bytes.count) ? bytes.count : min(bytes.count, 8 + Int(length))
        while position < end {
            switch bytes[position] {
            case 0x20, 0x09, 0x0A, 0x0D: position += 1
            case UInt8(ascii: "{"): return Int(clamping: length)
            default: return nil
            }
        }
        return nil
    }
}
