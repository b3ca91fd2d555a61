import Foundation
import SDSTraining
import WeightsIO

/// Writes the demo's `report.md`, `report.json` and `loss.png` (each atomically) from its result.
enum DemoReport {
    static let models = [("base", "base CLIP (before)"), ("control", "control: λ = 0 fine-tune"), ("sds", "SDS fine-tune")]

    static func write(_ result: DemoResult) throws -> [String] {
        let out = result.settings.out
        func path(_ name: String) -> String { (out as NSString).appendingPathComponent(name) }
        try LossPlot.write(series: lossSeries(result.runs), to: path("loss.png"))
        let json = try JSONSerialization.data(withJSONObject: object(result), options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        try AtomicFile.write(Array(json) + [0x0A], to: path("report.json"))
        try AtomicFile.write(Array(markdown(result).utf8), to: path("report.md"))
        return ["report.md", "report.json", "loss.png"].map(path)
    }

    /// Both runs' losses, each a trailing mean over `window` steps (a step's loss depends on its random
    /// timesteps, so raw curves are mostly noise). The control's L_SDS goes through its untrained map.
    static func lossSeries(_ runs: [DemoRun]) -> [LossPlot.Series] {
        let window = smoothingWindow(runs)
        func smoothed(_ run: DemoRun, _ value: (SDSLosses) -> Float) -> [(step: Int, value: Double)] {
            var sum = 0.0, points: [(step: Int, value: Double)] = []
            for (index, entry) in run.history.enumerated() {
                sum += Double(value(entry.losses))
                if index >= window { sum -= Double(value(run.history[index - window].losses)) }
                points.append((entry.step, sum / Double(min(index + 1, window))))
            }
            return points
        }
        return runs.flatMap { run -> [LossPlot.Series] in
            let label = run.name == "sds" ? "SDS" : "control"
            var series: [LossPlot.Series] = [("\(label) L_CLIP", smoothed(run, \.clip)), ("\(label) L_SDS", smoothed(run, \.sds))]
            if run.lambda > 0 { series.insert(("\(label) loss", smoothed(run, \.total)), at: 0) }
            return series
        }
    }

    static func smoothingWindow(_ runs: [DemoRun]) -> Int { max(1, (runs.map { $0.history.count }.max() ?? 0) / 30) }

    static func percent(_ value: Double) -> String { String(format: "%.1f", 100 * value) }

    static func cell(_ estimate: DemoEstimate) -> String {
        "\(percent(estimate.value)) [\(percent(estimate.low)), \(percent(estimate.high))]"
    }

    static func signedCell(_ estimate: DemoEstimate) -> String {
        func signed(_ value: Double) -> String { (value >= 0 ? "+" : "") + percent(value) }
        return "\(signed(estimate.value)) [\(signed(estimate.low)), \(signed(estimate.high))]"
    }

    static func markdown(_ r: DemoResult) -> String {
        let s = r.settings
        var lines = ["# sdsclip demo", "",
                     "SDS-CLIP on the example world: the base CLIP fine-tuned with L = L_CLIP + λ·L_SDS through the SD teacher, and the "
                     + "same run with λ = 0 as the control (same seed, data order, noise and timesteps), scored on \(r.scored) "
                     + "Winoground-style swapped-caption pairs (`\(r.benchmark)`), images none of the models was trained on.", "",
                     "## Scores (percent, 95 % bootstrap interval over pairs)", "",
                     "| model | text | image | group |", "| --- | --- | --- | --- |"]
        for (name, label) in models {
            guard let entry = r.scores.first(where: { $0.model == name }) else { continue }
            lines.append("| \(label) (`\(entry.path)`) | \(cell(entry.scores.text)) | \(cell(entry.scores.image)) | \(cell(entry.scores.group)) |")
        }
        if let teacher = r.teacher {
            lines.append("| teacher's diffusion-score classifier (`\(s.teacher)`) | \(cell(teacher.text)) | \(cell(teacher.image)) | \(cell(teacher.group)) |")
        } else {
            lines.append("| teacher's diffusion-score classifier (`\(s.teacher)`) | not measured | not measured | not measured |")
        }
        lines += ["", "Chance is 25 (text), 25 (image) and 16.7 (group). text: each image prefers its own caption; image: each caption "
                  + "prefers its own image; group: both. Strict inequalities: a tie is wrong.", "",
                  "## Paired differences (B − A, percentage points, paired bootstrap)", "",
                  "| A → B | text | image | group |", "| --- | --- | --- | --- |"]
        for (a, b) in DemoEvaluation.pairs {
            let cells = DemoEvaluation.metrics.map { metric in
                r.comparisons.first { $0.a == a && $0.b == b && $0.metric == metric }.map { signedCell($0.difference) } ?? "–"
            }
            lines.append("| \(a) → \(b) | \(cells.joined(separator: " | ")) |")
        }
        lines += ["", "## What the numbers mean", "",
                  "- The models are tiny (under a million parameters each) and the fine-tunes short (\(s.steps) steps of \(s.batchSize)); "
                  + "only CLIP's LayerNorms and the latent map h_w are trained. With \(r.scored) pairs an interval is several points wide: "
                  + "a difference whose interval contains 0 is not evidence of a change either way.",
                  "- The control isolates L_SDS: both runs share everything but λ, so control → SDS is the effect of the teacher; "
                  + "base → control is what the same steps of L_CLIP alone do on this data.",
                  "- The teacher's own accuracy bounds what it can teach: "
                  + (r.teacher == nil ? "its diffusion-score classifier could not score any pair here; "
                     + "`fixtures/demo/trained/README.md` gives the figure measured in Python when the teacher was trained."
                     : "the teacher row is its diffusion-score classifier on the same pairs (K = 10 timesteps, noise shared across "
                     + "captions; chance is 25 % text and image, 16.7 % group). Its image score compares denoising errors of two "
                     + "different images, which are not comparable, so it is expected to be low."),
                  "- The example world is synthetic and its captions come from one template; nothing here predicts the effect on "
                  + "real images or benchmarks.", "",
                  "## Losses", "", "![losses](loss.png)", "",
                  "Each curve is a trailing mean over \(smoothingWindow(r.runs)) steps (a step's losses depend on its random timesteps).", "",
                  "| run | λ | final loss | L_CLIP | L_SDS | time |", "| --- | --- | --- | --- | --- | --- |"]
        for run in r.runs {
            let l = run.losses
            lines.append("| \(run.name) (`\(run.folder)`) | \(run.lambda) | \(l.map { String(format: "%.4f", $0.total) } ?? "–") | "
                         + "\(l.map { String(format: "%.4f", $0.clip) } ?? "–") | \(l.map { String(format: "%.4f", $0.sds) } ?? "–") | "
                         + String(format: "%.0f s", run.seconds) + " |")
        }
        lines += ["", "The control's L_SDS is measured through its latent map, which λ = 0 does not train (only weight decay moves it).", "",
                  "## Outputs", "",
                  "- distilled CLIPs: `\(r.runs.map(\.final).joined(separator: "`, `"))` (metrics.jsonl, loss.png and checkpoints beside them)"]
        for export in r.exports {
            lines.append("- SDS result exported as `\(export.layout)`: `\(export.folder)`")
        }
        lines += ["- example world: `\(r.data)`", "",
                  "## Settings", "",
                  "| setting | value |", "| --- | --- |",
                  "| base CLIP | `\(s.clip)` |", "| teacher | `\(s.teacher)` |",
                  "| steps, batch size | \(s.steps), \(s.batchSize) |", "| λ (SDS run) | \(s.lambda) |",
                  "| lr-clip, lr-map | \(s.lrClip), \(s.lrMap) |", "| latent size | \(s.latentSize) |",
                  "| training samples, test pairs | \(s.trainingSamples), \(s.testPairs) |",
                  "| seed | \(s.seed) |", "| bootstrap resamples | \(s.resamples) |", "",
                  "## Timings", "", "| stage | seconds |", "| --- | --- |"]
        lines += r.timings.map { "| \($0.stage) | \(String(format: "%.1f", $0.seconds)) |" }
        return lines.joined(separator: "\n") + "\n"
    }

    static func estimate(_ e: DemoEstimate) -> [String: Any] {
        var object: [String: Any] = ["value": e.value, "low": e.low, "high": e.high]
        if let correct = e.correct { object["correct"] = correct }
        return object
    }

    static func scores(_ s: DemoScores) -> [String: Any] {
        ["text": estimate(s.text), "image": estimate(s.image), "group": estimate(s.group)]
    }

    /// A Float setting as the decimal it was written as (0.1, not 0.10000000149).
    static func decimal(_ value: Float) -> Double { Double(String(value)) ?? Double(value) }

    static func object(_ r: DemoResult) -> [String: Any] {
        let s = r.settings
        return [
            "settings": ["clip": s.clip, "teacher": s.teacher, "steps": s.steps, "batch_size": s.batchSize, "lambda": decimal(s.lambda),
                         "lr_clip": decimal(s.lrClip), "lr_map": decimal(s.lrMap), "latent_size": s.latentSize,
                         "training_samples": s.trainingSamples, "test_pairs": s.testPairs, "seed": s.seed, "resamples": s.resamples],
            "benchmark": ["path": r.benchmark, "pairs": r.pairs, "scored": r.scored, "skipped": r.skipped],
            "models": Dictionary(uniqueKeysWithValues: r.scores.map { ($0.model, ["path": $0.path, "scores": scores($0.scores)] as [String: Any]) }),
            "comparisons": r.comparisons.map { ["a": $0.a, "b": $0.b, "metric": $0.metric, "difference": estimate($0.difference)] as [String: Any] },
            "teacher_diffusion_score": r.teacher.map(scores) ?? NSNull(),
            "teacher_diffusion_score_note": r.teacher == nil ? "no pair could be scored" : "measured: eval --teacher's default protocol (K = 10 timesteps, shared noise)",
            "runs": r.runs.map { run -> [String: Any] in
                var entry: [String: Any] = ["name": run.name, "lambda": decimal(run.lambda), "folder": run.folder, "final": run.final,
                                            "seconds": run.seconds, "steps": run.history.last?.step ?? 0]
                if let l = run.losses { entry["final_losses"] = ["loss": Double(l.total), "loss_clip": Double(l.clip), "loss_sds": Double(l.sds)] }
                return entry
            },
            "exports": Dictionary(uniqueKeysWithValues: r.exports.map { ($0.layout, $0.folder) }),
            "timings_s": Dictionary(uniqueKeysWithValues: r.timings.map { ($0.stage, $0.seconds) }),
        ]
    }
}
