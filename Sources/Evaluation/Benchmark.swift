/// The benchmark layouts `sdsclip eval` reads.
public enum BenchmarkKind: String, CaseIterable, Sendable {
    /// Winoground (`examples.jsonl` + `images/`) and files of the same shape (the example world's test-swaps).
    case winoground
    /// SugarCrepe's seven JSON files over COCO val2017 images.
    case sugarCrepe = "sugarcrepe"
    /// Generic multiple choice JSONL: `{"image", "captions", "answer"}`.
    case multipleChoice = "choice"
    /// ARO's VG-Relation: `visual_genome_relation.json` + `images/`.
    case aroRelation = "aro-relation"
    /// ARO's VG-Attribution: `visual_genome_attribution.json` + `images/`.
    case aroAttribution = "aro-attribution"
    /// Zero-shot classification over a folder of class folders (ImageNet-style `ImageFolder`): top-1 and top-5.
    case zeroShot = "zeroshot"
    /// Image-text retrieval over a Karpathy-split JSON (`dataset_coco.json`, `dataset_flickr30k.json`): R@1/5/10.
    case retrieval
    /// A linear probe of image embeddings for the example world's scene attributes (`example-data` output).
    case probe

    /// Which scores a benchmark of this kind reports.
    public var plan: ScoringPlan {
        switch self {
        case .winoground:
            return ScoringPlan(metrics: ["text", "image", "group"], overall: true, subsetName: "collapsed_tag", macro: nil)
        case .sugarCrepe:
            return ScoringPlan(metrics: ["accuracy"], overall: false, subsetName: "file", macro: nil)
        case .multipleChoice:
            return ScoringPlan(metrics: ["accuracy"], overall: true, subsetName: nil, macro: nil)
        case .aroRelation:
            return ScoringPlan(metrics: ["accuracy"], overall: true, subsetName: "relation",
                               macro: MacroAverage(excluded: AROReader.symmetricRelations, minimumItems: 1))
        case .aroAttribution:
            return ScoringPlan(metrics: ["accuracy"], overall: true, subsetName: "attributes",
                               macro: MacroAverage(excluded: [], minimumItems: 25))
        case .zeroShot, .retrieval, .probe:
            // Scored as a whole: the metrics come with the task's unit groups.
            return ScoringPlan(metrics: [], overall: true, subsetName: nil, macro: nil)
        }
    }
}

/// The scores of a benchmark: each metric pooled over all items (`overall`), pooled within each subset
/// (when items have one), and optionally a macro average of the subsets' accuracies.
public struct ScoringPlan: Hashable, Sendable {
    /// Per-item booleans: Winoground's text/image/group, otherwise one accuracy.
    public let metrics: [String]
    public let overall: Bool
    /// What the subsets are (`collapsed_tag`, `file`, …), nil when the benchmark has none.
    public let subsetName: String?
    public let macro: MacroAverage?
}

/// The mean of per-subset accuracies, as the ARO authors report it: subsets in `excluded` and subsets
/// with fewer than `minimumItems` scored items are left out.
public struct MacroAverage: Hashable, Sendable {
    public let excluded: Set<String>
    public let minimumItems: Int

    public func includes(_ subset: String, items: Int) -> Bool { items >= max(minimumItems, 1) && !excluded.contains(subset) }
}

/// A benchmark read from disk: the items that could be read and the rows that could not.
public struct Benchmark: Sendable {
    /// Unique within a run (`winoground`, `sugarcrepe`, `test-swaps`, …); seeds its bootstrap.
    public var name: String
    public let kind: BenchmarkKind
    /// The file or folder it was read from.
    public let source: String
    public let items: [BenchmarkItem]
    /// Rows that are not items (malformed JSON, missing fields, bad boxes).
    public let skipped: [SkippedItem]
    /// Set for benchmarks scored as a whole from the embedding table (zero-shot, retrieval, probe); `items` is then empty.
    public let corpus: (any CorpusTask)?

    public init(name: String, kind: BenchmarkKind, source: String, items: [BenchmarkItem], skipped: [SkippedItem]) {
        self.name = name
        self.kind = kind
        self.source = source
        self.items = items
        self.skipped = skipped
        self.corpus = nil
    }

    public init(name: String, kind: BenchmarkKind, source: String, corpus: any CorpusTask, skipped: [SkippedItem]) {
        self.name = name
        self.kind = kind
        self.source = source
        self.items = []
        self.skipped = skipped
        self.corpus = corpus
    }

    public var plan: ScoringPlan { kind.plan }
    /// Every row of the source, read or not.
    public var rowCount: Int { items.count + (corpus?.unitCount ?? 0) + skipped.count }

    /// The images and captions to embed for it.
    public var inputs: (images: [ImageReference], captions: [String]) {
        if let corpus { return (corpus.images, corpus.captions) }
        return (items.flatMap(\.images), items.flatMap(\.captions))
    }
}
