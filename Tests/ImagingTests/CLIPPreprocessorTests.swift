import Foundation
import XCTest

@testable import Imaging

/// Compares with open_clip's `image_transform(R, is_train=False)` run on Pillow images
/// (tools/make_image_fixtures.py). The acceptance bound is 2/255 per pixel in 0...1 units.
final class CLIPPreprocessorTests: XCTestCase {
    static let tolerance = 2  // in 1/255 steps

    /// R = 224: the fixture holds the exact 8-bit image open_clip feeds to ToTensor
    /// (the generator checked it reproduces the float tensor bit for bit).
    func testResolution224MatchesOpenCLIP() throws {
        let preprocessor = try CLIPPreprocessor(resolution: 224)
        var checked = 0
        for file in ["clip224_a.safetensors", "clip224_b.safetensors"] {
            let fixtures = try ImageFixtures.tensors(file)
            for name in fixtures.names {
                let expected = try fixtures.bytes(name)
                XCTAssertEqual(expected.shape, [224, 224, 3], name)
                let image = try ImageDecoder.decode(path: ImageFixtures.path(name))
                let cropped = preprocessor.resizeAndCrop(image)
                XCTAssertEqual(cropped.width, 224)
                XCTAssertEqual(cropped.height, 224)
                let comparison = ByteComparison(cropped.pixels, expected.values)
                print("R=224 \(name) (\(image.width)x\(image.height)): \(comparison)")
                XCTAssertLessThanOrEqual(comparison.maxDifference, Self.tolerance, "\(name): \(comparison)")
                // Lossless sources go through integer arithmetic identical to Pillow's.
                if name.hasSuffix(".png") {
                    XCTAssertEqual(comparison.equalFraction, 1, "\(name): \(comparison)")
                }
                checked += 1
            }
        }
        XCTAssertEqual(checked, 9)
    }

    /// R = 32 (the tiny test model): compares the normalised float tensors directly.
    /// Tolerance per channel is (2/255)/std, plus float rounding.
    func testResolution32NormalisedTensorsMatchOpenCLIP() throws {
        let preprocessor = try CLIPPreprocessor(resolution: 32)
        let fixtures = try ImageFixtures.tensors("clip_f32.safetensors")
        let names = fixtures.names.filter { $0.hasSuffix(".r32") }
        XCTAssertGreaterThanOrEqual(names.count, 18)
        for key in names {
            let name = String(key.dropLast(".r32".count))
            let expected = try fixtures.floats(key)
            XCTAssertEqual(expected.shape, [3, 32, 32], key)
            let actual = try preprocessor.process(path: ImageFixtures.path(name))
            XCTAssertEqual(actual.count, expected.values.count, key)
            let plane = 32 * 32
            var worstInPixels: Float = 0
            var exact = 0
            for i in 0..<min(actual.count, expected.values.count) {
                let difference = abs(actual[i] - expected.values[i])
                // Undo the division by std to measure the error in 0...1 pixel units.
                worstInPixels = max(worstInPixels, difference * CLIPPreprocessor.openAIStd[i / plane])
                if difference == 0 { exact += 1 }
            }
            let fraction = Double(exact) / Double(max(actual.count, 1))
            print(String(format: "R=32 %@: max |diff| %.3f/255, %.4f%% exactly equal", name,
                         worstInPixels * 255, fraction * 100))
            XCTAssertLessThanOrEqual(worstInPixels, Float(Self.tolerance) / 255 + 1e-6, key)
            if name.hasSuffix(".png") {
                XCTAssertEqual(fraction, 1, "\(name) should match bit for bit")
            }
        }
    }

    func testNormalisationUsesTorchvisionArithmetic() throws {
        let preprocessor = try CLIPPreprocessor(resolution: 32)
        let fixtures = try ImageFixtures.tensors("clip_f32.safetensors")
        let expected = try fixtures.floats("rgb_37x23.png.r32")
        let cropped = preprocessor.resizeAndCrop(try ImageDecoder.decode(path: ImageFixtures.path("rgb_37x23.png")))
        let values = preprocessor.process(try ImageDecoder.decode(path: ImageFixtures.path("rgb_37x23.png")))
        // Channel-major layout: value [c, y, x] comes from pixel (y, x) channel c.
        for (c, y, x) in [(0, 0, 0), (1, 5, 7), (2, 31, 31), (0, 17, 3)] {
            let index = c * 1024 + y * 32 + x
            let byte = cropped.pixels[(y * 32 + x) * 3 + c]
            let manual = (Float(byte) / 255 - CLIPPreprocessor.openAIMean[c]) / CLIPPreprocessor.openAIStd[c]
            XCTAssertEqual(values[index], manual)
            XCTAssertEqual(values[index], expected.values[index])
        }
    }

    func testBatchStacksSingleResults() throws {
        let preprocessor = try CLIPPreprocessor(resolution: 32)
        let paths = ["rgb_64x500.png", "rgba_160x120.png", "gray_100x140.jpg"].map(ImageFixtures.path)
        let batch = try preprocessor.processBatch(paths: paths)
        XCTAssertEqual(batch.shape, [3, 3, 32, 32])
        XCTAssertEqual(batch.values.count, 3 * 3 * 32 * 32)
        for (index, path) in paths.enumerated() {
            let single = try preprocessor.process(path: path)
            XCTAssertEqual(Array(batch.values[(index * 3072)..<((index + 1) * 3072)]), single, path)
        }
        XCTAssertThrowsError(try preprocessor.processBatch(paths: [paths[0], "/nonexistent.png"]))
    }

    /// torchvision `_compute_resized_output_size` and `center_crop` rules on awkward sizes.
    func testResizeRuleFollowsTorchvision() throws {
        let preprocessor = try CLIPPreprocessor(resolution: 224)
        XCTAssertTrue(preprocessor.resizedSize(width: 64, height: 500) == (224, 1750))
        XCTAssertTrue(preprocessor.resizedSize(width: 37, height: 23) == (360, 224))  // 360.3 truncated
        XCTAssertTrue(preprocessor.resizedSize(width: 224, height: 224) == (224, 224))
        XCTAssertTrue(preprocessor.resizedSize(width: 1, height: 1) == (224, 224))
        XCTAssertEqual(preprocessor.outputShape, [3, 224, 224])
    }

    func testInvalidParametersAreRejected() {
        XCTAssertThrowsError(try CLIPPreprocessor(resolution: 0))
        XCTAssertThrowsError(try CLIPPreprocessor(resolution: 224, mean: [0.5, 0.5]))
        XCTAssertThrowsError(try CLIPPreprocessor(resolution: 224, std: [0.5, 0, 0.5]))
    }
}
