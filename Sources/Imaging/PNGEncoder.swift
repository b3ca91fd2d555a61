import CZlib
import Foundation
import WeightsIO

/// Writes 8-bit RGB PNGs (plots, example data). The output depends only on the pixels: no
/// timestamps or text chunks, filter type 0 on every row and zlib at a fixed level, so the same
/// image gives the same bytes on every run.
public enum PNGEncoder {
    /// zlib level 6, its default: plain shapes and plots compress well without searching harder.
    static let compressionLevel: Int32 = 6
    static let idatChunkSize = 1 << 20

    public static func encode(_ image: RGBImage) throws -> Data {
        let rowBytes = image.width * 3
        // Each scanline is preceded by its filter-type byte (0: none).
        var raw = [UInt8](repeating: 0, count: image.height * (rowBytes + 1))
        image.pixels.withUnsafeBufferPointer { pixels in
            raw.withUnsafeMutableBufferPointer { out in
                for y in 0..<image.height {
                    let from = y * rowBytes
                    let to = y * (rowBytes + 1) + 1
                    for i in 0..<rowBytes { out[to + i] = pixels[from + i] }
                }
            }
        }
        guard image.width <= Int(Int32.max), image.height <= Int(Int32.max) else {
            throw ImagingError.invalidParameter(detail: "PNG sides are limited to 2^31-1, got \(image.width)x\(image.height)")
        }
        var header = Data()
        header.appendBigEndian(UInt32(image.width))
        header.appendBigEndian(UInt32(image.height))
        header.append(contentsOf: [8, 2, 0, 0, 0])  // bit depth 8, colour type 2 (RGB), deflate, adaptive filters, no interlace

        var png = Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        appendChunk("IHDR", header, to: &png)
        // IDAT chunks are split so no chunk length comes near the format's 2^31-1 limit.
        let compressed = try deflate(raw)
        var start = compressed.startIndex
        repeat {
            let end = Swift.min(start + idatChunkSize, compressed.endIndex)
            appendChunk("IDAT", compressed[start..<end], to: &png)
            start = end
        } while start < compressed.endIndex
        appendChunk("IEND", Data(), to: &png)
        return png
    }

    /// Encodes and writes atomically: a temp file beside `path`, renamed into place when complete.
    public static func write(_ image: RGBImage, to path: String) throws {
        let data = try encode(image)
        try AtomicFile.write([UInt8](data), to: path)
    }

    private static func deflate(_ bytes: [UInt8]) throws -> Data {
        var capacity = compressBound(uLong(bytes.count))
        var output = [UInt8](repeating: 0, count: Int(capacity))
        let status = bytes.withUnsafeBufferPointer { input in
            output.withUnsafeMutableBufferPointer { out in
                compress2(out.baseAddress, &capacity, input.baseAddress, uLong(input.count), compressionLevel)
            }
        }
        guard status == Z_OK else {
            throw ImagingError.invalidParameter(detail: "zlib compress2 failed with status \(status) on \(bytes.count) bytes")
        }
        return Data(output.prefix(Int(capacity)))
    }

    private static func appendChunk(_ type: String, _ body: Data, to png: inout Data) {
        png.appendBigEndian(UInt32(body.count))
        // The CRC covers the type and the body, not the length. One buffer, never empty: zlib's
        // crc32 given a null pointer returns its initial value instead of the running CRC.
        var covered = Data(type.utf8)
        covered.append(body)
        let crc = covered.withUnsafeBytes { crc32(0, $0.bindMemory(to: Bytef.self).baseAddress, uInt($0.count)) }
        png.append(covered)
        png.appendBigEndian(UInt32(truncatingIfNeeded: crc))
    }
}

extension Data {
    fileprivate mutating func appendBigEndian(_ value: UInt32) {
        append(contentsOf: [UInt8(value >> 24), UInt8((value >> 16) & 0xFF), UInt8((value >> 8) & 0xFF), UInt8(value & 0xFF)])
    }
}
