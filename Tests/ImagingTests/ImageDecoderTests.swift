import Foundation
import XCTest

@testable import Imaging

/// Decoding is checked against Pillow's own decode (`Image.open(p).convert("RGB")`, stored by
/// tools/make_image_fixtures.py), separately from resampling.
final class ImageDecoderTests: XCTestCase {
    /// PNG decoding is lossless, so it must match Pillow exactly. JPEG: Pillow bundles a newer
    /// libjpeg-turbo than Debian's 2.1.5; the islow IDCT and fancy upsampling are specified
    /// bit-exactly in both, but we allow ±1 per sample in case of a version difference.
    static let jpegTolerance = 1

    func testDecodedPixelsMatchPillow() throws {
        let fixtures = try ImageFixtures.tensors("decoded.safetensors")
        let imageNames = fixtures.names.filter { !$0.hasSuffix(".alpha") }
        XCTAssertGreaterThanOrEqual(imageNames.count, 9)
        XCTAssertTrue(imageNames.contains("interlaced_45x29.png"), "Adam7 PNG is covered")
        for name in imageNames {
            let expected = try fixtures.bytes(name)
            let image = try ImageDecoder.decode(path: ImageFixtures.path(name))
            XCTAssertEqual([image.height, image.width, 3], expected.shape, name)
            let comparison = ByteComparison(image.pixels, expected.values)
            let tolerance = name.hasSuffix(".jpg") ? Self.jpegTolerance : 0
            XCTAssertLessThanOrEqual(comparison.maxDifference, tolerance, "\(name): \(comparison)")
            print("decode \(name): \(comparison)")

            if fixtures.entries[name + ".alpha"] != nil {
                let alpha = try fixtures.bytes(name + ".alpha")
                XCTAssertEqual(image.alpha, alpha.values, "\(name) alpha")
            } else {
                XCTAssertNil(image.alpha, "\(name) has no alpha channel")
            }
        }
    }

    func testSourceModesAreRecorded() throws {
        XCTAssertTrue(try ImageDecoder.decode(path: ImageFixtures.path("palette_150x110.png")).isIndexed)
        XCTAssertFalse(try ImageDecoder.decode(path: ImageFixtures.path("gray_120x90.png")).isIndexed)
        XCTAssertFalse(try ImageDecoder.decode(path: ImageFixtures.path("rgb_37x23.png")).isIndexed)
        // Greyscale JPEG comes out as RGB with equal channels.
        let gray = try ImageDecoder.decode(path: ImageFixtures.path("gray_100x140.jpg"))
        XCTAssertEqual(gray.width, 100)
        XCTAssertEqual(gray.height, 140)
        for i in stride(from: 0, to: gray.pixels.count, by: 3) {
            XCTAssertEqual(gray.pixels[i], gray.pixels[i + 1])
            XCTAssertEqual(gray.pixels[i], gray.pixels[i + 2])
        }
    }

    func testDecodeFromDataMatchesDecodeFromPath() throws {
        let path = ImageFixtures.path("progressive_160x120.jpg")
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        XCTAssertEqual(ImageDecoder.detectFormat(data), .jpeg)
        XCTAssertEqual(try ImageDecoder.decode(data: data), try ImageDecoder.decode(path: path))
    }

    func testRGBImageValidatesItsBuffers() {
        XCTAssertThrowsError(try RGBImage(width: 2, height: 2, pixels: [UInt8](repeating: 0, count: 11)))
        XCTAssertThrowsError(try RGBImage(width: 0, height: 2, pixels: []))
        XCTAssertThrowsError(try RGBImage(width: 1, height: 1, pixels: [1, 2, 3], alpha: [1, 2]))
        XCTAssertNoThrow(try RGBImage(width: 1, height: 1, pixels: [1, 2, 3], alpha: [9]))
    }
}

/// Bad input must give a typed error naming the source, never a crash, hang or partial image.
final class ImageDecoderErrorTests: XCTestCase {
    private func fixtureData(_ name: String) throws -> Data {
        try Data(contentsOf: URL(fileURLWithPath: ImageFixtures.path(name)))
    }

    func testEveryTruncationOfAPNGIsRejected() throws {
        let data = try fixtureData("rgb_37x23.png")
        for length in 0..<data.count {
            XCTAssertThrowsError(try ImageDecoder.decode(data: data.prefix(length), source: "cut.png"),
                                 "prefix of \(length) bytes") { error in
                guard let error = error as? ImagingError else { return XCTFail("untyped error \(error)") }
                XCTAssertTrue(error.description.contains("cut.png"), error.description)
            }
        }
    }

    func testEveryTruncationOfAJPEGIsRejected() throws {
        for name in ["gray_100x140.jpg", "progressive_160x120.jpg"] {
            let data = try fixtureData(name)
            for length in stride(from: 0, to: data.count, by: 13) {
                XCTAssertThrowsError(try ImageDecoder.decode(data: data.prefix(length), source: name),
                                     "\(name) prefix of \(length) bytes")
            }
            XCTAssertThrowsError(try ImageDecoder.decode(data: data.prefix(data.count - 1), source: name))
        }
    }

    func testTruncatedJPEGNamesTheFile() throws {
        let data = try fixtureData("baseline_q90_240x160.jpg")
        XCTAssertThrowsError(try ImageDecoder.decode(data: data.prefix(data.count / 2), source: "half.jpg")) { error in
            guard case let .corruptImage(source, format, detail)? = error as? ImagingError else {
                return XCTFail("expected corruptImage, got \(error)")
            }
            XCTAssertEqual(source, "half.jpg")
            XCTAssertEqual(format, .jpeg)
            XCTAssertFalse(detail.isEmpty)
        }
    }

    func testCorruptPNGDataIsRejected() throws {
        var data = try fixtureData("rgb_200x300.png")
        // Flip a byte in the middle of the compressed data: the IDAT CRC no longer matches.
        data[data.count / 2] ^= 0x5A
        XCTAssertThrowsError(try ImageDecoder.decode(data: data, source: "flipped.png")) { error in
            guard case let .corruptImage(source, format, _)? = error as? ImagingError else {
                return XCTFail("expected corruptImage, got \(error)")
            }
            XCTAssertEqual(source, "flipped.png")
            XCTAssertEqual(format, .png)
        }
    }

    func testCorruptJPEGEntropyDataIsRejected() throws {
        var data = try fixtureData("baseline_q90_240x160.jpg")
        for offset in stride(from: data.count / 2, to: data.count / 2 + 64, by: 1) { data[offset] = 0xFF }
        XCTAssertThrowsError(try ImageDecoder.decode(data: data, source: "smashed.jpg"))
    }

    func testUnknownFormatsAreRejected() {
        for (bytes, label) in [([UInt8](), "empty"), ([0x47, 0x49, 0x46, 0x38, 0x39, 0x61], "gif"),
                               (Array("not an image".utf8), "text")] {
            XCTAssertThrowsError(try ImageDecoder.decode(data: Data(bytes), source: label)) { error in
                guard case let .unrecognizedFormat(source, leading)? = error as? ImagingError else {
                    return XCTFail("expected unrecognizedFormat, got \(error)")
                }
                XCTAssertEqual(source, label)
                XCTAssertEqual(leading, Array(bytes.prefix(8)))
            }
        }
    }

    /// CMYK JPEGs are converted to RGB as Pillow does (Adobe-inverted CMYK, then its cmyk2rgb),
    /// against Pillow's `convert("RGB")` (tools/make_cmyk_fixture.py), within the JPEG tolerance.
    func testCMYKJPEGConvertsAsPillow() throws {
        let fixtures = try ImageFixtures.tensors("cmyk_decoded.safetensors")
        let expected = try fixtures.bytes("cmyk_16x16.jpg")
        let image = try ImageDecoder.decode(path: ImageFixtures.path("cmyk_16x16.jpg"))
        XCTAssertEqual([image.height, image.width, 3], expected.shape)
        let comparison = ByteComparison(image.pixels, expected.values)
        XCTAssertLessThanOrEqual(comparison.maxDifference, ImageDecoderTests.jpegTolerance, "\(comparison)")
    }

    func testPixelLimitIsEnforced() {
        for name in ["rgb_200x300.png", "baseline_q90_240x160.jpg"] {
            XCTAssertThrowsError(try ImageDecoder.decode(path: ImageFixtures.path(name), maxPixels: 1000)) { error in
                guard case .imageTooLarge? = error as? ImagingError else {
                    return XCTFail("expected imageTooLarge, got \(error)")
                }
            }
        }
    }

    func testMissingFileIsReported() {
        XCTAssertThrowsError(try ImageDecoder.decode(path: "/nonexistent/dir/picture.png")) { error in
            guard case let .unreadableFile(path, _)? = error as? ImagingError else {
                return XCTFail("expected unreadableFile, got \(error)")
            }
            XCTAssertEqual(path, "/nonexistent/dir/picture.png")
        }
    }
}
