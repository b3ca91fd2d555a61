/// One item's results from its caption-image scores s(c, i) (higher is a better match), with Winoground's strict inequalities:
/// a tie is never correct.
public enum ItemScorer {
    /// The item's metric values in `Benchmark.plan.metrics` order, or why it cannot be scored
    /// (an image or caption the model could not handle, a pair it did not score).
    public static func score(_ item: BenchmarkItem, with table: some PairScores) -> Result<[Bool], SkippedItem> {
        for image in item.images {
            if let reason = table.imageFailure(image) { return .failure(SkippedItem(id: item.id, reason: reason)) }
        }
        for caption in item.captions {
            if let reason = table.captionFailure(caption) { return .failure(SkippedItem(id: item.id, reason: reason)) }
        }
        var values: [[Double]] = []
        for caption in item.captions {
            var row: [Double] = []
            for image in item.images {
                guard let value = table.score(caption: caption, image: image) else {
                    return .failure(SkippedItem(id: item.id, reason: "the caption \"\(caption)\" was not scored against \(image)"))
                }
                row.append(value)
            }
            values.append(row)
        }
        let s = { (caption: Int, image: Int) in values[caption][image] }
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
