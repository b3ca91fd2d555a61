import ArgumentParser
import Foundation
import WeightsIO

struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "List the tensors of a weights file or folder: names, dtypes, shapes, sizes and metadata."
    )

    @Argument(help: "A weights file (any supported format), a sharded index, or a model/pipeline folder.")
    var path: String

    @Flag(help: "Print one JSON object instead of a table.")
    var json = false

    func run() throws {
        try reportingErrors {
            let store = try WeightsReader.open(path)
            if json {
                print(try jsonReport(store))
            } else {
                print(textReport(store))
                if let report = stableDiffusionReport() { print(report) }
            }
        }
    }

    func textReport(_ store: WeightStore) -> String {
        var lines: [String] = []
        lines.append("file:     \(path)")
        lines.append("format:   \(store.format.rawValue)")
        if store.sources.count > 1 { lines.append("files:    \(store.sources.count)") }
        for key in store.metadata.keys.sorted() { lines.append("metadata: \(key) = \(store.metadata[key] ?? "")") }
        let nameWidth = min(store.names.map(\.count).max() ?? 4, 80)
        lines.append("")
        for record in store.orderedRecords {
            let name = record.name.padding(toLength: max(nameWidth, record.name.count), withPad: " ", startingAt: 0)
            let dtype = record.dtype.rawValue.padding(toLength: 8, withPad: " ", startingAt: 0)
            let shape = Formatting.shape(record.shape).padding(toLength: 22, withPad: " ", startingAt: 0)
            lines.append("\(name)  \(dtype) \(shape) \(Formatting.bytes(record.byteCount))")
        }
        var byDType: [DType: Int] = [:]
        for record in store.records.values { byDType[record.dtype, default: 0] += record.elementCount }
        lines.append("")
        lines.append("tensors:  \(Formatting.count(store.count))")
        lines.append("elements: \(Formatting.count(store.totalElements)) ("
            + byDType.sorted { $0.key.rawValue < $1.key.rawValue }.map { "\($0.key.rawValue) \(Formatting.count($0.value))" }.joined(separator: ", ") + ")")
        lines.append("bytes:    \(Formatting.bytes(store.totalBytes))")
        return lines.joined(separator: "\n")
    }

    func jsonReport(_ store: WeightStore) throws -> String {
        struct Entry: Encodable { let name: String; let dtype: String; let shape: [Int]; let bytes: Int }
        struct Report: Encodable {
            let path: String
            let format: String
            let files: [String]
            let metadata: [String: String]
            let tensors: [Entry]
            let tensorCount: Int
            let elementCount: Int
            let byteCount: Int
        }
        let report = Report(path: path, format: store.format.rawValue, files: store.sources, metadata: store.metadata,
                            tensors: store.orderedRecords.map { Entry(name: $0.name, dtype: $0.dtype.rawValue, shape: $0.shape, bytes: $0.byteCount) },
                            tensorCount: store.count, elementCount: store.totalElements, byteCount: store.totalBytes)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(report), as: UTF8.self)
    }
}
