import Evaluation
import Foundation
import Models
import Tensors

/// One score of an evaluation during training, as a line of `metrics.jsonl`.
public struct EvaluationRecord: Sendable, Equatable {
    public let step: Int
    public let benchmark: String
    public let metric: String
    /// "all", a subset's name, or "macro".
    public let scope: String
    public let value: Double
    /// The 95 % bootstrap interval.
    public let low: Double
    public let high: Double
    public let items: Int

    /// Non-finite numbers (a score over no item) are null.
    var jsonObject: [String: Any] {
        func number(_ x: Double) -> Any { x.isFinite ? x : NSNull() }
        return ["step": step, "benchmark": benchmark, "metric": metric, "scope": scope, "value": number(value),
                "interval": [number(low), number(high)], "items": items]
    }
}

/// `finetune --eval-every N --eval BENCH…`: `sdsclip eval`'s evaluation (same readers, scoring and
/// bootstrap defaults) of the CLIP being trained. The benchmarks are read once, before training; each
/// evaluation embeds through the training model itself (no copy of its weights) without gradients,
/// and draws no training randomness (the bootstrap has its own seed), so a run's result and its
/// resume do not depend on it.
final class TrainingEvaluation {
    let benchmarks: [Benchmark]
    let inputs: (images: [ImageReference], captions: [String])
    let every: Int?
    let embedder: CLIPEmbedder
    let bootstrap: BootstrapSettings

    init(specs: [String], every: Int?, clip: CLIPModel, source: String, bootstrap: BootstrapSettings = BootstrapSettings()) throws {
        benchmarks = try BenchmarkLoader.open(specs.map(BenchmarkSpec.init(argument:)))
        inputs = Evaluator.inputs(benchmarks)
        guard !inputs.images.isEmpty, !inputs.captions.isEmpty else {
            throw ConfigurationError("--eval: \(specs.joined(separator: " ")) hold no item to evaluate")
        }
        self.every = every
        embedder = try CLIPEmbedder(model: clip, source: source)
        self.bootstrap = bootstrap
    }

    /// Every `every` steps and at the last one.
    func isDue(step: Int, totalSteps: Int) -> Bool {
        step == totalSteps || every.map { step % $0 == 0 } ?? false
    }

    /// The scores of the model as it is now, and the count of items skipped.
    func evaluate(step: Int) throws -> (records: [EvaluationRecord], skipped: Int) {
        let table = try embedder.embed(images: inputs.images, captions: inputs.captions)
        let report = Evaluator.report(benchmarks, runs: [ModelRun(label: "step \(step)", table: table)], bootstrap: bootstrap)
        var records: [EvaluationRecord] = []
        for benchmark in report.benchmarks {
            for score in benchmark.scores {
                guard let estimate = score.models.first?.estimate else { continue }
                records.append(EvaluationRecord(step: step, benchmark: benchmark.name, metric: score.metric, scope: Self.scope(score.scope),
                                                value: estimate.value, low: estimate.low, high: estimate.high, items: score.items))
            }
        }
        return (records, report.benchmarks.reduce(0) { $0 + $1.skipped.count })
    }

    static func scope(_ scope: ScoreScope) -> String {
        switch scope {
        case .all: return "all"
        case .subset(let name): return name
        case .macro: return "macro"
        }
    }

    /// "test-swaps text 0.500 [0.250, 0.750], image …" over the overall scores (subsets are in the log).
    static func summary(_ records: [EvaluationRecord], skipped: Int) -> String {
        let overall = records.filter { $0.scope == "all" || $0.scope == "macro" }
        let parts = overall.map { record in
            String(format: "%@ %@%@ %.3f [%.3f, %.3f]", record.benchmark as NSString, record.metric as NSString,
                   (record.scope == "macro" ? " (macro)" : "") as NSString, record.value, record.low, record.high)
        }
        return parts.joined(separator: ", ") + (skipped > 0 ? "; \(skipped) items skipped" : "")
    }
}
