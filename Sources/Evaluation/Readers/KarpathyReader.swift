import WeightsIO

/// Karpathy's splits of COCO, Flickr30k and Flickr8k (`dataset_coco.json`, `dataset_flickr30k.json`,
/// `dataset_flickr8k.json`): `{"images": [{"filepath"?, "filename", "split", "sentences": [{"raw", …}], …}]}`.
/// The entries of one split (`test` by default: COCO's 5k, Flickr30k's 1k) are the gallery; each image's
/// `sentences[].raw` are its captions. Images are `ROOT/filepath/filename` (Flickr has no filepath:
/// `ROOT/filename`), ROOT being `--images` or the JSON file's folder.
public enum KarpathyReader {
    public static let fileNames = ["dataset_coco.json", "dataset_flickr30k.json", "dataset_flickr8k.json"]
    public static let splits = ["test", "val", "restval", "train"]
    public static let defaultSplit = "test"

    public static func read(file: String, split: String = defaultSplit, images: String? = nil) throws -> Benchmark {
        let value = try BenchmarkFile.json(try BenchmarkFile.bytes(file, what: "Karpathy split JSON"), file: file)
        guard let records = value.objectValue?["images"]?.arrayValue else {
            throw EvaluationError(file: file, "expected a Karpathy split JSON object with an \"images\" array, found \(value.kindName)")
        }
        let root = images ?? BenchmarkFile.folder(of: file)
        guard BenchmarkFile.isFolder(root) else { throw EvaluationError(file: root, "the image folder given by --images does not exist") }
        let name = BenchmarkFile.fileName(file)
        var rows = Rows<RetrievalTask.Entry?>()
        var seen = Set<ImageReference>()
        for (index, record) in records.enumerated() {
            let label = record.objectValue?["filename"]?.stringValue.map { " (\($0))" } ?? ""
            let id = "\(name) images[\(index)]\(label)"
            rows.add(id: id) { () throws(RowProblem) in
                let fields = try RowFields(record)
                guard try fields.string("split") == split else { return nil }
                let filename = try fields.string("filename")
                guard !filename.isEmpty else { throw RowProblem("\"filename\" is empty") }
                let folder: String
                switch fields.object["filepath"] {
                case nil, .null?: folder = root
                case .string(let path)?: folder = path.isEmpty ? root : BenchmarkFile.join(root, path)
                case let other?: throw RowProblem("\"filepath\" must be a string, found \(other.kindName)")
                }
                guard let sentences = fields.object["sentences"]?.arrayValue else { throw RowProblem("no \"sentences\" array") }
                var captions: [String] = []
                for (k, sentence) in sentences.enumerated() {
                    guard let raw = sentence.objectValue?["raw"]?.stringValue else { throw RowProblem("sentences[\(k)] has no \"raw\" string") }
                    captions.append(raw)
                }
                guard !captions.isEmpty else { throw RowProblem("\"sentences\" is empty") }
                let image = ImageReference(path: BenchmarkFile.join(folder, filename))
                guard seen.insert(image).inserted else { throw RowProblem("the image \(image.path) is listed twice in the split") }
                return RetrievalTask.Entry(id: id, image: image, captions: captions)
            }
        }
        let entries = rows.items.compactMap { $0 }
        guard !entries.isEmpty || !rows.skipped.isEmpty else {
            throw EvaluationError(file: file, "no image has \"split\": \"\(split)\" (choose with --split \(splits.joined(separator: "|"))")
        }
        return Benchmark(name: "retrieval-" + BenchmarkFile.stem(file).replacingOccurrences(of: "dataset_", with: "") + "-\(split)",
                         kind: .retrieval, source: file, corpus: RetrievalTask(entries: entries), skipped: rows.skipped)
    }

    /// Whether a parsed JSON value is a Karpathy split (an object whose "images" hold "sentences").
    static func matches(_ value: JSONValue) -> Bool {
        value.objectValue?["images"]?.arrayValue?.first?.objectValue?["sentences"] != nil
    }
}
