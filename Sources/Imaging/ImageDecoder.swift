import CImageShim
import Foundation
import WeightsIO

/// Decodes JPEG (libjpeg-turbo) and PNG (libpng) files into `RGBImage`, choosing the codec by
/// content, never by file extension. Output matches what Pillow's `Image.open(...)` holds:
/// greyscale becomes RGB by replication, 16-bit PNG samples keep their high byte, PNG gamma
/// is not applied, EXIF orientation is ignored.
///
/// One deliberate difference: Pillow opens 16-bit greyscale PNG as mode "I;16" and its
/// `.convert("RGB")` clips values above 255 (nearly everything turns white); we keep the high
/// byte instead, as for 16-bit colour.
public enum ImageDecoder {
    /// Guards against decompression bombs; Pillow refuses above about 179 M pixels too.
    public static let defaultMaxPixels = 178_956_970

    public static func decode(path: String, maxPixels: Int = defaultMaxPixels) throws -> RGBImage {
        return try decode(data: readRegularFile(path), source: path, maxPixels: maxPixels)
    }

    /// The file's bytes. Folders, FIFOs and devices are refused before they are read (a FIFO would
    /// block, /dev/zero never end); the file is opened non-blocking and checked again by its
    /// descriptor, so one swapped in between the two checks is refused too.
    static func readRegularFile(_ path: String) throws -> Data {
        if let problem = PathDiagnosis.notARegularFile(path) {
            throw ImagingError.unreadableFile(path: path, reason: problem)
        }
        let descriptor = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard descriptor >= 0 else {
            throw ImagingError.unreadableFile(path: path, reason: String(cString: strerror(errno)))
        }
        let handle = FileHandle(fileDescriptor: descriptor, closeOnDealloc: true)
        var info = stat()
        guard fstat(descriptor, &info) == 0 else {
            throw ImagingError.unreadableFile(path: path, reason: String(cString: strerror(errno)))
        }
        if let problem = PathDiagnosis.kindProblem(mode: info.st_mode) {
            throw ImagingError.unreadableFile(path: path, reason: problem)
        }
        do {
            return try handle.readToEnd() ?? Data()
        } catch {
            throw ImagingError.unreadableFile(path: path, reason: String(describing: error))
        }
    }

    /// `source` names the data in error messages (a path, a URL, an archive member).
    public static func decode(data: Data, source: String = "<memory>", maxPixels: Int = defaultMaxPixels) throws -> RGBImage {
        guard let format = detectFormat(data) else {
            throw ImagingError.unrecognizedFormat(source: source, leadingBytes: Array(data.prefix(8)))
        }
        var decoded = sds_decoded_image()
        var message = [CChar](repeating: 0, count: 512)
        let limit = UInt64(max(0, maxPixels))
        let status: sds_image_status = data.withUnsafeBytes { raw in
            let bytes = raw.bindMemory(to: UInt8.self)
            return message.withUnsafeMutableBufferPointer { text in
                switch format {
                case .jpeg:
                    return sds_decode_jpeg(bytes.baseAddress, bytes.count, limit, &decoded, text.baseAddress, text.count)
                case .png:
                    return sds_decode_png(bytes.baseAddress, bytes.count, limit, &decoded, text.baseAddress, text.count)
                }
            }
        }
        defer { sds_image_free(&decoded) }
        let detail = String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        switch status {
        case SDS_IMAGE_OK:
            return try makeImage(from: decoded, source: source, format: format)
        case SDS_IMAGE_UNSUPPORTED:
            throw ImagingError.unsupportedImage(source: source, format: format, detail: detail)
        case SDS_IMAGE_TOO_LARGE:
            throw ImagingError.imageTooLarge(source: source, detail: detail)
        case SDS_IMAGE_OUT_OF_MEMORY:
            throw ImagingError.outOfMemory(source: source)
        default:
            throw ImagingError.corruptImage(source: source, format: format, detail: detail)
        }
    }

    public static func detectFormat(_ data: Data) -> ImageFormat? {
        let jpegMagic: [UInt8] = [0xFF, 0xD8, 0xFF]
        let pngMagic: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        if data.starts(with: jpegMagic) { return .jpeg }
        if data.starts(with: pngMagic) { return .png }
        return nil
    }

    /// Copies the shim's buffer into Swift arrays, splitting off alpha when present.
    private static func makeImage(from decoded: sds_decoded_image, source: String, format: ImageFormat) throws -> RGBImage {
        let width = Int(decoded.width)
        let height = Int(decoded.height)
        let channels = Int(decoded.channels)
        let pixelCount = width * height
        guard pixelCount > 0, channels == 3 || channels == 4, let base = decoded.pixels else {
            throw ImagingError.corruptImage(
                source: source, format: format, detail: "decoder returned \(width)x\(height)x\(channels)")
        }
        let interleaved = UnsafeBufferPointer(start: base, count: pixelCount * channels)
        if channels == 3 {
            return RGBImage(validatedWidth: width, height: height, pixels: Array(interleaved),
                            alpha: nil, isIndexed: decoded.indexed != 0)
        }
        var rgb = [UInt8](repeating: 0, count: pixelCount * 3)
        var alpha = [UInt8](repeating: 0, count: pixelCount)
        rgb.withUnsafeMutableBufferPointer { rgbOut in
            alpha.withUnsafeMutableBufferPointer { alphaOut in
                for i in 0..<pixelCount {
                    rgbOut[i * 3] = interleaved[i * 4]
                    rgbOut[i * 3 + 1] = interleaved[i * 4 + 1]
                    rgbOut[i * 3 + 2] = interleaved[i * 4 + 2]
                    alphaOut[i] = interleaved[i * 4 + 3]
                }
            }
        }
        return RGBImage(validatedWidth: width, height: height, pixels: rgb, alpha: alpha,
                        isIndexed: decoded.indexed != 0)
    }
}
