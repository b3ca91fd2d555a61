/// CLIP's projected (unnormalised) embeddings of the distinct images and captions of a run, each
/// computed once, and the ones that could not be computed with the reason.
public struct EmbeddingTable: PairScores {
    public let dimension: Int
    private var images: EmbeddingRows<ImageReference>
    private var captions: EmbeddingRows<String>
    public private(set) var imageFailures: [ImageReference: String] = [:]
    public private(set) var textFailures: [String: String] = [:]

    public init(dimension: Int) {
        self.dimension = dimension
        images = EmbeddingRows(dimension: dimension)
        captions = EmbeddingRows(dimension: dimension)
    }

    public var imageCount: Int { images.count }
    public var captionCount: Int { captions.count }

    public func embedding(of image: ImageReference) -> ArraySlice<Float>? { images.row(image).map(images.values) }
    public func embedding(of caption: String) -> ArraySlice<Float>? { captions.row(caption).map(captions.values) }

    /// s(c, i): the cosine similarity of the caption's and the image's embeddings, in double precision.
    public func similarity(caption: String, image: ImageReference) -> Double? {
        guard let t = captions.row(caption), let i = images.row(image) else { return nil }
        let (text, picture) = (captions.values(t), images.values(i))
        var dot = 0.0
        for (a, b) in zip(text, picture) { dot += Double(a) * Double(b) }
        return dot * captions.scales[t] * images.scales[i]
    }

    /// e / max(‖e‖, 1e-12) in double precision, the vectors cosine similarities are made of; nil when not embedded.
    public func unitVector(of image: ImageReference) -> [Double]? { images.row(image).map(images.unit) }
    public func unitVector(of caption: String) -> [Double]? { captions.row(caption).map(captions.unit) }

    public func score(caption: String, image: ImageReference) -> Double? { similarity(caption: caption, image: image) }

    public func imageFailure(_ image: ImageReference) -> String? {
        images.row(image) == nil ? imageFailures[image] ?? "the image \(image) was not embedded" : nil
    }

    public func captionFailure(_ caption: String) -> String? {
        captions.row(caption) == nil ? textFailures[caption] ?? "the caption \"\(caption)\" was not embedded" : nil
    }

    public var inputs: ScoredInputs {
        ScoredInputs(images: imageCount, captions: captionCount, failedImages: imageFailures.count, failedCaptions: textFailures.count)
    }

    /// Adds rows of `values` ([count, dimension], row-major); an input already present keeps its row.
    mutating func add(images keys: [ImageReference], values: [Float]) { images.add(keys, values: values) }
    mutating func add(captions keys: [String], values: [Float]) { captions.add(keys, values: values) }

    mutating func fail(image: ImageReference, reason: String) { imageFailures[image] = reason }
    mutating func fail(caption: String, reason: String) { textFailures[caption] = reason }
}

/// Vectors by key, stored flat, with 1 / max(‖e‖, 1e-12) each (torch's `normalize`, so a zero vector
/// scores 0 rather than NaN).
struct EmbeddingRows<Key: Hashable & Sendable>: Sendable {
    let dimension: Int
    private var rows: [Key: Int] = [:]
    private var flat: [Float] = []
    private(set) var scales: [Double] = []

    init(dimension: Int) { self.dimension = dimension }

    var count: Int { rows.count }
    func row(_ key: Key) -> Int? { rows[key] }
    func values(_ row: Int) -> ArraySlice<Float> { flat[row * dimension ..< (row + 1) * dimension] }
    func unit(_ row: Int) -> [Double] { values(row).map { Double($0) * scales[row] } }

    mutating func add(_ keys: [Key], values: [Float]) {
        for (index, key) in keys.enumerated() where rows[key] == nil {
            let vector = values[index * dimension ..< (index + 1) * dimension]
            rows[key] = scales.count
            flat += vector
            scales.append(1 / max(vector.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot(), 1e-12))
        }
    }
}
