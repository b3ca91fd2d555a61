import Tensors

/// A benchmark scored as a whole from each model's embedding table rather than item by item: a
/// classifier built from class prompts, a retrieval gallery, a probe trained on other images. It yields
/// per-unit 0/1 outcomes (images classified, queries, test images), which the shared bootstrap, report
/// and comparison machinery then treat as it treats items.
public protocol CorpusTask: Sendable {
    /// What to embed.
    var images: [ImageReference] { get }
    var captions: [String] { get }
    /// The units read from the source (before any could not be embedded).
    var unitCount: Int { get }
    /// Outcomes of every model on the same units: a unit or candidate that any table lacks is left out
    /// for all, so compared models are scored alike.
    func evaluate(_ tables: [EmbeddingTable]) -> CorpusOutcome
}

/// Per-unit outcomes of one or more models on the same units: what the bootstrap resamples.
public struct UnitOutcomes: Sendable, Equatable {
    /// What a unit is (`image`, `caption`); names the group's bootstrap stream when a benchmark has several.
    public let unit: String
    public let metrics: [String]
    /// values[model][metric][unit]
    public let values: [[[Bool]]]
    /// Each unit's subset, nil when it has none (empty: no unit has one).
    public let subsets: [String?]

    public init(unit: String = "item", metrics: [String], values: [[[Bool]]], subsets: [String?] = []) {
        self.unit = unit
        self.metrics = metrics
        self.values = values
        self.subsets = subsets
    }
}

public struct CorpusOutcome: Sendable {
    /// Resampled separately (retrieval: image queries and caption queries).
    public let groups: [UnitOutcomes]
    /// Units scored (of the first group).
    public let scored: Int
    /// Units and candidates that could not be embedded, and what that cost.
    public let skipped: [SkippedItem]
}

extension Array where Element == EmbeddingTable {
    /// Whether every table embedded the image (or caption); if not, the first table's reason.
    func missing(_ image: ImageReference) -> String? {
        for table in self where table.embedding(of: image) == nil {
            return table.imageFailures[image] ?? "the image \(image) was not embedded"
        }
        return nil
    }

    func missing(_ caption: String) -> String? {
        for table in self where table.embedding(of: caption) == nil {
            return table.textFailures[caption] ?? "the caption \"\(caption)\" was not embedded"
        }
        return nil
    }
}

/// Unit vectors as a float matrix, and row-by-row cosine similarities against another one, computed in
/// blocks of rows (one sgemm each) so a 5k × 25k retrieval never holds the whole matrix.
struct UnitMatrix {
    let rows: Int
    let dimension: Int
    let values: [Float]

    init(_ vectors: [[Double]], dimension: Int) {
        self.rows = vectors.count
        self.dimension = dimension
        self.values = vectors.flatMap { $0.map(Float.init) }
    }

    /// Calls `body(row, scores)` for each row of self, `scores[j]` = row · gallery row j, in row order.
    /// Float products of unit vectors: within ~1e-6 of the double cosine.
    func scores(against gallery: UnitMatrix, blockElements: Int = 1 << 24,
                _ body: (_ row: Int, _ scores: UnsafeBufferPointer<Float>) -> Void) throws {
        guard rows > 0, gallery.rows > 0 else { return }
        let weight = try Tensor(shape: [gallery.rows, dimension], data: gallery.values)
        let block = Swift.max(1, Swift.min(rows, blockElements / gallery.rows))
        try withNoGrad {
            for start in stride(from: 0, to: rows, by: block) {
                let count = Swift.min(block, rows - start)
                let slice = Array(values[start * dimension ..< (start + count) * dimension])
                let product = try linear(try Tensor(shape: [count, dimension], data: slice), weight: weight).scalars
                product.withUnsafeBufferPointer { all in
                    for row in 0..<count {
                        body(start + row, UnsafeBufferPointer(rebasing: all[row * gallery.rows ..< (row + 1) * gallery.rows]))
                    }
                }
            }
        }
    }
}
