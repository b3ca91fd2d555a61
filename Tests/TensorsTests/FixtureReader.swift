import Foundation
@testable import Tensors

/// A deliberately minimal safetensors reader for the test fixtures (F32 and I64 only); the real,
/// validating reader lives in WeightsIO. Layout: u64 little-endian header length, JSON header, data.
struct FixtureFile {
    struct Entry {
        let dtype: String
        let shape: [Int]
        let range: Range<Int>
    }

    enum ReadError: Error, CustomStringConvertible {
        case malformed(String)
        case missing(String)
        var description: String {
            switch self {
            case .malformed(let detail): return "fixture malformed: \(detail)"
            case .missing(let name): return "fixture tensor missing: \(name)"
            }
        }
    }

    let path: String
    let entries: [String: Entry]
    private let data: Data
    private let dataStart: Int

    /// Loads fixtures/tensors/<name>.safetensors from the package root.
    init(named name: String) throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let url = root.appendingPathComponent("fixtures/tensors/\(name).safetensors")
        path = url.path
        data = try Data(contentsOf: url)
        guard data.count >= 8 else { throw ReadError.malformed("\(path): shorter than 8 bytes") }
        let headerLength = data.prefix(8).enumerated().reduce(0) { $0 | (Int($1.element) << (8 * $1.offset)) }
        guard headerLength > 0, 8 + headerLength <= data.count else {
            throw ReadError.malformed("\(path): header length \(headerLength) exceeds file size \(data.count)")
        }
        dataStart = 8 + headerLength
        guard let header = try JSONSerialization.jsonObject(with: data.subdata(in: 8..<dataStart)) as? [String: Any] else {
            throw ReadError.malformed("\(path): header is not a JSON object")
        }
        var entries: [String: Entry] = [:]
        for (key, value) in header where key != "__metadata__" {
            guard let info = value as? [String: Any], let dtype = info["dtype"] as? String,
                  let shape = info["shape"] as? [Int], let offsets = info["data_offsets"] as? [Int], offsets.count == 2,
                  offsets[0] <= offsets[1], dataStart + offsets[1] <= data.count else {
                throw ReadError.malformed("\(path): bad entry \(key)")
            }
            entries[key] = Entry(dtype: dtype, shape: shape, range: (dataStart + offsets[0])..<(dataStart + offsets[1]))
        }
        self.entries = entries
    }

    func has(_ name: String) -> Bool { entries[name] != nil }

    func tensor(_ name: String) throws -> Tensor {
        guard let entry = entries[name] else { throw ReadError.missing("\(name) in \(path)") }
        guard entry.dtype == "F32", entry.range.count == 4 * entry.shape.reduce(1, *) else {
            throw ReadError.malformed("\(name): dtype \(entry.dtype) with \(entry.range.count) bytes for \(entry.shape)")
        }
        var values = [Float](repeating: 0, count: entry.range.count / 4)
        _ = values.withUnsafeMutableBytes { data.copyBytes(to: $0, from: entry.range) }
        return try Tensor(shape: entry.shape, data: values.map { Float(bitPattern: $0.bitPattern.littleEndian) })
    }

    func integers(_ name: String) throws -> (values: [Int], shape: [Int]) {
        guard let entry = entries[name] else { throw ReadError.missing("\(name) in \(path)") }
        guard entry.dtype == "I64", entry.range.count == 8 * entry.shape.reduce(1, *) else {
            throw ReadError.malformed("\(name): dtype \(entry.dtype) with \(entry.range.count) bytes for \(entry.shape)")
        }
        var values = [Int64](repeating: 0, count: entry.range.count / 8)
        _ = values.withUnsafeMutableBytes { data.copyBytes(to: $0, from: entry.range) }
        return (values.map { Int(Int64(littleEndian: $0)) }, entry.shape)
    }
}
