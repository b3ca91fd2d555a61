/// Image-text retrieval over a gallery of images and their captions (a Karpathy split). Every image
/// queries the captions (image→text) and every caption queries the images (text→image); a query hits
/// at K when one of its positives ranks in the top K. A positive's rank is the number of negatives
/// scoring at least as high (ties count against the query), so a query hits at K when fewer than K
/// negatives reach its best positive. Positives go by text: an image's positives are the captions with
/// one of its caption texts, a caption's positives are the images that have its text (duplicate
/// captions in COCO are never each other's negatives). The gallery counts sentences, not distinct texts.
public struct RetrievalTask: CorpusTask {
    public struct Entry: Sendable, Hashable {
        /// `dataset_coco.json images[12] (FILE)`, for messages.
        public let id: String
        public let image: ImageReference
        public let captions: [String]
    }

    public static let recalls = [1, 5, 10]
    public let entries: [Entry]

    public init(entries: [Entry]) { self.entries = entries }

    public var images: [ImageReference] { entries.map(\.image) }
    public var captions: [String] { entries.flatMap(\.captions) }
    public var unitCount: Int { entries.count }

    public func evaluate(_ tables: [EmbeddingTable]) -> CorpusOutcome {
        var skipped: [SkippedItem] = []
        // The gallery every model embedded: entries with their image, and of those, the captions.
        var gallery: [(image: ImageReference, texts: [Int])] = []
        var texts: [String] = [], textIndex: [String: Int] = [:], multiplicity: [Int] = []
        var sentences: [Int] = []  // text of each caption query, in entry order
        for entry in entries {
            if let reason = tables.missing(entry.image) {
                skipped.append(SkippedItem(id: entry.id, reason: reason + "; its \(entry.captions.count) captions leave the gallery too"))
                continue
            }
            var own: [Int] = []
            for (k, caption) in entry.captions.enumerated() {
                if let reason = tables.missing(caption) {
                    skipped.append(SkippedItem(id: "\(entry.id) caption \(k)", reason: reason))
                    continue
                }
                let index: Int
                if let known = textIndex[caption] {
                    index = known
                } else {
                    index = texts.count
                    textIndex[caption] = index
                    texts.append(caption)
                    multiplicity.append(0)
                }
                multiplicity[index] += 1
                sentences.append(index)
                own.append(index)
            }
            if own.isEmpty { skipped.append(SkippedItem(id: entry.id, reason: "no caption could be embedded: not an image query (still in the gallery)")) }
            gallery.append((entry.image, own))
        }
        let queries = gallery.indices.filter { !gallery[$0].texts.isEmpty }
        var imagesOfText = [[Int]](repeating: [], count: texts.count)
        for (image, entry) in gallery.enumerated() { for text in Set(entry.texts) { imagesOfText[text].append(image) } }
        let imageMetrics = Self.recalls.map { "image→text R@\($0)" }, textMetrics = Self.recalls.map { "text→image R@\($0)" }
        var imageValues: [[[Bool]]] = [], textValues: [[[Bool]]] = []
        for table in tables {
            let pictures = UnitMatrix(gallery.compactMap { table.unitVector(of: $0.image) }, dimension: table.dimension)
            let captions = UnitMatrix(texts.compactMap { table.unitVector(of: $0) }, dimension: table.dimension)
            // Negatives at least as high as the best positive, per image (counted in sentences) and per text.
            var imageRanks = [Int](repeating: .max, count: gallery.count), textRanks = [Int](repeating: .max, count: texts.count)
            do {
                try pictures.scores(against: captions) { image, scores in
                    let positives = Set(gallery[image].texts)
                    guard let best = positives.map({ scores[$0] }).max() else { return }
                    var rank = 0
                    for text in 0..<scores.count where scores[text] >= best && !positives.contains(text) { rank += multiplicity[text] }
                    imageRanks[image] = rank
                }
                try captions.scores(against: pictures) { text, scores in
                    let positives = Set(imagesOfText[text])
                    guard let best = positives.map({ scores[$0] }).max() else { return }
                    textRanks[text] = RankCount.atLeast(scores, best, excluding: positives)
                }
            } catch {
                skipped.append(SkippedItem(id: "retrieval", reason: "the similarity product failed: \(error)"))
            }
            imageValues.append(Self.recalls.map { k in queries.map { imageRanks[$0] < k } })
            textValues.append(Self.recalls.map { k in sentences.map { textRanks[$0] < k } })
        }
        return CorpusOutcome(groups: [UnitOutcomes(unit: "image", metrics: imageMetrics, values: imageValues),
                                      UnitOutcomes(unit: "caption", metrics: textMetrics, values: textValues)],
                             scored: queries.count, skipped: skipped)
    }
}
