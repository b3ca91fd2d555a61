import Foundation
import XCTest
@testable import WeightsIO

final class DetectionTests: XCTestCase {
    func testRealFilesAreRecognisedByContent() throws {
        XCTAssertEqual(try FormatDetection.detect(path: SafetensorsFixtures.path("detect_zip.pt")), .zip)
        XCTAssertEqual(try FormatDetection.detect(path: SafetensorsFixtures.path("detect_legacy.pt")), .torchLegacy)
        let safetensors = SafetensorsFixtures.path("all_dtypes.safetensors")
        let header = try SafetensorsFixtures.bytes("all_dtypes.safetensors").withUnsafeBytes { try SafetensorsReader.readHeader($0) }
        XCTAssertEqual(try FormatDetection.detect(path: safetensors), .safetensors(headerLength: header.headerLength))
        XCTAssertEqual(try FormatDetection.detect(path: SafetensorsFixtures.path("all_dtypes_expected.json")), .unknown)
        // The extension plays no part: a safetensors file named .pt is still safetensors.
        let folder = try SafetensorsFixtures.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try FileManager.default.copyItem(atPath: safetensors, toPath: folder + "/weights.pt")
        XCTAssertEqual(try FormatDetection.detect(path: folder + "/weights.pt"), .safetensors(headerLength: header.headerLength))
        assertSafetensorsError(.io, "cannot open") { try FormatDetection.detect(path: folder + "/none") }
        assertSafetensorsError(.io, "not a regular file") { try FormatDetection.detect(path: folder) }
    }

    func testSyntheticSignatures() {
        var tar = [UInt8](repeating: 0, count: 512)
        tar.replaceSubrange(257..<262, with: Array("ustar".utf8))
        XCTAssertEqual(FormatDetection.detect(bytes: tar), .tar)
        XCTAssertEqual(FormatDetection.detect(bytes: [0x50, 0x4B, 0x03, 0x04, 0, 0]), .zip)
        XCTAssertEqual(FormatDetection.detect(bytes: [0x50, 0x4B, 0x05, 0x06]), .unknown, "an empty zip holds no checkpoint")
        XCTAssertEqual(FormatDetection.detect(bytes: Array(FormatDetection.legacyMagic.prefix(14))), .unknown, "truncated magic")

        XCTAssertEqual(FormatDetection.detect(bytes: SafetensorsFixtures.file(header: " \n{}")), .safetensors(headerLength: 4))
        XCTAssertEqual(FormatDetection.detect(bytes: SafetensorsFixtures.file(header: "[]")), .unknown)
        // Bad lengths are still recognised as safetensors, so the reader can say which rule they break.
        XCTAssertEqual(FormatDetection.detect(bytes: SafetensorsFixtures.file(header: "{}", declaredLength: 50)), .safetensors(headerLength: 50))
        XCTAssertEqual(FormatDetection.detect(bytes: SafetensorsFixtures.file(header: "{}", declaredLength: 100_000_001)),
                       .safetensors(headerLength: 100_000_001))
        XCTAssertEqual(FormatDetection.detect(bytes: SafetensorsFixtures.file(header: "{}", declaredLength: UInt64.max)), .safetensors(headerLength: Int.max))
        XCTAssertEqual(FormatDetection.detect(bytes: [UInt8]("{\"a\": 1}".utf8)), .unknown)
        XCTAssertEqual(FormatDetection.detect(bytes: []), .unknown)
    }
}
