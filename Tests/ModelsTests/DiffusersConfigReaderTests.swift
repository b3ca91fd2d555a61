import Foundation
import XCTest
@testable import Models

/// A diffusers config.json that is not JSON at all is told apart from a bad value inside one.
final class DiffusersConfigReaderTests: XCTestCase {
    func testUnparsableConfigurationNamesThePosition() throws {
        XCTAssertThrowsError(try DiffusersConfigReader.decode(UNetConfiguration.self, from: Data("{\n  \"in_channels\": 4,,\n}".utf8), file: "unet/config.json")) { error in
            XCTAssertTrue("\(error)".contains("unet/config.json: not valid JSON: line 2, column 20 (byte 21): expected a string key"), "\(error)")
        }
        XCTAssertThrowsError(try DiffusersConfigReader.decode(UNetConfiguration.self, from: Data("{\"in_channels\": \"four\"}".utf8), file: "unet/config.json")) { error in
            XCTAssertTrue("\(error)".contains("'in_channels' is not a"), "\(error)")
        }
    }
}
