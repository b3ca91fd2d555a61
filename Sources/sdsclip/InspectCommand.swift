import ArgumentParser
import Checkpoints
import Foundation
import WeightsIO

struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "List the tensors of a weights file or folder: names, dtypes, shapes, sizes and metadata.",
        discussion: """
        For a CLIP (full or text tower alone, any layout) it also reports the layout, the architecture, \
        where the heads and activation came from, and parameter totals per tower.
        """
    )

    @Argument(help: "A weights file (any supported format), a sharded index, or a model/pipeline folder.")
    var path: String

    @Flag(help: "Print one JSON object instead of a table.")
    var json = false

    @Option(help: "A CLIP configuration file (transformers config.json or OpenCLIP config) for the architecture report.")
    var config: String?

    @OptionGroup var safety: WeightSafetyOptions

    func run() throws {
        try reportingErrors {
            let store = try WeightsReader.open(path, options: safety.readOptions)
            let clip = clipDescription(store)
            if json {
                print(try jsonReport(store, clip: clip))
            } else {
                print(textReport(store))
                if let clip { print(clipReport(clip)) }
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
        if let globals = store.pickleGlobals { lines.append("pickle:   " + Self.verdictLine(globals)) }
        let nameWidth = min(store.names.map(\.count).max() ?? 4, 80)
        lines.append("")
        for record in store.orderedRecords {
            let name = record.name.padding(toLength: max(nameWidth, record.name.count), withPad: " ", startingAt: 0)
            let dtype = record.dtype.rawValue.padding(toLength: 8, withPad: " ", startingAt: 0)
            let shape = Formatting.shape(record.shape).padding(toLength: 22, withPad: " ", startingAt: 0)
            lines.append("\(name)  \(dtype) \(shape) \(Formatting.bytes(record.byteCount))")
        }
        var byDType: [DType: Int] = [:]
        for record in store.records.values { byDType[record.dtype] = TensorShape.saturatingSum(byDType[record.dtype] ?? 0, record.elementCount) }
        lines.append("")
        lines.append("tensors:  \(Formatting.count(store.count))")
        lines.append("elements: \(Formatting.count(store.totalElements)) ("
            + byDType.sorted { $0.key.rawValue < $1.key.rawValue }.map { "\($0.key.rawValue) \(Formatting.count($0.value))" }.joined(separator: ", ") + ")")
        lines.append("bytes:    \(Formatting.bytes(store.totalBytes))")
        return lines.joined(separator: "\n")
    }

    /// The CLIP report, or nil for other models. A CLIP whose description fails (e.g. a broken
    /// configuration file beside it) still gets its tensor table; the reason goes to stderr.
    func clipDescription(_ store: WeightStore) -> CLIPDescription? {
        do {
            return try CLIPLoader.describe(store: store, path: path, configuration: config)
        } catch {
            printError("note: not described as a CLIP: \(error)")
            return nil
        }
    }

    func clipReport(_ d: CLIPDescription) -> String {
        func heads(_ value: Int?) -> String { value.map(String.init) ?? "?" }
        var lines = ["", "layout:       \(d.layout.rawValue) (CLIP, \(d.towers == "text" ? "text tower only" : "image + text"))",
                     "architecture: \(d.architecture)"]
        if let v = d.vision {
            lines.append("vision:       width \(v.width), \(v.layers) layers, \(heads(v.heads)) heads, patch \(v.patchSize), image \(v.imageSize), MLP \(v.mlpWidth)")
        }
        let t = d.text
        lines.append("text:         width \(t.width), \(t.layers) layers, \(heads(t.heads)) heads, context \(t.contextLength), vocabulary \(t.vocabularySize), MLP \(t.mlpWidth)")
        lines.append("embed:        \(d.embedDimension.map(String.init) ?? "none (no projection)")")
        lines.append("activation:   \(d.activation?.rawValue ?? "?")")
        lines.append("heads from:   \(d.headsSource)")
        if d.activationSource != d.headsSource { lines.append("activation from: \(d.activationSource)") }
        let p = d.parameters
        lines.append("parameters:   \(Formatting.count(p.total)) (vision \(Formatting.count(p.vision)), text \(Formatting.count(p.text)), other \(Formatting.count(p.other)))")
        if !d.dropped.isEmpty { lines.append("ignored:      \(d.dropped.count) derived buffer(s): " + d.dropped.prefix(4).joined(separator: "; ") + (d.dropped.count > 4 ? "; …" : "")) }
        return lines.joined(separator: "\n")
    }

    /// What `torch.load` would make of the file's pickles (dangerous ones were refused while reading).
    static func verdictLine(_ globals: PickleGlobalsReport) -> String {
        if globals.isSafe { return "safe: every global is on the allowlist of inert data constructors" }
        return "unknown globals (inert here; torch.load(weights_only=False) would import them; --strict refuses them): "
            + globals.summary
    }

    func jsonReport(_ store: WeightStore, clip: CLIPDescription?) throws -> String {
        struct Entry: Encodable { let name: String; let dtype: String; let shape: [Int]; let bytes: Int }
        /// `verdict` is "safe" or "unknown-globals"; absent for files without pickles.
        struct Pickle: Encodable { let verdict: String; let unknownGlobals: [String] }
        struct Report: Encodable {
            let path: String
            let format: String
            let files: [String]
            let metadata: [String: String]
            let tensors: [Entry]
            let tensorCount: Int
            let elementCount: Int
            let byteCount: Int
            let clip: CLIPDescription?
            let pickle: Pickle?
        }
        let report = Report(path: path, format: store.format.rawValue, files: store.sources, metadata: store.metadata,
                            tensors: store.orderedRecords.map { Entry(name: $0.name, dtype: $0.dtype.rawValue, shape: $0.shape, bytes: $0.byteCount) },
                            tensorCount: store.count, elementCount: store.totalElements, byteCount: store.totalBytes, clip: clip,
                            pickle: store.pickleGlobals.map { Pickle(verdict: $0.isSafe ? "safe" : "unknown-globals", unknownGlobals: $0.unknown) })
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(report), as: UTF8.self)
    }
}
