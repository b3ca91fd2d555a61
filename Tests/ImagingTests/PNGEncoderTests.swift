import Foundation
import XCTest

@testable import Imaging

final class PNGEncoderTests: XCTestCase {
    /// Pixels that exercise every byte value and no simple pattern (a fixed LCG).
    private func noise(width: Int, height: Int) throws -> RGBImage {
        var state: UInt32 = 12345
        let pixels = (0..<(width * height * 3)).map { _ -> UInt8 in
            state = state &* 1_103_515_245 &+ 12345
            return UInt8(truncatingIfNeeded: state >> 16)
        }
        return try RGBImage(width: width, height: height, pixels: pixels)
    }

    func testEncodeThenDecodeGivesTheSamePixels() throws {
        for (width, height) in [(1, 1), (37, 23), (300, 5), (4, 700)] {
            let image = try noise(width: width, height: height)
            let png = try PNGEncoder.encode(image)
            XCTAssertEqual(ImageDecoder.detectFormat(png), .png)
            let decoded = try ImageDecoder.decode(data: png, source: "\(width)x\(height).png")
            XCTAssertEqual(decoded.width, width)
            XCTAssertEqual(decoded.height, height)
            XCTAssertEqual(decoded.pixels, image.pixels, "\(width)x\(height)")
            XCTAssertNil(decoded.alpha)
            XCTAssertFalse(decoded.isIndexed)
            XCTAssertEqual(try PNGEncoder.encode(image), png, "same image, same bytes")
        }
    }

    func testLargeImagesSplitTheirDataIntoSeveralChunks() throws {
        let image = try noise(width: 1024, height: 512)  // ~1.5 MiB of incompressible data
        let png = try PNGEncoder.encode(image)
        let idat = Array("IDAT".utf8)
        let bytes = [UInt8](png)
        let chunks = (0..<(bytes.count - 4)).filter { Array(bytes[$0..<($0 + 4)]) == idat }.count
        XCTAssertGreaterThan(chunks, 1)
        XCTAssertEqual(try ImageDecoder.decode(data: png).pixels, image.pixels)
    }

    func testWriteIsAtomicAndLeavesOnlyTheFile() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("png-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("out.png").path
        let image = try noise(width: 9, height: 7)
        try PNGEncoder.write(image, to: path)
        try PNGEncoder.write(image, to: path)  // replaces
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path), ["out.png"])
        XCTAssertEqual(try ImageDecoder.decode(path: path).pixels, image.pixels)
        XCTAssertThrowsError(try PNGEncoder.write(image, to: folder.appendingPathComponent("missing/out.png").path))
    }
}

final class CanvasTests: XCTestCase {
    func testShapesBlendAndClip() {
        var canvas = Canvas(width: 20, height: 10, background: RGBColor(0, 0, 0))
        canvas.fill(RGBColor(200, 100, 0), minX: 2, minY: 2, maxX: 8, maxY: 8) { x, y in
            (x - 5) * (x - 5) + (y - 5) * (y - 5) <= 9
        }
        XCTAssertEqual(canvas.color(x: 5, y: 5), RGBColor(200, 100, 0), "inside: full colour")
        XCTAssertEqual(canvas.color(x: 0, y: 0), RGBColor(0, 0, 0), "outside: untouched")
        let edge = canvas.color(x: 7, y: 5)
        XCTAssertNotNil(edge)
        XCTAssertTrue(edge.map { $0.red > 0 && $0.red < 200 } ?? false, "edge pixels are partly covered: \(String(describing: edge))")
        // Off-canvas and degenerate drawing is clipped, never a crash.
        canvas.fillRect(x: -5, y: -5, width: Int.max, height: 6, color: RGBColor(1, 2, 3))
        canvas.fillRect(x: 30, y: 30, width: 5, height: 5, color: RGBColor(7, 7, 7))
        canvas.drawLine(from: (-100, -100), to: (1e9, 1e9), thickness: 1, color: RGBColor(9, 9, 9))
        canvas.fill(RGBColor(1, 1, 1), minX: .nan, minY: 0, maxX: 5, maxY: 5) { _, _ in true }
        canvas.drawText("x", x: Int.min / 2, y: Int.max / 2, color: RGBColor(5, 5, 5))
        XCTAssertEqual(canvas.color(x: 5, y: 0), RGBColor(1, 2, 3))
        XCTAssertNil(canvas.color(x: 20, y: 0))
    }

    func testTextUsesTheBitmapFont() {
        var canvas = Canvas(width: 40, height: 12, background: RGBColor(255, 255, 255))
        canvas.drawText("1e-3", x: 1, y: 1, color: RGBColor(0, 0, 0))
        let inked = stride(from: 0, to: canvas.pixels.count, by: 3).filter { canvas.pixels[$0] == 0 }.count
        XCTAssertGreaterThan(inked, 20)
        XCTAssertEqual(Canvas.textWidth("1e-3"), 3 * 6 + 5)
        XCTAssertEqual(Canvas.textWidth("", scale: 2), 0)
        // Every glyph row fits the 5-pixel width; unknown characters fall back to '?'.
        XCTAssertEqual(BitmapFont.glyph("€"), BitmapFont.glyph("?"))
        for character in "0123456789.-eE abcxyzABCXYZ_:/()+=,%" {
            XCTAssertEqual(BitmapFont.glyph(character).count, BitmapFont.glyphHeight, String(character))
            XCTAssertTrue(BitmapFont.glyph(character).allSatisfy { $0 < 32 }, String(character))
        }
    }
}
