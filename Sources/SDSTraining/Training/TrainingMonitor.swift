import Foundation
import Imaging

/// One optimiser step's figures, as a line of `metrics.jsonl`.
public struct TrainingMetrics: Sendable {
    public var step: Int
    public var epoch: Int
    public var losses: SDSLosses
    public var learningRateCLIP: Float
    public var learningRateMap: Float
    public var gradientNorm: Float
    public var samplesSeen: Int
    public var badSamples: Int
    public var elapsedSeconds: Double
    public var samplesPerSecond: Double
    /// Under mpirun: the seconds this step spent in its all-reduces (on rank 0).
    public var allReduceSeconds: Double?

    var jsonLine: String {
        func number(_ value: Double) -> String { value.isFinite ? String(format: "%.8g", value) : "null" }
        return "{\"step\": \(step), \"epoch\": \(epoch), \"loss\": \(number(Double(losses.total))), \"loss_clip\": \(number(Double(losses.clip))), "
            + "\"loss_sds\": \(number(Double(losses.sds))), \"lr_clip\": \(number(Double(learningRateCLIP))), \"lr_map\": \(number(Double(learningRateMap))), "
            + "\"grad_norm\": \(number(Double(gradientNorm))), \"samples\": \(samplesSeen), \"bad_samples\": \(badSamples), "
            + "\"elapsed_s\": \(number(elapsedSeconds)), \"samples_per_s\": \(number(samplesPerSecond))"
            + (allReduceSeconds.map { ", \"allreduce_s\": \(number($0))" } ?? "") + "}"
    }
}

/// What a run shows and leaves behind as it goes: the progress bar (redrawn on a terminal, a line every
/// `logEvery` steps otherwise), `metrics.jsonl` (one line per step, flushed as written, and one per
/// `--eval` score: step, benchmark, metric, scope, value, interval, items) and `loss.png`
/// (redrawn with the progress lines). On resume, metrics past the checkpoint's step are dropped, so
/// the log always describes the run the parameters came from.
public final class TrainingMonitor {
    let folder: String
    let logEvery: Int
    let isTerminal: Bool
    let write: (String) -> Void
    var totalSteps = 0
    public private(set) var history: [(step: Int, losses: SDSLosses)] = []
    var metricsHandle: FileHandle?
    var lastDraw = -1
    /// The step of the latest `--eval` scores written.
    var lastEvaluatedStep: Int?

    public var metricsPath: String { (folder as NSString).appendingPathComponent("metrics.jsonl") }
    public var plotPath: String { (folder as NSString).appendingPathComponent("loss.png") }

    public init(folder: String, logEvery: Int, isTerminal: Bool = isatty(STDERR_FILENO) != 0, write: @escaping (String) -> Void) {
        self.folder = folder
        self.logEvery = max(logEvery, 1)
        self.isTerminal = isTerminal
        self.write = write
    }

    /// Opens the metrics log (keeping the lines up to `step` when resuming); throws when the output
    /// folder cannot hold it, before the first step, instead of training without a log.
    func begin(totalSteps: Int, resumedAt step: Int) throws {
        self.totalSteps = totalSteps
        try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        // Keep the lines of steps up to the resume point (a kill can leave later ones behind).
        var kept: [String] = []
        if let text = try? String(contentsOfFile: metricsPath, encoding: .utf8) {
            for line in text.split(separator: "\n") {
                guard let data = line.data(using: .utf8),
                      let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                      let lineStep = object["step"] as? Int, lineStep <= step else { continue }
                kept.append(String(line))
                if let loss = object["loss"] as? Double, let clip = object["loss_clip"] as? Double, let sds = object["loss_sds"] as? Double {
                    history.append((lineStep, SDSLosses(clip: Float(clip), sds: Float(sds), total: Float(loss))))
                }
            }
        }
        let content = kept.isEmpty ? "" : kept.joined(separator: "\n") + "\n"
        guard FileManager.default.createFile(atPath: metricsPath, contents: Data(content.utf8)),
              let handle = FileHandle(forWritingAtPath: metricsPath) else {
            throw ConfigurationError("--out: cannot write the metrics log \(metricsPath) (is the folder writable?)")
        }
        handle.seekToEndOfFile()
        metricsHandle = handle
        write(step > 0 ? "resuming at step \(step) of \(totalSteps)\n" : "training for \(totalSteps) steps\n")
    }

    func record(_ metrics: TrainingMetrics) throws {
        metricsHandle?.write(Data((metrics.jsonLine + "\n").utf8))
        history.append((metrics.step, metrics.losses))
        let remaining = Double(totalSteps - metrics.step) * metrics.elapsedSecondsPerStep
        let line = String(format: "step %d/%d  loss %.4f (clip %.4f, sds %.4f)  %.2f samples/s  ETA %@",
                          metrics.step, totalSteps, metrics.losses.total, metrics.losses.clip, metrics.losses.sds,
                          metrics.samplesPerSecond, Self.duration(remaining) as NSString)
        if isTerminal {
            let width = 24
            let filled = totalSteps > 0 ? width * metrics.step / totalSteps : width
            let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
            write("\r\u{1B}[2K[\(bar)] \(line)")
        }
        if metrics.step % logEvery == 0 || metrics.step == totalSteps {
            if !isTerminal { write(line + "\n") }
            drawPlot()
        }
    }

    /// Evaluation scores: one metrics line each (beside the step lines) and one summary line.
    func record(evaluation records: [EvaluationRecord], step: Int, summary: String) {
        for record in records {
            guard let data = try? JSONSerialization.data(withJSONObject: record.jsonObject, options: [.sortedKeys, .withoutEscapingSlashes]) else { continue }
            metricsHandle?.write(data + Data("\n".utf8))
        }
        lastEvaluatedStep = step
        write((isTerminal ? "\r\u{1B}[2K" : "") + "eval step \(step): \(summary)\n")
    }

    func finish() {
        if isTerminal { write("\n") }
        drawPlot()
        try? metricsHandle?.close()
        metricsHandle = nil
    }

    func drawPlot() {
        guard history.count >= 1, lastDraw != history.count else { return }
        lastDraw = history.count
        let series: [LossPlot.Series] = [
            ("loss", history.map { ($0.step, Double($0.losses.total)) }),
            ("L_CLIP", history.map { ($0.step, Double($0.losses.clip)) }),
            ("L_SDS", history.map { ($0.step, Double($0.losses.sds)) }),
        ]
        try? PNGEncoder.write(LossPlot.render(series: series), to: plotPath)
    }

    static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0 else { return "?" }
        let total = Int(seconds.rounded())
        return total >= 3600 ? String(format: "%d:%02d:%02d", total / 3600, total / 60 % 60, total % 60)
                             : String(format: "%d:%02d", total / 60, total % 60)
    }
}

extension TrainingMetrics {
    var elapsedSecondsPerStep: Double { step > 0 ? elapsedSeconds / Double(step) : 0 }
}
