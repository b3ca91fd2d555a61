/// Generic multiple choice JSONL, for COCO-Order, Flickr30k-Order and any benchmark of one image and
/// several captions: `{"image": PATH, "captions": [TEXT, …], "answer": K}` a line, optional `"id"`.
/// PATH is relative to the file's folder unless absolute. Correct when caption K scores strictly highest.
public enum MultipleChoiceReader {
    public static func read(file: String) throws -> Benchmark {
        let folder = BenchmarkFile.folder(of: file)
        let rows = try BenchmarkFile.jsonLines(file, what: "multiple choice JSONL") { fields, id throws(RowProblem) in
            let image = try fields.string("image")
            guard !image.isEmpty else { throw RowProblem("\"image\" is empty") }
            let captions = try fields.strings("captions")
            guard captions.count >= 2 else { throw RowProblem("\"captions\" needs at least 2 captions, found \(captions.count)") }
            let answer = try fields.integer("answer")
            guard captions.indices.contains(answer) else {
                throw RowProblem("\"answer\" \(answer) is not an index of the \(captions.count) captions")
            }
            return BenchmarkItem(id: id, images: [ImageReference(path: BenchmarkFile.join(folder, image))],
                                 captions: captions, task: .choice(answer: answer))
        }
        return Benchmark(name: BenchmarkFile.stem(file), kind: .multipleChoice, source: file,
                         items: rows.items, skipped: rows.skipped)
    }
}
