/// What a score is computed over.
public enum ScoreScope: Hashable, Sendable {
    /// Every scored item of the benchmark, pooled.
    case all
    /// The scored items of one subset, pooled.
    case subset(String)
    /// The mean of these subsets' pooled scores (ARO's macro accuracy).
    case macro(subsets: [String])

    /// Seeds the scope's bootstrap draws, so they do not depend on the other scopes.
    var key: String {
        switch self {
        case .all: return "all"
        case .subset(let name): return "subset:" + name
        case .macro: return "macro"
        }
    }
}

/// One model's value of a score.
public struct ModelScore: Sendable, Equatable {
    /// Correct items, for pooled scores (a macro average has none).
    public let correct: Int?
    public let estimate: Estimate
}

/// A metric over a scope, for each model, and the paired difference when two models are compared.
public struct Score: Sendable, Equatable {
    public let metric: String
    public let scope: ScoreScope
    /// Scored items in the scope.
    public let items: Int
    /// In the order of the report's models.
    public let models: [ModelScore]
    /// Second model − first model, with its paired-bootstrap interval.
    public let difference: Estimate?
}

public struct BenchmarkResult: Sendable {
    public let name: String
    public let kind: BenchmarkKind
    public let source: String
    /// Rows in the source, readable or not.
    public let rows: Int
    /// Items scored (by every model).
    public let scored: Int
    /// Rows that could not be read and items whose image or caption could not be embedded.
    public let skipped: [SkippedItem]
    public let subsetName: String?
    public let scores: [Score]
}

/// A model's work: distinct inputs scored and the ones that failed, and how it scores pairs.
public struct ModelSummary: Sendable, Equatable {
    public let label: String
    public let images: Int
    public let captions: Int
    public let failedImages: Int
    public let failedCaptions: Int
    /// How s(c, i) was computed, when it is not CLIP's cosine similarity (the teacher's protocol).
    public var scoring: String? = nil
}

public struct EvaluationReport: Sendable {
    public let models: [ModelSummary]
    public let bootstrap: BootstrapSettings
    public let benchmarks: [BenchmarkResult]
}

/// One model's pair scores, labelled for the report.
public struct ModelRun: Sendable {
    public let label: String
    public let table: any PairScores
    public let scoring: String?

    public init(label: String, table: any PairScores, scoring: String? = nil) {
        self.label = label
        self.table = table
        self.scoring = scoring
    }
}
