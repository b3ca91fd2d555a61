import Foundation
import XCTest

/// Minimal safetensors reader for the image fixtures (U8 and F32 only). Deliberately tiny and
/// independent of WeightsIO so these tests do not depend on that module's correctness.
struct FixtureTensors {
    struct Entry {
        let dtype: String
        let shape: [Int]
        let range: Range<Int>
    }

    let url: URL
    let entries: [String: Entry]
    private let payload: Data

    init(_ url: URL) throws {
        self.url = url
        let data = try Data(contentsOf: url)
        guard data.count >= 8 else { throw FixtureError("\(url.lastPathComponent): shorter than 8 bytes") }
        let headerLength = data.prefix(8).enumerated().reduce(0) { $0 | (Int($1.element) << (8 * $1.offset)) }
        guard headerLength <= data.count - 8 else { throw FixtureError("\(url.lastPathComponent): bad header length") }
        let header = try JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + headerLength)))
        guard let table = header as? [String: Any] else { throw FixtureError("\(url.lastPathComponent): header not an object") }
        var entries: [String: Entry] = [:]
        for (name, value) in table where name != "__metadata__" {
            guard let fields = value as? [String: Any], let dtype = fields["dtype"] as? String,
                  let shape = fields["shape"] as? [Int], let offsets = fields["data_offsets"] as? [Int],
                  offsets.count == 2, offsets[0] <= offsets[1]
            else { throw FixtureError("\(url.lastPathComponent): bad entry \(name)") }
            entries[name] = Entry(dtype: dtype, shape: shape, range: offsets[0]..<offsets[1])
        }
        self.entries = entries
        self.payload = data.subdata(in: (8 + headerLength)..<data.count)
    }

    var names: [String] { entries.keys.sorted() }

    func bytes(_ name: String) throws -> (values: [UInt8], shape: [Int]) {
        let entry = try lookup(name, dtype: "U8", elementSize: 1)
        return (Array(payload[entry.range]), entry.shape)
    }

    func floats(_ name: String) throws -> (values: [Float], shape: [Int]) {
        let entry = try lookup(name, dtype: "F32", elementSize: 4)
        let raw = payload.subdata(in: entry.range)
        let values = raw.withUnsafeBytes { buffer in
            (0..<(entry.range.count / 4)).map {
                Float(bitPattern: UInt32(littleEndian: buffer.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self)))
            }
        }
        return (values, entry.shape)
    }

    private func lookup(_ name: String, dtype: String, elementSize: Int) throws -> Entry {
        guard let entry = entries[name] else { throw FixtureError("\(url.lastPathComponent): no tensor \(name)") }
        guard entry.dtype == dtype, entry.range.upperBound <= payload.count,
              entry.range.count == entry.shape.reduce(1, *) * elementSize
        else { throw FixtureError("\(url.lastPathComponent): \(name) is \(entry.dtype) \(entry.shape), expected \(dtype)") }
        return entry
    }
}

struct FixtureError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

enum ImageFixtures {
    static let directory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("fixtures/images")

    static func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    static func tensors(_ file: String) throws -> FixtureTensors {
        try FixtureTensors(directory.appendingPathComponent(file))
    }
}

/// Per-image comparison of two byte arrays: the largest difference and how many are equal.
struct ByteComparison: CustomStringConvertible {
    let maxDifference: Int
    let equalFraction: Double

    init(_ actual: [UInt8], _ expected: [UInt8]) {
        // A length mismatch counts as the worst possible difference.
        var maxDifference = actual.count == expected.count ? 0 : Int.max
        var equal = 0
        for (a, e) in zip(actual, expected) {
            let d = abs(Int(a) - Int(e))
            maxDifference = max(maxDifference, d)
            if d == 0 { equal += 1 }
        }
        self.maxDifference = maxDifference
        self.equalFraction = actual.isEmpty ? 1 : Double(equal) / Double(actual.count)
    }

    var description: String {
        String(format: "max |diff| %d/255, %.4f%% exactly equal", maxDifference, equalFraction * 100)
    }
}
