import XCTest

@testable import Imaging

/// The resampler alone against `PIL.Image.resize` on noisy images (fixtures/images/resample.safetensors).
final class PillowResamplerTests: XCTestCase {
    private func fullWindow(_ width: Int, _ height: Int) -> PillowResampler.Window {
        PillowResampler.Window(x: 0, y: 0, width: width, height: height)
    }

    func testBicubicMatchesPillowExactly() throws {
        let fixtures = try ImageFixtures.tensors("resample.safetensors")
        let cases = fixtures.names.filter { $0.hasPrefix("bicubic") && $0.hasSuffix(".source") }
        XCTAssertEqual(cases.count, 11)
        for key in cases {
            let name = String(key.dropLast(".source".count))
            let source = try fixtures.bytes(key)
            let expected = try fixtures.bytes(name + ".expected")
            let (height, width, outHeight, outWidth) = (source.shape[0], source.shape[1], expected.shape[0], expected.shape[1])
            let actual = PillowResampler.bicubic(source.values, width: width, height: height, channels: 3,
                                                 outputWidth: outWidth, outputHeight: outHeight,
                                                 window: fullWindow(outWidth, outHeight))
            let comparison = ByteComparison(actual, expected.values)
            XCTAssertEqual(comparison.maxDifference, 0, "\(name) \(width)x\(height) -> \(outWidth)x\(outHeight): \(comparison)")
        }
    }

    /// Evaluating only a window gives exactly the same pixels as resizing fully, then cropping.
    func testWindowEqualsCropOfFullResize() throws {
        let fixtures = try ImageFixtures.tensors("resample.safetensors")
        for name in ["bicubic2", "bicubic3", "bicubic5"] {
            let source = try fixtures.bytes(name + ".source")
            let expected = try fixtures.bytes(name + ".expected")
            let (height, width, outHeight, outWidth) = (source.shape[0], source.shape[1], expected.shape[0], expected.shape[1])
            let window = PillowResampler.Window(x: outWidth / 3, y: outHeight / 4, width: outWidth / 2, height: outHeight / 2)
            let actual = PillowResampler.bicubic(source.values, width: width, height: height, channels: 3,
                                                 outputWidth: outWidth, outputHeight: outHeight, window: window)
            var cropped: [UInt8] = []
            for row in window.y..<(window.y + window.height) {
                let start = (row * outWidth + window.x) * 3
                cropped += expected.values[start..<(start + window.width * 3)]
            }
            XCTAssertEqual(actual, cropped, name)
        }
    }

    func testNearestMatchesPillowForPaletteImages() throws {
        let fixtures = try ImageFixtures.tensors("resample.safetensors")
        for name in ["nearest0", "nearest1"] {
            let source = try fixtures.bytes(name + ".source")
            let expected = try fixtures.bytes(name + ".expected")
            let (height, width, outHeight, outWidth) = (source.shape[0], source.shape[1], expected.shape[0], expected.shape[1])
            let actual = PillowResampler.nearest(source.values, width: width, height: height, channels: 3,
                                                 outputWidth: outWidth, outputHeight: outHeight,
                                                 window: fullWindow(outWidth, outHeight))
            XCTAssertEqual(actual, expected.values, name)
        }
    }
}
