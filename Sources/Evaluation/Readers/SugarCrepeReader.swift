import WeightsIO

/// SugarCrepe (RAIVNLab/sugar-crepe, `data/*.json`): seven files, each a dict "0", "1", … of
/// `{"filename", "caption", "negative_caption"}`, where `filename` names a COCO val2017 image. Correct when
/// the positive caption scores strictly higher; each file is a subset (scored per file).
public enum SugarCrepeReader {
    public static let subsets = ["add_att", "add_obj", "replace_att", "replace_obj", "replace_rel", "swap_att", "swap_obj"]
    /// The image folder looked for beside the JSON files when `--images` is not given.
    public static let imageFolderName = "val2017"

    /// The SugarCrepe files present in `folder`, in the canonical order.
    public static func files(in folder: String) -> [String] {
        subsets.map { BenchmarkFile.join(folder, "\($0).json") }.filter(BenchmarkFile.exists)
    }

    /// Reads `files` (any of the seven, or other files of the same shape) as one benchmark; images come
    /// from `images`, else `val2017/` beside the first file. `source` names the benchmark in reports.
    public static func read(files: [String], images: String? = nil, source: String? = nil) throws -> Benchmark {
        guard let first = files.first else {
            throw EvaluationError(file: "sugarcrepe", "no SugarCrepe files given (\(subsets.map { "\($0).json" }.joined(separator: ", ")))")
        }
        let imageFolder = try BenchmarkFile.imageFolder(given: images, beside: first, named: imageFolderName, what: "COCO val2017")
        var items: [BenchmarkItem] = [], skipped: [SkippedItem] = []
        for file in files {
            let value = try BenchmarkFile.json(try BenchmarkFile.bytes(file, what: "SugarCrepe JSON file"), file: file)
            let rows = try read(value, file: file, imageFolder: imageFolder)
            items += rows.items
            skipped += rows.skipped
        }
        return Benchmark(name: "sugarcrepe", kind: .sugarCrepe, source: source ?? (files.count == 1 ? first : BenchmarkFile.folder(of: first)),
                         items: items, skipped: skipped)
    }

    static func read(_ value: JSONValue, file: String, imageFolder: String) throws -> RowCollector {
        guard let object = value.objectValue else {
            throw EvaluationError(file: file, "expected a JSON object of items (\"0\": {\"filename\", \"caption\", \"negative_caption\"}, …), found \(value.kindName)")
        }
        let name = BenchmarkFile.fileName(file)
        let subset = BenchmarkFile.stem(file)
        var rows = RowCollector()
        for (key, entry) in object.members {
            let id = "\(name)[\"\(key)\"]"
            rows.add(id: id) { () throws(RowProblem) in
                let fields = try RowFields(entry)
                let filename = try fields.string("filename")
                guard !filename.isEmpty else { throw RowProblem("\"filename\" is empty") }
                let captions = [try fields.string("caption"), try fields.string("negative_caption")]
                return BenchmarkItem(id: id, images: [ImageReference(path: BenchmarkFile.join(imageFolder, filename))],
                                     captions: captions, task: .choice(answer: 0), subset: subset)
            }
        }
        return rows
    }
}
