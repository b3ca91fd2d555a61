/// Zero-shot classification as open_clip's `zero_shot_classifier` / `run_classification`: each class's
/// classifier is the mean of its prompts' normalised text embeddings (one prompt per template),
/// renormalised; an image's logits are its normalised embedding against every classifier. Top-1 is
/// correct when the true class's logit is strictly the highest; top-k when fewer than k other classes
/// score at least as high (ties count against the image), k = min(5, classes).
public struct ZeroShotTask: CorpusTask {
    public struct Example: Sendable, Hashable {
        /// `CLASS/FILE` under the root, for messages.
        public let id: String
        public let image: ImageReference
        /// Index into `classNames`.
        public let label: Int
    }

    public let classNames: [String]
    public let templates: [String]
    public let examples: [Example]

    public init(classNames: [String], templates: [String], examples: [Example]) {
        self.classNames = classNames
        self.templates = templates
        self.examples = examples
    }

    /// `{}` (open_clip's templates) or `{c}` (CLIP_benchmark's) replaced by the class name.
    public static func prompt(_ template: String, _ name: String) -> String {
        template.replacingOccurrences(of: "{}", with: name).replacingOccurrences(of: "{c}", with: name)
    }

    public func prompts(_ label: Int) -> [String] { templates.map { Self.prompt($0, classNames[label]) } }

    public var images: [ImageReference] { examples.map(\.image) }
    public var captions: [String] { classNames.indices.flatMap(prompts) }
    public var unitCount: Int { examples.count }

    public func evaluate(_ tables: [EmbeddingTable]) -> CorpusOutcome {
        var skipped: [SkippedItem] = []
        // A prompt any model lacks is left out of its class for all; a class with no prompt left is no candidate.
        var candidates: [Int] = [], prompts: [[String]] = []
        for label in classNames.indices {
            var kept: [String] = []
            for prompt in self.prompts(label) {
                if let reason = tables.missing(prompt) {
                    skipped.append(SkippedItem(id: "class \(classNames[label]) prompt \"\(prompt)\"", reason: reason))
                } else {
                    kept.append(prompt)
                }
            }
            if !kept.isEmpty {
                candidates.append(label)
                prompts.append(kept)
            }
        }
        let column = Dictionary(uniqueKeysWithValues: candidates.enumerated().map { ($1, $0) })
        var units: [Example] = []
        for example in examples {
            guard column[example.label] != nil else {
                skipped.append(SkippedItem(id: example.id, reason: "no prompt of its class \"\(classNames[example.label])\" could be embedded"))
                continue
            }
            if let reason = tables.missing(example.image) {
                skipped.append(SkippedItem(id: example.id, reason: reason))
            } else {
                units.append(example)
            }
        }
        let k = min(5, candidates.count)
        guard k > 0 else { return CorpusOutcome(groups: [], scored: 0, skipped: skipped) }
        let metrics = ["top-1", "top-\(k)"]
        var values: [[[Bool]]] = []
        for table in tables {
            let dimension = table.dimension
            let classifiers = UnitMatrix(prompts.map { Self.classifier($0.compactMap(table.unitVector(of:)), dimension: dimension) },
                                         dimension: dimension)
            let pictures = UnitMatrix(units.compactMap { table.unitVector(of: $0.image) }, dimension: dimension)
            var top1 = [Bool](repeating: false, count: units.count), topK = top1
            do {
                try pictures.scores(against: classifiers) { row, logits in
                    guard let truth = column[units[row].label] else { return }
                    let rank = RankCount.atLeast(logits, logits[truth], excluding: [truth])
                    top1[row] = rank == 0
                    topK[row] = rank < k
                }
            } catch {
                // Shapes are consistent by construction; a failure here leaves the model's outcomes all wrong.
                skipped.append(SkippedItem(id: "zero-shot", reason: "the similarity product failed: \(error)"))
            }
            values.append([top1, topK])
        }
        return CorpusOutcome(groups: [UnitOutcomes(unit: "image", metrics: metrics, values: values)], scored: units.count, skipped: skipped)
    }

    /// normalize(mean of the normalised prompt embeddings), as open_clip's `build_zero_shot_classifier`.
    static func classifier(_ vectors: [[Double]], dimension: Int) -> [Double] {
        var mean = [Double](repeating: 0, count: dimension)
        for vector in vectors { for d in 0..<dimension { mean[d] += vector[d] } }
        for d in 0..<dimension { mean[d] /= Double(max(vectors.count, 1)) }
        let norm = max(mean.reduce(0) { $0 + $1 * $1 }.squareRoot(), 1e-12)
        return mean.map { $0 / norm }
    }
}

/// Ranks with ties counted against the query.
enum RankCount {
    /// How many of `scores` other than `excluding` are at least `target`.
    static func atLeast(_ scores: UnsafeBufferPointer<Float>, _ target: Float, excluding: Set<Int>) -> Int {
        var count = 0
        for index in 0..<scores.count where scores[index] >= target && !excluding.contains(index) { count += 1 }
        return count
    }
}
