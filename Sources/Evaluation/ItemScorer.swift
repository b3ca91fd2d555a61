/// One item's results from its caption-image similarities s(c, i), with Winoground's strict inequalities:
/// a tie is never correct.
public enum ItemScorer {
    /// The item's metric values in `Benchmark.plan.metrics` order, or why it cannot be scored
    /// (an image or caption that could not be embedded).
    public static func score(_ item: BenchmarkItem, with table: EmbeddingTable) -> Result<[Bool], SkippedItem> {
        for image in item.images where table.embedding(of: image) == nil {
            let reason = table.imageFailures[image] ?? "the image \(image) was not embedded"
            return .failure(SkippedItem(id: item.id, reason: reason))
        }
        for caption in item.captions where table.embedding(of: caption) == nil {
            let reason = table.textFailures[caption] ?? "the caption \"\(caption)\" was not embedded"
            return .failure(SkippedItem(id: item.id, reason: reason))
        }
        // Present by the checks above.
        let s = { (caption: Int, image: Int) in
            table.similarity(caption: item.captions[caption], image: item.images[image]) ?? .nan
        }
        switch item.task {
        case .pairs:
            guard item.images.count == 2, item.captions.count == 2 else {
                return .failure(SkippedItem(id: item.id, reason: "a Winoground item needs 2 images and 2 captions"))
            }
            let text = s(0, 0) > s(1, 0) && s(1, 1) > s(0, 1)
            let image = s(0, 0) > s(0, 1) && s(1, 1) > s(1, 0)
            return .success([text, image, text && image])
        case .choice(let answer):
            guard item.images.count == 1, item.captions.indices.contains(answer) else {
                return .failure(SkippedItem(id: item.id, reason: "a multiple choice item needs 1 image and an answer among its captions"))
            }
            let right = s(answer, 0)
            let correct = item.captions.indices.allSatisfy { $0 == answer || right > s($0, 0) }
            return .success([correct])
        }
    }
}
