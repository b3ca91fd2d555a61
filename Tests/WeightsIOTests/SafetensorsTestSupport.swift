import Foundation
import XCTest
@testable import WeightsIO

/// Shared helpers for the safetensors/dtype/detection tests: fixture paths, temp folders and
/// hand-built (possibly malformed) safetensors bytes.
enum SafetensorsFixtures {
    /// /work/main/fixtures/safetensors, found from this source file so tests run from any directory.
    static let folder: String = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("fixtures/safetensors").path

    static func path(_ name: String) -> String { folder + "/" + name }

    static func bytes(_ name: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: URL(fileURLWithPath: path(name))))
    }

    /// A fresh empty folder under the system temp directory; removed by the caller's teardown.
    static func temporaryFolder() throws -> String {
        let path = NSTemporaryDirectory() + "sdsclip-h1-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// `u64 length` + `header` + `data`, with an optional lying length.
    static func file(header: String, data: [UInt8] = [], declaredLength: UInt64? = nil) -> [UInt8] {
        let json = Array(header.utf8)
        var bytes: [UInt8] = []
        withUnsafeBytes(of: (declaredLength ?? UInt64(json.count)).littleEndian) { bytes.append(contentsOf: $0) }
        bytes.append(contentsOf: json)
        bytes.append(contentsOf: data)
        return bytes
    }

    static func read(_ bytes: [UInt8]) throws -> WeightStore {
        try SafetensorsReader.read(owner: ByteOwner(copying: bytes), file: "test.safetensors")
    }

    /// A tensor of `name` read as little-endian values of T (fixture files are little-endian).
    static func values<T>(_ record: TensorRecord, as _: T.Type) -> [T] {
        let buffer = record.storage.buffer
        return (0..<(buffer.count / MemoryLayout<T>.size)).map {
            buffer.loadUnaligned(fromByteOffset: $0 * MemoryLayout<T>.size, as: T.self)
        }
    }
}

/// Asserts that `body` throws a `WeightsError` of `kind` whose description contains `fragment`.
func assertSafetensorsError<T>(_ kind: WeightsError.Kind, _ fragment: String, file: StaticString = #filePath, line: UInt = #line,
                           _ body: () throws -> T) {
    do {
        _ = try body()
        XCTFail("expected a \(kind) error containing \"\(fragment)\", got success", file: file, line: line)
    } catch let error as WeightsError {
        XCTAssertEqual(error.kind, kind, "\(error)", file: file, line: line)
        XCTAssertTrue(error.description.contains(fragment), "\"\(error)\" lacks \"\(fragment)\"", file: file, line: line)
    } catch {
        XCTFail("expected WeightsError, got \(error)", file: file, line: line)
    }
}
