/// An 8-bit RGB image, row-major with interleaved channels (`pixels[(y * width + x) * 3 + c]`).
///
/// Two pieces of provenance ride along because Pillow, whose CLIP preprocessing we match,
/// resizes differently depending on the source mode: images with an alpha channel are
/// resized premultiplied, and palette/1-bit images with nearest neighbour.
public struct RGBImage: Sendable, Equatable {
    public let width: Int
    public let height: Int
    public private(set) var pixels: [UInt8]
    /// Straight (non-premultiplied) alpha, `width * height` values, when the source had an
    /// alpha channel (PNG colour types 4 and 6). It does not affect the RGB values.
    public private(set) var alpha: [UInt8]?
    /// True when the source was palette-indexed or 1-bit.
    public let isIndexed: Bool

    public init(width: Int, height: Int, pixels: [UInt8], alpha: [UInt8]? = nil, isIndexed: Bool = false) throws {
        guard width > 0, height > 0 else {
            throw ImagingError.invalidImage(detail: "size \(width)x\(height) must be positive")
        }
        let (count, overflow) = width.multipliedReportingOverflow(by: height)
        guard !overflow, count <= Int.max / 3, pixels.count == count * 3 else {
            throw ImagingError.invalidImage(
                detail: "\(width)x\(height) RGB needs \(width)*\(height)*3 bytes, got \(pixels.count)")
        }
        if let alpha, alpha.count != count {
            throw ImagingError.invalidImage(
                detail: "\(width)x\(height) alpha needs \(count) bytes, got \(alpha.count)")
        }
        self.init(validatedWidth: width, height: height, pixels: pixels, alpha: alpha, isIndexed: isIndexed)
    }

    /// For callers that already guarantee the sizes.
    init(validatedWidth width: Int, height: Int, pixels: [UInt8], alpha: [UInt8]?, isIndexed: Bool) {
        self.width = width
        self.height = height
        self.pixels = pixels
        self.alpha = alpha
        self.isIndexed = isIndexed
    }
}
