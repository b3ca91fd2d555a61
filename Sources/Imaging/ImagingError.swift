/// The container formats `ImageDecoder` recognises by content.
public enum ImageFormat: String, Sendable {
    case jpeg = "JPEG"
    case png = "PNG"
}

/// Every failure names the image (a path, or the label given for in-memory data) and what
/// was expected, so a bad file in a large data set can be found and fixed.
public enum ImagingError: Error, Equatable, CustomStringConvertible {
    case unreadableFile(path: String, reason: String)
    case unrecognizedFormat(source: String, leadingBytes: [UInt8])
    case corruptImage(source: String, format: ImageFormat, detail: String)
    case unsupportedImage(source: String, format: ImageFormat, detail: String)
    case imageTooLarge(source: String, detail: String)
    case outOfMemory(source: String)
    case invalidImage(detail: String)
    case invalidParameter(detail: String)

    public var description: String {
        switch self {
        case let .unreadableFile(path, reason):
            return "cannot read image file '\(path)': \(reason)"
        case let .unrecognizedFormat(source, leadingBytes):
            let hex = leadingBytes.map { String($0, radix: 16).leftPadded(to: 2) }.joined(separator: " ")
            return "'\(source)' is neither JPEG (starts FF D8 FF) nor PNG (starts 89 50 4E 47 0D 0A 1A 0A); "
                + "first bytes: [\(hex)]"
        case let .corruptImage(source, format, detail):
            return "corrupt or truncated \(format.rawValue) '\(source)': \(detail)"
        case let .unsupportedImage(source, format, detail):
            return "unsupported \(format.rawValue) '\(source)': \(detail)"
        case let .imageTooLarge(source, detail):
            return "image '\(source)' is too large: \(detail)"
        case let .outOfMemory(source):
            return "out of memory while decoding '\(source)'"
        case let .invalidImage(detail):
            return "invalid image: \(detail)"
        case let .invalidParameter(detail):
            return "invalid parameter: \(detail)"
        }
    }
}

extension String {
    fileprivate func leftPadded(to length: Int) -> String {
        count >= length ? self : String(repeating: "0", count: length - count) + self
    }
}
