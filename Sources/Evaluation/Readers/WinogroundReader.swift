/// Winoground's `examples.jsonl` (facebook/winoground: `data/examples.jsonl`, images from `data/images.zip`
/// as `images/ex_N_img_M.png`), and any JSONL of the same shape, such as the example world's
/// `test-swaps.jsonl`. A row: `{"caption_0", "caption_1", "image_0", "image_1"}` plus, in Winoground,
/// `id`, `tag`, `secondary_tag`, `num_main_preds` and `collapsed_tag` (the subset scored separately).
///
/// An image name without an extension is Winoground's: `images/NAME.png` beside the file. A name with
/// an extension is a path relative to the file's folder (or absolute), as test-swaps writes them.
public enum WinogroundReader {
    public static let fileName = "examples.jsonl"
    static let imageExtensions: Set<String> = ["png", "jpg", "jpeg"]

    public static func read(file: String) throws -> Benchmark {
        let folder = BenchmarkFile.folder(of: file)
        let rows = try BenchmarkFile.jsonLines(file, what: "Winoground-style JSONL") { fields, id throws(RowProblem) in
            let captions = [try fields.string("caption_0"), try fields.string("caption_1")]
            let names = [try fields.string("image_0"), try fields.string("image_1")]
            guard names.allSatisfy({ !$0.isEmpty }) else { throw RowProblem("an image name is empty") }
            let tag: String?
            switch fields.object["collapsed_tag"] {
            case nil, .null?: tag = nil
            case .string(let text)?: tag = text
            case let other?: throw RowProblem("\"collapsed_tag\" must be a string, found \(other.kindName)")
            }
            return BenchmarkItem(id: id, images: names.map { ImageReference(path: imagePath($0, folder: folder)) },
                                 captions: captions, task: .pairs, subset: tag)
        }
        let name = BenchmarkFile.fileName(file) == fileName ? "winoground" : BenchmarkFile.stem(file)
        return Benchmark(name: name, kind: .winoground, source: file,
                         items: rows.items, skipped: rows.skipped)
    }

    static func imagePath(_ name: String, folder: String) -> String {
        let suffix = name.split(separator: ".").last.map { $0.lowercased() } ?? ""
        if name.contains(".") && imageExtensions.contains(suffix) || name.contains("/") {
            return BenchmarkFile.join(folder, name)
        }
        return BenchmarkFile.join(folder, "images/\(name).png")
    }
}
