import ArgumentParser
import Foundation
import WeightsIO

struct DiffCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diff",
        abstract: "Compare two weight files or folders: tensors only in one, and dtype, shape and value changes.",
        discussion: """
        A and B are anything `inspect` reads (any format, a sharded index, a model or pipeline folder); \
        they need not share a format. For a tensor in both, values are compared element by element as \
        Float32: max-abs is max |b − a|, relative is max-abs / max |a|, changed counts elements that \
        differ (NaN equals NaN). Files are streamed and compared in parallel, never copied into memory.

        Example, which LayerNorms a fine-tune moved:
          sdsclip diff base/model.safetensors tuned/model.safetensors --filter '*layer_norm*'

        Exit status: 0 when the comparison ran (whether or not anything differs); with --exit-code, \
        1 when something differs; 1 on an error reading either side.
        """
    )

    @Argument(help: "The reference weights (A).")
    var a: String

    @Argument(help: "The weights compared with A (B).")
    var b: String

    @Option(help: "Only tensors whose names match this shell glob (fnmatch; * also matches dots), e.g. '*layer_norm*'.")
    var filter: String?

    @Flag(help: "Print one JSON object (schema docs/schemas/diff.schema.json) instead of the report.")
    var json = false

    @Flag(help: "List identical tensors too.")
    var all = false

    @Flag(name: .customLong("exit-code"), help: "Exit with status 1 when A and B differ (as `git diff --exit-code`).")
    var exitCode = false

    @OptionGroup var safety: WeightSafetyOptions

    func run() throws {
        var differs = false
        try reportingErrors {
            let storeA = try WeightsReader.open(a, options: safety.readOptions)
            let storeB = try WeightsReader.open(b, options: safety.readOptions)
            var options = WeightsDiff.Options()
            if let filter {
                let pattern = filter
                options.include = { name in fnmatch(pattern, name, 0) == 0 }
            }
            let total = storeA.totalBytes + storeB.totalBytes
            let progress = total >= 256 << 20 ? SharedProgressLine(ProgressLine(label: "diff")) : nil
            if let progress { options.progress = { done, total in progress.update(done: done, total: total) } }
            let diff = try WeightsDiff.compare(storeA, storeB, options: options)
            if json {
                print(try DiffReport.json(diff, a: (a, storeA), b: (b, storeB), filter: filter))
            } else {
                print(DiffReport.text(diff, a: (a, storeA), b: (b, storeB), filter: filter, listIdentical: all))
            }
            differs = diff.hasDifferences
        }
        if exitCode && differs { throw ExitCode(1) }
    }
}

/// A progress line that worker threads update in turn.
final class SharedProgressLine: @unchecked Sendable {
    private let line: ProgressLine
    private let lock = NSLock()
    init(_ line: ProgressLine) { self.line = line }
    func update(done: Int64, total: Int64) { lock.withLock { line.update(done: done, total: total) } }
}

/// The text and JSON forms of a `WeightsDiff`.
enum DiffReport {
    typealias Side = (path: String, store: WeightStore)

    static func text(_ diff: WeightsDiff, a: Side, b: Side, filter: String?, listIdentical: Bool) -> String {
        var lines = ["A: \(a.path) (\(a.store.format.rawValue), \(Formatting.count(a.store.count)) tensors)",
                     "B: \(b.path) (\(b.store.format.rawValue), \(Formatting.count(b.store.count)) tensors)"]
        if let filter { lines.append("filter: \(filter)") }
        func tensorLine(_ t: WeightsDiff.Tensor) -> String { "  \(t.name)  \(t.dtype.rawValue) \(Formatting.shape(t.shape))" }
        if !diff.onlyInA.isEmpty {
            lines.append("")
            lines.append("only in A (\(Formatting.count(diff.onlyInA.count))):")
            lines += diff.onlyInA.map(tensorLine)
        }
        if !diff.onlyInB.isEmpty {
            lines.append("")
            lines.append("only in B (\(Formatting.count(diff.onlyInB.count))):")
            lines += diff.onlyInB.map(tensorLine)
        }
        let shown = listIdentical ? diff.inBoth : diff.changed
        if !shown.isEmpty {
            lines.append("")
            lines.append(listIdentical ? "in both (\(Formatting.count(shown.count))):" : "changed (\(Formatting.count(shown.count))):")
            let width = min(shown.map(\.name.count).max() ?? 0, 80)
            lines += shown.map { "  " + $0.name.padding(toLength: max(width, $0.name.count), withPad: " ", startingAt: 0) + "  " + describe($0) }
        }
        lines.append("")
        lines.append("summary: \(diff.onlyInA.count) only in A, \(diff.onlyInB.count) only in B, "
            + "\(diff.changed.count) changed, \(diff.identicalCount) identical"
            + (diff.hasDifferences ? "" : " (no differences)"))
        return lines.joined(separator: "\n")
    }

    static func describe(_ pair: WeightsDiff.Pair) -> String {
        var parts: [String] = []
        parts.append(pair.dtypeChanged ? "\(pair.dtypeA.rawValue) → \(pair.dtypeB.rawValue)" : pair.dtypeA.rawValue)
        parts.append(pair.shapeChanged ? "\(Formatting.shape(pair.shapeA)) → \(Formatting.shape(pair.shapeB))" : Formatting.shape(pair.shapeA))
        if let values = pair.values {
            if values.changedElements == 0 {
                parts.append("values identical")
            } else {
                let share = values.elementCount > 0 ? Double(values.changedElements) / Double(values.elementCount) * 100 : 0
                parts.append(String(format: "max-abs %.3g", values.maxAbs))
                parts.append(values.relative.map { String(format: "relative %.3g", $0) } ?? "relative n/a (A is all zeros)")
                parts.append("changed \(Formatting.count(values.changedElements)) / \(Formatting.count(values.elementCount))"
                    + String(format: " (%.1f%%)", share))
            }
        } else if let reason = pair.notCompared {
            parts.append("values not compared: \(reason)")
        }
        return parts.joined(separator: "  ")
    }

    static func json(_ diff: WeightsDiff, a: Side, b: Side, filter: String?) throws -> String {
        func side(_ s: Side) -> [String: Any] {
            ["path": JSONOutput.absolute(s.path), "format": s.store.format.rawValue,
             "files": s.store.sources.map(JSONOutput.absolute), "tensorCount": s.store.count]
        }
        func tensor(_ t: WeightsDiff.Tensor) -> [String: Any] { ["name": t.name, "dtype": t.dtype.rawValue, "shape": t.shape] }
        func values(_ v: WeightsDiff.ValueDifference) -> [String: Any] {
            ["elementCount": v.elementCount, "changedElements": v.changedElements, "maxAbs": JSONOutput.number(v.maxAbs),
             "relative": JSONOutput.orNull(v.relative.map(JSONOutput.number)), "maxAbsA": JSONOutput.number(v.maxAbsA)]
        }
        let pairs: [[String: Any]] = diff.inBoth.map { p in
            ["name": p.name, "dtypeA": p.dtypeA.rawValue, "dtypeB": p.dtypeB.rawValue, "shapeA": p.shapeA, "shapeB": p.shapeB,
             "identical": p.isIdentical, "values": JSONOutput.orNull(p.values.map(values)), "notCompared": JSONOutput.orNull(p.notCompared)]
        }
        let report: [String: Any] = [
            "schema": "sdsclip.diff/1", "a": side(a), "b": side(b), "filter": JSONOutput.orNull(filter),
            "onlyInA": diff.onlyInA.map(tensor), "onlyInB": diff.onlyInB.map(tensor), "inBoth": pairs,
            "summary": ["onlyInA": diff.onlyInA.count, "onlyInB": diff.onlyInB.count, "changed": diff.changed.count,
                        "identical": diff.identicalCount, "differs": diff.hasDifferences],
        ]
        return try JSONOutput.render(report)
    }
}
