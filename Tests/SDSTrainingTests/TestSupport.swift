import Foundation
import Imaging
import XCTest

@testable import SDSTraining

/// A temp folder removed when the test ends.
final class TemporaryFolder {
    let url: URL

    init(_ label: String = "sdstraining") throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("\(label)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: url) }

    func path(_ relative: String) -> String { url.appendingPathComponent(relative).path }

    @discardableResult
    func write(_ relative: String, _ bytes: [UInt8]) throws -> String {
        let target = url.appendingPathComponent(relative)
        try FileManager.default.createDirectory(at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(bytes).write(to: target)
        return target.path
    }

    @discardableResult
    func write(_ relative: String, text: String) throws -> String { try write(relative, Array(text.utf8)) }
}

enum TestData {
    static let fixtures = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("fixtures/images")

    /// A small PNG of one colour, distinct per `seed`.
    static func png(_ seed: Int, size: Int = 8) throws -> [UInt8] {
        let colour = [UInt8(truncatingIfNeeded: seed * 37), UInt8(truncatingIfNeeded: seed * 91), UInt8(truncatingIfNeeded: seed * 13)]
        let image = try RGBImage(width: size, height: size, pixels: Array((0..<(size * size)).flatMap { _ in colour }))
        return [UInt8](try PNGEncoder.encode(image))
    }

    static func tar(_ members: [(String, [UInt8])]) throws -> [UInt8] {
        var writer = TarWriter()
        for (name, data) in members { try writer.add(name: name, data: data) }
        return writer.finished()
    }

    static func gzip(_ bytes: [UInt8]) throws -> [UInt8] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/gzip")
        process.arguments = ["-c", "-n"]
        let input = Pipe(), output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        try process.run()
        input.fileHandleForWriting.write(Data(bytes))
        try input.fileHandleForWriting.close()
        let result = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return [UInt8](result)
    }

    static func samples(_ items: [DataItem]) -> [TrainingSample] { items.compactMap(\.sample) }

    static func bad(_ items: [DataItem]) -> [BadSample] {
        items.compactMap { if case .bad(let bad) = $0 { return bad } else { return nil } }
    }

    /// Caption and image bytes: what makes two layouts' samples "the same".
    static func content(_ sample: TrainingSample) throws -> (String, Data) {
        switch sample.image {
        case .file(let path): return (sample.caption, try Data(contentsOf: URL(fileURLWithPath: path)))
        case .bytes(let data, _): return (sample.caption, data)
        }
    }
}
