/// An 8-bit RGB colour.
public struct RGBColor: Sendable, Equatable, Hashable {
    public let red: UInt8
    public let green: UInt8
    public let blue: UInt8

    public init(_ red: UInt8, _ green: UInt8, _ blue: UInt8) {
        self.red = red
        self.green = green
        self.blue = blue
    }
}

/// A small raster to draw on (plots, the example world). Coordinates are pixels with the origin
/// at the top left; pixel (x, y) covers [x, x+1) x [y, y+1). Everything is integer or plain IEEE
/// arithmetic (no libm calls), so a drawing is the same bytes on every machine.
public struct Canvas: Sendable {
    public let width: Int
    public let height: Int
    public private(set) var pixels: [UInt8]

    /// Largest canvas side: plots and example images are small, and this keeps
    /// `width * height * 3` far from overflow.
    public static let maximumSide = 1 << 14

    /// Sides are clamped to 1...`maximumSide`.
    public init(width: Int, height: Int, background: RGBColor) {
        let width = max(1, min(width, Self.maximumSide))
        let height = max(1, min(height, Self.maximumSide))
        self.width = width
        self.height = height
        var pixels = [UInt8](repeating: 0, count: width * height * 3)
        for i in 0..<(width * height) {
            pixels[i * 3] = background.red
            pixels[i * 3 + 1] = background.green
            pixels[i * 3 + 2] = background.blue
        }
        self.pixels = pixels
    }

    public var image: RGBImage {
        RGBImage(validatedWidth: width, height: height, pixels: pixels, alpha: nil, isIndexed: false)
    }

    public func color(x: Int, y: Int) -> RGBColor? {
        guard (0..<width).contains(x), (0..<height).contains(y) else { return nil }
        let i = (y * width + x) * 3
        return RGBColor(pixels[i], pixels[i + 1], pixels[i + 2])
    }

    /// Sets whole pixels; the rectangle is clipped to the canvas.
    public mutating func fillRect(x: Int, y: Int, width rectWidth: Int, height rectHeight: Int, color: RGBColor) {
        let xs = Self.clip(x, x.addingClamped(rectWidth), to: width)
        let ys = Self.clip(y, y.addingClamped(rectHeight), to: height)
        for row in ys {
            for column in xs { set(column, row, color) }
        }
    }

    /// Anti-aliased fill of any shape given by `inside`: each pixel of the (clipped) box is
    /// sampled on a `subsamples` x `subsamples` grid and blended by the share of samples inside.
    public mutating func fill(_ color: RGBColor, minX: Double, minY: Double, maxX: Double, maxY: Double,
                              subsamples: Int = 4, inside: (Double, Double) -> Bool) {
        guard minX.isFinite, minY.isFinite, maxX.isFinite, maxY.isFinite else { return }
        let n = max(1, min(subsamples, 16))
        let total = n * n
        let x0 = Int(max(0, min(Double(width), minX.rounded(.down))))
        let x1 = Int(max(0, min(Double(width), maxX.rounded(.up))))
        let y0 = Int(max(0, min(Double(height), minY.rounded(.down))))
        let y1 = Int(max(0, min(Double(height), maxY.rounded(.up))))
        for y in y0..<max(y0, y1) {
            for x in x0..<max(x0, x1) {
                var hits = 0
                for j in 0..<n {
                    let sy = Double(y) + (Double(j) + 0.5) / Double(n)
                    for i in 0..<n where inside(Double(x) + (Double(i) + 0.5) / Double(n), sy) { hits += 1 }
                }
                if hits > 0 { blend(x, y, color, hits: hits, of: total) }
            }
        }
    }

    /// A straight segment of the given thickness with round ends.
    public mutating func drawLine(from start: (x: Double, y: Double), to end: (x: Double, y: Double),
                                  thickness: Double, color: RGBColor) {
        let radius = max(thickness, 0.5) / 2
        let dx = end.x - start.x
        let dy = end.y - start.y
        let lengthSquared = dx * dx + dy * dy
        fill(color, minX: min(start.x, end.x) - radius, minY: min(start.y, end.y) - radius,
             maxX: max(start.x, end.x) + radius, maxY: max(start.y, end.y) + radius) { px, py in
            // Distance from the point to the segment, compared squared (no sqrt needed).
            var t = lengthSquared > 0 ? ((px - start.x) * dx + (py - start.y) * dy) / lengthSquared : 0
            t = max(0, min(1, t))
            let ex = px - (start.x + t * dx)
            let ey = py - (start.y + t * dy)
            return ex * ex + ey * ey <= radius * radius
        }
    }

    /// Draws `text` with the built-in bitmap font, top-left corner at (x, y), each font pixel
    /// a `scale` x `scale` block. Characters the font lacks are drawn as '?'.
    public mutating func drawText(_ text: String, x: Int, y: Int, scale: Int = 1, color: RGBColor) {
        let scale = max(1, min(scale, 16))
        var penX = x
        for character in text {
            let rows = BitmapFont.glyph(character)
            for (row, bits) in rows.enumerated() {
                for column in 0..<BitmapFont.glyphWidth where bits & (1 << (BitmapFont.glyphWidth - 1 - column)) != 0 {
                    fillRect(x: penX + column * scale, y: y + row * scale, width: scale, height: scale, color: color)
                }
            }
            penX += BitmapFont.advance * scale
        }
    }

    /// Width of `text` as `drawText` draws it.
    public static func textWidth(_ text: String, scale: Int = 1) -> Int {
        BitmapFont.width(of: text, scale: max(1, min(scale, 16)))
    }

    /// Height of a line of text above the baseline (capitals and digits), in pixels.
    public static func textHeight(scale: Int = 1) -> Int { 7 * max(1, min(scale, 16)) }

    /// start..<end within 0..<limit; empty when they do not meet.
    private static func clip(_ start: Int, _ end: Int, to limit: Int) -> Range<Int> {
        let lower = min(max(0, start), limit)
        return lower..<max(lower, min(end, limit))
    }

    @inline(__always)
    private mutating func set(_ x: Int, _ y: Int, _ color: RGBColor) {
        let i = (y * width + x) * 3
        pixels[i] = color.red
        pixels[i + 1] = color.green
        pixels[i + 2] = color.blue
    }

    /// old * (1 - k/n) + new * k/n, rounded to nearest in integers.
    @inline(__always)
    private mutating func blend(_ x: Int, _ y: Int, _ color: RGBColor, hits: Int, of total: Int) {
        let i = (y * width + x) * 3
        let keep = total - hits
        func mix(_ old: UInt8, _ new: UInt8) -> UInt8 {
            UInt8(truncatingIfNeeded: (Int(old) * keep + Int(new) * hits + total / 2) / total)
        }
        pixels[i] = mix(pixels[i], color.red)
        pixels[i + 1] = mix(pixels[i + 1], color.green)
        pixels[i + 2] = mix(pixels[i + 2], color.blue)
    }
}

extension Int {
    fileprivate func addingClamped(_ other: Int) -> Int {
        let (sum, overflow) = addingReportingOverflow(other)
        return overflow ? (other > 0 ? Int.max : Int.min) : sum
    }
}
