/// The example world as `sdsclip example-data OUT` writes it: `train.jsonl` (`{"image", "caption"}`) and
/// `test-swaps.jsonl` (`{"image_0", "image_1", "caption_0", "caption_1"}`, each image described by its
/// caption), paths relative to OUT. Its benchmarks are the swapped-caption split (Winoground-style) and
/// a linear probe of the image embeddings for the scene attributes the captions state:
/// "a COLOUR SHAPE RELATION a COLOUR SHAPE" gives first colour, first shape, relation, second colour, second shape.
public enum ExampleWorldReader {
    public static let trainFile = "train.jsonl"
    public static let testFile = "test-swaps.jsonl"
    public static let attributes = ["first colour", "first shape", "relation", "second colour", "second shape"]

    static func isWorld(_ folder: String) -> Bool {
        BenchmarkFile.exists(BenchmarkFile.join(folder, trainFile)) && BenchmarkFile.exists(BenchmarkFile.join(folder, testFile))
    }

    /// The probe: trained on train.jsonl's images, tested on test-swaps.jsonl's.
    public static func probe(folder: String, settings: SoftmaxRegression.Settings = .init()) throws -> Benchmark {
        let trainPath = BenchmarkFile.join(folder, trainFile), testPath = BenchmarkFile.join(folder, testFile)
        for path in [trainPath, testPath] where !BenchmarkFile.exists(path) {
            throw EvaluationError(file: folder, "no \(BenchmarkFile.fileName(path)): expected the output of sdsclip example-data")
        }
        let train = try BenchmarkFile.jsonLines(trainPath, what: "example world training JSONL") { fields, id throws(RowProblem) in
            [try example(id: id, image: try fields.string("image"), caption: try fields.string("caption"), folder: folder)]
        }
        let test = try BenchmarkFile.jsonLines(testPath, what: "example world test JSONL") { fields, id throws(RowProblem) in
            var pair: [ProbeTask.Example] = []
            for side in 0..<2 {
                pair.append(try example(id: "\(id) image_\(side)", image: try fields.string("image_\(side)"),
                                        caption: try fields.string("caption_\(side)"), folder: folder))
            }
            return pair
        }
        let task = ProbeTask(attributes: attributes, train: train.items.flatMap { $0 }, test: test.items.flatMap { $0 }, settings: settings)
        return Benchmark(name: "probe", kind: .probe, source: folder, corpus: task, skipped: train.skipped + test.skipped)
    }

    static func example(id: String, image: String, caption: String, folder: String) throws(RowProblem) -> ProbeTask.Example {
        guard !image.isEmpty else { throw RowProblem("the image name is empty") }
        return ProbeTask.Example(id: id, image: ImageReference(path: BenchmarkFile.join(folder, image)), labels: try labels(caption))
    }

    /// The attributes a caption states, in `attributes` order.
    static func labels(_ caption: String) throws(RowProblem) -> [String] {
        let words = caption.split(separator: " ").map(String.init)
        let n = words.count
        guard n >= 7, words[0] == "a", words[n - 3] == "a" else {
            throw RowProblem("the caption \"\(caption)\" is not of the example world's form \"a COLOUR SHAPE RELATION a COLOUR SHAPE\"")
        }
        return [words[1], words[2], words[3 ..< n - 3].joined(separator: " "), words[n - 2], words[n - 1]]
    }
}
