import Foundation
import Imaging
import XCTest

@testable import Evaluation

/// Files for the reader tests, written under a fresh temporary folder that the test removes.
struct Scratch {
    let root: URL

    init(_ test: XCTestCase) throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("eval-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        test.addTeardownBlock { [root] in try? FileManager.default.removeItem(at: root) }
    }

    func path(_ relative: String) -> String { root.appendingPathComponent(relative).path }

    /// Writes `contents` at `relative` (making its folders) and returns the path.
    @discardableResult
    func put(_ relative: String, _ contents: [UInt8]) throws -> String {
        let target = path(relative)
        try FileManager.default.createDirectory(atPath: (target as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        guard FileManager.default.createFile(atPath: target, contents: Data(contents)) else { throw CocoaError(.fileWriteUnknown) }
        return target
    }

    @discardableResult
    func put(_ relative: String, text: String) throws -> String { try put(relative, Array(text.utf8)) }

    /// A small PNG whose pixels depend on `seed` (a stand-in for a benchmark's image).
    @discardableResult
    func picture(_ relative: String, seed: Int, width: Int = 12, height: Int = 9) throws -> String {
        let pixels = (0..<(width * height * 3)).map { UInt8(truncatingIfNeeded: $0 &* (seed + 3) &+ seed &* 41) }
        return try put(relative, [UInt8](try PNGEncoder.encode(try RGBImage(width: width, height: height, pixels: pixels))))
    }
}

enum Repository {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func path(_ relative: String) -> String { root.appendingPathComponent(relative).path }

    /// The real SugarCrepe files shared beside the checkout (../shared/benchmarks/sugarcrepe), if present.
    static var sharedSugarCrepe: String? {
        let candidates = [root.deletingLastPathComponent().appendingPathComponent("shared/benchmarks/sugarcrepe").path,
                          "/work/shared/benchmarks/sugarcrepe"]
        return candidates.first { FileManager.default.fileExists(atPath: $0 + "/add_att.json") }
    }
}

enum RGBImageFixture {
    /// Every byte non-zero, so black fill shows.
    static func gradient(width: Int, height: Int) throws -> RGBImage {
        try RGBImage(width: width, height: height, pixels: (0..<(width * height * 3)).map { UInt8($0 % 251 + 1) })
    }
}

extension EmbeddingTable {
    /// A table from hand-made vectors (for scoring without a model).
    static func fixed(images: [(ImageReference, [Float])], captions: [(String, [Float])]) -> EmbeddingTable {
        var table = EmbeddingTable(dimension: images.first?.1.count ?? captions.first?.1.count ?? 1)
        table.add(images: images.map(\.0), values: images.flatMap(\.1))
        table.add(captions: captions.map(\.0), values: captions.flatMap(\.1))
        return table
    }
}
