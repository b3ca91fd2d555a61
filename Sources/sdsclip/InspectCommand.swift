import ArgumentParser
import Checkpoints
import Foundation
import WeightsIO

struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "List the tensors of a weights file or folder: names, dtypes, shapes, sizes and metadata.",
        discussion: """
        For a folder it names the weight file that was chosen (as from_pretrained chooses it). For a CLIP \
        (full or text tower alone, any layout) it also reports the layout, the architecture, where the heads \
        and activation came from, and parameter totals per tower; for a Stable Diffusion checkpoint, its \
        components in diffusers terms; for torch pickles, what torch.load would make of their globals.

        --json prints one object described by docs/schemas/inspect.schema.json ("schema": "sdsclip.inspect/1"): \
        every key always present, null when a section does not apply, paths absolute.
        """
    )

    @Argument(help: "A weights file (any supported format), a sharded index, or a model/pipeline folder.")
    var path: String

    @Flag(help: "Print one JSON object (schema docs/schemas/inspect.schema.json) instead of a table.")
    var json = false

    @Option(help: "Only list tensors whose names match this shell glob (fnmatch; * also matches dots), e.g. '*layer_norm*'. Totals say how many matched.")
    var filter: String?

    @Option(help: "A CLIP configuration file (transformers config.json or OpenCLIP config) for the architecture report.")
    var config: String?

    @OptionGroup var safety: WeightSafetyOptions

    func run() throws {
        try reportingErrors {
            let store = try WeightsReader.open(path, options: safety.readOptions)
            let clip = clipDescription(store)
            let sd = StableDiffusionSummary(path: path)
            let chosen = try chosenFiles()
            if json {
                print(try jsonReport(store, chosen: chosen, clip: clip, stableDiffusion: sd))
            } else {
                print(textReport(store, chosen: chosen))
                if let clip { print(clipReport(clip)) }
                if let sd { print(sd.text) }
            }
        }
    }

    /// The tensors the listing shows: all, or those matching --filter.
    func listed(_ store: WeightStore) -> [TensorRecord] {
        guard let filter else { return store.orderedRecords }
        return store.orderedRecords.filter { fnmatch(filter, $0.name, 0) == 0 }
    }

    /// For a folder, the weight file chosen in it (for a pipeline, one per component); nil for a file.
    func chosenFiles() throws -> [(component: String?, file: String)]? {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else { return nil }
        let folder = URL(fileURLWithPath: path)
        if FileManager.default.fileExists(atPath: folder.appendingPathComponent("model_index.json").path) {
            return try WeightsReader.pipelineComponents(path).map { component in
                (component, try WeightsReader.weightFile(in: folder.appendingPathComponent(component).path, variant: nil))
            }
        }
        return [(nil, try WeightsReader.weightFile(in: path, variant: nil))]
    }

    func textReport(_ store: WeightStore, chosen: [(component: String?, file: String)]?) -> String {
        var lines: [String] = []
        lines.append("file:     \(path)")
        for choice in chosen ?? [] {
            lines.append("chosen:   " + (choice.component.map { "\($0): " } ?? "") + choice.file)
        }
        lines.append("format:   \(store.format.rawValue)")
        if store.sources.count > 1 { lines.append("files:    \(store.sources.count)") }
        for key in store.metadata.keys.sorted() { lines.append("metadata: \(key) = \(store.metadata[key] ?? "")") }
        if let globals = store.pickleGlobals { lines.append("pickle:   " + Self.verdictLine(globals)) }
        let shown = listed(store)
        if let filter { lines.append("filter:   \(filter)") }
        let nameWidth = min(shown.map(\.name.count).max() ?? 4, 80)
        lines.append("")
        for record in shown {
            let name = record.name.padding(toLength: max(nameWidth, record.name.count), withPad: " ", startingAt: 0)
            let dtype = record.dtype.rawValue.padding(toLength: 8, withPad: " ", startingAt: 0)
            let shape = Formatting.shape(record.shape).padding(toLength: 22, withPad: " ", startingAt: 0)
            lines.append("\(name)  \(dtype) \(shape) \(Formatting.bytes(record.byteCount))")
        }
        lines.append("")
        if filter != nil {
            let elements = shown.reduce(0) { TensorShape.saturatingSum($0, $1.elementCount) }, bytes = shown.reduce(0) { TensorShape.saturatingSum($0, $1.byteCount) }
            lines.append("matched:  \(Formatting.count(shown.count)) of \(Formatting.count(store.count)) tensors, "
                + "\(Formatting.count(elements)) elements, \(Formatting.bytes(bytes))")
        }
        lines.append("tensors:  \(Formatting.count(store.count))")
        lines.append("elements: \(Formatting.count(store.totalElements)) ("
            + Self.elementsByDType(store).sorted { $0.key < $1.key }.map { "\($0.key) \(Formatting.count($0.value))" }.joined(separator: ", ") + ")")
        lines.append("bytes:    \(Formatting.bytes(store.totalBytes))")
        return lines.joined(separator: "\n")
    }

    static func elementsByDType(_ store: WeightStore) -> [String: Int] {
        var byDType: [String: Int] = [:]
        for record in store.records.values {
            byDType[record.dtype.rawValue] = TensorShape.saturatingSum(byDType[record.dtype.rawValue] ?? 0, record.elementCount)
        }
        return byDType
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

    /// `sdsclip.inspect/1` (docs/schemas/inspect.schema.json).
    func jsonReport(_ store: WeightStore, chosen: [(component: String?, file: String)]?, clip: CLIPDescription?,
                    stableDiffusion: StableDiffusionSummary?) throws -> String {
        let shown = listed(store)
        let tensors: [[String: Any]] = shown.map { ["name": $0.name, "dtype": $0.dtype.rawValue, "shape": $0.shape, "bytes": $0.byteCount] }
        let pickle: Any = store.pickleGlobals.map { globals -> [String: Any] in
            ["verdict": globals.isSafe ? "safe" : "unknown-globals", "unknownGlobals": globals.unknown]
        } ?? NSNull()
        let report: [String: Any] = [
            "schema": "sdsclip.inspect/1",
            "path": JSONOutput.absolute(path),
            "format": store.format.rawValue,
            "chosen": JSONOutput.orNull(chosen?.map { ["component": JSONOutput.orNull($0.component), "file": JSONOutput.absolute($0.file)] }),
            "files": store.sources.map(JSONOutput.absolute),
            "metadata": store.metadata,
            "filter": JSONOutput.orNull(filter),
            "tensors": tensors,
            "matchedCount": shown.count,
            "matchedElementCount": shown.reduce(0) { TensorShape.saturatingSum($0, $1.elementCount) },
            "matchedByteCount": shown.reduce(0) { TensorShape.saturatingSum($0, $1.byteCount) },
            "tensorCount": store.count,
            "elementCount": store.totalElements,
            "byteCount": store.totalBytes,
            "elementsByDType": Self.elementsByDType(store),
            "pickle": pickle,
            "clip": JSONOutput.orNull(clip.map(Self.json)),
            "stableDiffusion": JSONOutput.orNull(stableDiffusion?.json),
        ]
        return try JSONOutput.render(report)
    }

    static func json(_ d: CLIPDescription) -> [String: Any] {
        let vision: Any = d.vision.map { v -> [String: Any] in
            ["width": v.width, "layers": v.layers, "heads": JSONOutput.orNull(v.heads), "patchSize": v.patchSize,
             "imageSize": v.imageSize, "mlpWidth": v.mlpWidth]
        } ?? NSNull()
        let t = d.text
        return [
            "layout": d.layout.rawValue, "towers": d.towers, "architecture": d.architecture, "vision": vision,
            "text": ["width": t.width, "layers": t.layers, "heads": JSONOutput.orNull(t.heads), "contextLength": t.contextLength,
                     "vocabularySize": t.vocabularySize, "mlpWidth": t.mlpWidth] as [String: Any],
            "embedDimension": JSONOutput.orNull(d.embedDimension), "activation": JSONOutput.orNull(d.activation?.rawValue),
            "headsSource": d.headsSource, "activationSource": d.activationSource,
            "parameters": ["vision": d.parameters.vision, "text": d.parameters.text, "other": d.parameters.other, "total": d.parameters.total],
            "dropped": d.dropped,
        ]
    }
}
