/// The caption-image scores s(c, i) of one model over a run's inputs, whatever computes them: CLIP's
/// cosine similarity (`EmbeddingTable`) or a teacher's negative denoising error (`DiffusionPairTable`).
/// `ItemScorer` scores every benchmark item from this alone.
public protocol PairScores: Sendable {
    /// s(c, i); nil when the pair was not scored.
    func score(caption: String, image: ImageReference) -> Double?
    /// Why the image has no scores (it could not be read or encoded); nil when it has them.
    func imageFailure(_ image: ImageReference) -> String?
    /// Why the caption has no scores (it could not be tokenized); nil when it has them.
    func captionFailure(_ caption: String) -> String?
    /// The distinct inputs scored and the ones that failed, for the report.
    var inputs: ScoredInputs { get }
}

/// How many distinct images and captions a model handled, and how many of each failed.
public struct ScoredInputs: Sendable, Equatable {
    public let images: Int
    public let captions: Int
    public let failedImages: Int
    public let failedCaptions: Int

    public init(images: Int, captions: Int, failedImages: Int, failedCaptions: Int) {
        (self.images, self.captions, self.failedImages, self.failedCaptions) = (images, captions, failedImages, failedCaptions)
    }
}
