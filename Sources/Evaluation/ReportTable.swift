import Foundation

/// The report as text for a terminal: per benchmark, a row per score with its value and interval in
/// percent; with two models, both side by side and their difference.
public enum ReportTable {
    public static func render(_ report: EvaluationReport) -> String {
        var out = ""
        let letters = ["A", "B"]
        for (index, model) in report.models.enumerated() {
            let name = report.models.count > 1 ? "model \(letters[min(index, 1)])" : "model"
            out += "\(name): \(model.label) (\(model.images) images, \(model.captions) captions \(model.scoring == nil ? "embedded" : "encoded")"
                + (model.failedImages + model.failedCaptions > 0 ? "; \(model.failedImages) images, \(model.failedCaptions) captions failed" : "") + ")\n"
            if let scoring = model.scoring { out += "  s(c, i): \(scoring)\n" }
        }
        let b = report.bootstrap
        out += "intervals: \(percent(b.confidence, digits: 0))% percentile bootstrap, \(b.resamples) resamples of items, seed \(b.seed)"
            + (report.models.count > 1 ? "; B − A paired" : "") + "\n"
        for benchmark in report.benchmarks {
            out += "\n\(benchmark.name) (\(benchmark.kind.rawValue), \(benchmark.source)): \(benchmark.scored) of \(benchmark.rows) items scored"
                + (benchmark.skipped.isEmpty ? "" : ", \(benchmark.skipped.count) skipped") + "\n"
            out += table(benchmark, models: report.models.count)
        }
        return out
    }

    static func table(_ benchmark: BenchmarkResult, models: Int) -> String {
        var header = ["score", benchmark.subsetName ?? "subset", "items"]
        header += models == 1 ? ["%", "interval"] : ["A %", "interval", "B %", "interval", "B − A", "interval"]
        var rows = [header]
        for score in benchmark.scores {
            var row = [score.metric, label(score.scope), String(score.items)]
            for model in score.models { row += [percent(model.estimate.value), interval(model.estimate)] }
            if let difference = score.difference { row += [signed(difference.value), interval(difference, signed: true)] }
            rows.append(row)
        }
        guard rows.count > 1 else { return "  (no scores: no item could be scored)\n" }
        let widths = header.indices.map { column in rows.map { $0.indices.contains(column) ? $0[column].count : 0 }.max() ?? 0 }
        return rows.map { row in
            "  " + row.enumerated().map { column, cell in
                let pad = String(repeating: " ", count: widths[column] - cell.count)
                return column < 2 ? cell + pad : pad + cell
            }.joined(separator: "  ")
        }.joined(separator: "\n") + "\n"
    }

    static func label(_ scope: ScoreScope) -> String {
        switch scope {
        case .all: return "all"
        case .subset(let name): return name
        case .macro(let subsets): return "macro of \(subsets.count)"
        }
    }

    static func percent(_ value: Double, digits: Int = 1) -> String {
        value.isFinite ? String(format: "%.\(digits)f", value * 100) : "–"
    }

    static func signed(_ value: Double) -> String {
        value.isFinite ? String(format: "%+.1f", value * 100) : "–"
    }

    static func interval(_ estimate: Estimate, signed: Bool = false) -> String {
        let format = signed ? { (v: Double) in Self.signed(v) } : { (v: Double) in percent(v) }
        return "[\(format(estimate.low)), \(format(estimate.high))]"
    }
}
