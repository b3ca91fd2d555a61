/// Scores benchmarks from models' pair scores: per-item results, then each score of the benchmark's
/// plan with its bootstrap interval. Items that any model cannot score are skipped for all, so
/// compared models are scored on the same items.
public enum Evaluator {
    /// The distinct images and captions the benchmarks need, in order of first appearance.
    public static func inputs(_ benchmarks: [Benchmark]) -> (images: [ImageReference], captions: [String]) {
        var images: [ImageReference] = [], captions: [String] = []
        var seenImages = Set<ImageReference>(), seenCaptions = Set<String>()
        for benchmark in benchmarks {
            let needed = benchmark.inputs
            images += needed.images.filter { seenImages.insert($0).inserted }
            captions += needed.captions.filter { seenCaptions.insert($0).inserted }
        }
        return (images, captions)
    }

    /// Each distinct image with the distinct captions some item scores it against, in order of first
    /// appearance: the pairs a pair-wise scorer (the teacher) must compute.
    public static func pairs(_ benchmarks: [Benchmark]) -> [(image: ImageReference, captions: [String])] {
        var order: [ImageReference] = [], captions: [ImageReference: [String]] = [:], seen = Set<PairKey>()
        for item in benchmarks.lazy.flatMap(\.items) {
            for image in item.images {
                if captions[image] == nil { order.append(image); captions[image] = [] }
                for caption in item.captions where seen.insert(PairKey(caption: caption, image: image)).inserted {
                    captions[image, default: []].append(caption)
                }
            }
        }
        return order.map { ($0, captions[$0] ?? []) }
    }

    public static func report(_ benchmarks: [Benchmark], runs: [ModelRun], bootstrap: BootstrapSettings = BootstrapSettings()) -> EvaluationReport {
        let summaries = runs.map { run in
            let inputs = run.table.inputs
            return ModelSummary(label: run.label, images: inputs.images, captions: inputs.captions,
                                failedImages: inputs.failedImages, failedCaptions: inputs.failedCaptions, scoring: run.scoring)
        }
        return EvaluationReport(models: summaries, bootstrap: bootstrap,
                                benchmarks: benchmarks.map { result($0, runs: runs, bootstrap: Bootstrap(bootstrap)) })
    }

    static func result(_ benchmark: Benchmark, runs: [ModelRun], bootstrap: Bootstrap) -> BenchmarkResult {
        if let corpus = benchmark.corpus { return result(benchmark, corpus: corpus, runs: runs, bootstrap: bootstrap) }
        let plan = benchmark.plan
        var skipped = benchmark.skipped
        var scored: [BenchmarkItem] = []
        // outcomes[model][metric][scored item]
        var outcomes = [[[Bool]]](repeating: [[Bool]](repeating: [], count: plan.metrics.count), count: runs.count)
        items: for item in benchmark.items {
            var values: [[Bool]] = []
            for run in runs {
                switch ItemScorer.score(item, with: run.table) {
                case .success(let value) where value.count == plan.metrics.count: values.append(value)
                case .success:
                    skipped.append(SkippedItem(id: item.id, reason: "its task does not give the benchmark's \(plan.metrics.count) metrics"))
                    continue items
                case .failure(let skip):
                    skipped.append(skip)
                    continue items
                }
            }
            scored.append(item)
            for (model, value) in values.enumerated() {
                for metric in value.indices { outcomes[model][metric].append(value[metric]) }
            }
        }
        let scores = self.scores(UnitOutcomes(metrics: plan.metrics, values: outcomes, subsets: scored.map(\.subset)),
                                 plan: plan, key: benchmark.name, bootstrap: bootstrap)
        return BenchmarkResult(name: benchmark.name, kind: benchmark.kind, source: benchmark.source, rows: benchmark.rowCount,
                               scored: scored.count, skipped: skipped, subsetName: plan.subsetName, scores: scores)
    }

    /// A benchmark scored as a whole: each unit group's metrics pooled over its units, keyed by the group
    /// so every group has its own bootstrap draws.
    static func result(_ benchmark: Benchmark, corpus: any CorpusTask, runs: [ModelRun], bootstrap: Bootstrap) -> BenchmarkResult {
        // Zero-shot, retrieval and the probe need embeddings; a pair-only scorer (the teacher's diffusion
        // score) cannot take part, so the benchmark is reported unscored rather than scored for some models.
        let tables = runs.compactMap { $0.table as? EmbeddingTable }
        guard tables.count == runs.count else {
            let pairOnly = runs.filter { !($0.table is EmbeddingTable) }.map(\.label).joined(separator: ", ")
            let reason = SkippedItem(id: benchmark.name, reason: "needs embeddings, which \(pairOnly) does not give (it scores caption-image pairs only)")
            return BenchmarkResult(name: benchmark.name, kind: benchmark.kind, source: benchmark.source, rows: benchmark.rowCount,
                                   scored: 0, skipped: benchmark.skipped + [reason], subsetName: nil, scores: [])
        }
        let outcome = corpus.evaluate(tables)
        let plan = ScoringPlan(metrics: [], overall: true, subsetName: nil, macro: nil)
        var scores: [Score] = []
        for group in outcome.groups {
            let key = outcome.groups.count > 1 ? "\(benchmark.name)/\(group.unit)" : benchmark.name
            scores += self.scores(group, plan: plan, key: key, bootstrap: bootstrap)
        }
        return BenchmarkResult(name: benchmark.name, kind: benchmark.kind, source: benchmark.source, rows: benchmark.rowCount,
                               scored: outcome.scored, skipped: benchmark.skipped + outcome.skipped, subsetName: nil, scores: scores)
    }

    /// Every score of `plan` over the units of `outcomes`: pooled over all, per subset, and the macro average.
    static func scores(_ outcomes: UnitOutcomes, plan: ScoringPlan, key: String, bootstrap: Bootstrap) -> [Score] {
        let units = outcomes.values.first?.first?.count ?? 0
        var scopes: [(ScoreScope, [[Int]])] = []
        if plan.overall { scopes.append((.all, [Array(0..<units)])) }
        if plan.subsetName != nil {
            var members: [String: [Int]] = [:]
            for (index, subset) in outcomes.subsets.enumerated() { if let subset { members[subset, default: []].append(index) } }
            let names = members.keys.sorted()
            scopes += names.map { (.subset($0), [members[$0] ?? []]) }
            if let macro = plan.macro {
                let included = names.filter { macro.includes($0, items: members[$0]?.count ?? 0) }
                if !included.isEmpty { scopes.append((.macro(subsets: included), included.map { members[$0] ?? [] })) }
            }
        }

        var scores: [Score] = []
        let values = outcomes.values
        for (scope, strata) in scopes {
            guard let result = bootstrap.run(outcomes: values, strata: strata, key: "\(key)/\(scope.key)") else { continue }
            let pooled: [Int]?
            if case .macro = scope { pooled = nil } else { pooled = strata.first }
            for (metric, name) in outcomes.metrics.enumerated() {
                let models = values.indices.map { model in
                    ModelScore(correct: pooled.map { $0.filter { values[model][metric][$0] }.count },
                               estimate: result.estimates[model][metric])
                }
                scores.append(Score(metric: name, scope: scope, items: strata.reduce(0) { $0 + $1.count }, models: models,
                                    difference: result.differences?[metric]))
            }
        }
        return scores
    }
}
