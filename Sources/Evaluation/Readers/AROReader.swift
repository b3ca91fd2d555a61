import Imaging
import WeightsIO

/// ARO's Visual Genome benchmarks (mertyg/vision-language-models-are-bows): `visual_genome_relation.json`
/// and `visual_genome_attribution.json`, lists of `{"image_path", "bbox_x", "bbox_y", "bbox_w", "bbox_h",
/// "true_caption", "false_caption"}` plus `relation_name` (VG-Relation) or `attributes` (two strings,
/// VG-Attribution), with images in `images/` beside them (the authors' `vgr_vga_images.zip`).
///
/// As the authors' `VG_Relation`/`VG_Attribution`: the image is converted to RGB and cropped to
/// `(x, y, x + w, y + h)` (Pillow rounds each, and fills outside the image with black) before CLIP's
/// preprocessing; correct when the true caption scores strictly higher (`argmax` over
/// `[false, true]` picks the first of equals). Subsets: the relation, or the two attributes joined by `_`.
public enum AROReader {
    public static let relationFile = "visual_genome_relation.json"
    public static let attributionFile = "visual_genome_attribution.json"
    public static let imageFolderName = "images"

    /// The relations the authors leave out of VG-Relation's macro accuracy (their notebook
    /// "Replicate ARO! VG-Relation, VG-Attribution"): relations whose subject and object can swap without
    /// changing the meaning, or that a bag of words cannot get wrong.
    public static let symmetricRelations: Set<String> = [
        "adjusting", "attached to", "between", "bigger than", "biting", "boarding", "brushing", "chewing", "cleaning",
        "climbing", "close to", "coming from", "coming out of", "contain", "crossing", "dragging", "draped over",
        "drinking", "drinking from", "driving", "driving down", "driving on", "eating from", "eating in", "enclosing",
        "exiting", "facing", "filled with", "floating in", "floating on", "flying", "flying above", "flying in",
        "flying over", "flying through", "full of", "going down", "going into", "going through", "grazing in",
        "growing in", "growing on", "guiding", "hanging from", "hanging in", "hanging off", "hanging over",
        "higher than", "holding onto", "hugging", "in between", "jumping off", "jumping on", "jumping over",
        "kept in", "larger than", "leading", "leaning over", "leaving", "licking", "longer than", "looking in",
        "looking into", "looking out", "looking over", "looking through", "lying next to", "lying on top of",
        "making", "mixed with", "mounted on", "moving", "on the back of", "on the edge of", "on the front of",
        "on the other side of", "opening", "painted on", "parked at", "parked beside", "parked by", "parked in",
        "parked in front of", "parked near", "parked next to", "perched on", "petting", "piled on", "playing",
        "playing in", "playing on", "playing with", "pouring", "reaching for", "reading", "reflected on",
        "riding on", "running in", "running on", "running through", "seen through", "sitting behind",
        "sitting beside", "sitting by", "sitting in front of", "sitting near", "sitting next to", "sitting under",
        "skiing down", "skiing on", "sleeping in", "sleeping on", "smiling at", "sniffing", "splashing",
        "sprinkled on", "stacked on", "standing against", "standing around", "standing behind", "standing beside",
        "standing in front of", "standing near", "standing next to", "staring at", "stuck in", "surrounding",
        "swimming in", "swinging", "talking to", "topped with", "touching", "traveling down", "traveling on",
        "tying", "typing on", "underneath", "wading in", "waiting for", "walking across", "walking by",
        "walking down", "walking next to", "walking through", "working in", "working on", "worn on",
        "wrapped around", "wrapped in", "by", "of", "near", "next to", "with", "beside", "on the side of", "around",
    ]

    /// Reads one ARO file; `kind` nil tells relation from attribution by the first record's fields.
    /// Images come from `images`, else `images/` beside the file.
    public static func read(file: String, kind: BenchmarkKind? = nil, images: String? = nil) throws -> Benchmark {
        let value = try BenchmarkFile.json(try BenchmarkFile.bytes(file, what: "ARO JSON file"), file: file)
        return try read(value, file: file, kind: kind, images: images)
    }

    static func read(_ value: JSONValue, file: String, kind: BenchmarkKind?, images: String?) throws -> Benchmark {
        guard let records = value.arrayValue else {
            throw EvaluationError(file: file, "expected a JSON array of ARO items, found \(value.kindName)")
        }
        guard let kind = kind ?? detect(records) else {
            throw EvaluationError(file: file, "cannot tell VG-Relation (\"relation_name\") from VG-Attribution (\"attributes\") by the first item; force one with aro-relation:PATH or aro-attribution:PATH")
        }
        guard kind == .aroRelation || kind == .aroAttribution else {
            throw EvaluationError(file: file, "\(kind.rawValue) is not an ARO benchmark")
        }
        // The authors' vgr_vga_images.zip unpacks as images/.
        let imageFolder = try BenchmarkFile.imageFolder(given: images, beside: file, named: imageFolderName, what: "ARO")
        let name = BenchmarkFile.fileName(file)
        var rows = RowCollector()
        for (index, entry) in records.enumerated() {
            let id = "\(name)[\(index)]"
            rows.add(id: id) { () throws(RowProblem) in
                let fields = try RowFields(entry)
                let path = try fields.string("image_path")
                guard !path.isEmpty else { throw RowProblem("\"image_path\" is empty") }
                let crop = try box(fields)
                let captions = [try fields.string("true_caption"), try fields.string("false_caption")]
                let subset: String
                if kind == .aroRelation {
                    subset = try fields.string("relation_name")
                } else {
                    let attributes = try fields.strings("attributes")
                    guard attributes.count == 2 else { throw RowProblem("\"attributes\" must hold 2 strings, found \(attributes.count)") }
                    subset = "\(attributes[0])_\(attributes[1])"
                }
                return BenchmarkItem(id: id, images: [ImageReference(path: BenchmarkFile.join(imageFolder, path), crop: crop)],
                                     captions: captions, task: .choice(answer: 0), subset: subset)
            }
        }
        return Benchmark(name: kind == .aroRelation ? "aro-vg-relation" : "aro-vg-attribution", kind: kind, source: file,
                         items: rows.items, skipped: rows.skipped)
    }

    static func detect(_ records: [JSONValue]) -> BenchmarkKind? {
        guard let first = records.first?.objectValue else { return nil }
        if first["relation_name"] != nil { return .aroRelation }
        if first["attributes"] != nil { return .aroAttribution }
        return nil
    }

    /// Pillow's `crop`: each coordinate rounded half to even (Python's `round`) after the authors'
    /// `x + w` in floating point.
    static func box(_ fields: RowFields) throws(RowProblem) -> CropBox {
        let x = try fields.number("bbox_x"), y = try fields.number("bbox_y")
        let w = try fields.number("bbox_w"), h = try fields.number("bbox_h")
        let limit = Double(Int32.max)
        let coordinates = [x, y, x + w, y + h].map { $0.rounded(.toNearestOrEven) }
        guard coordinates.allSatisfy({ abs($0) <= limit }) else { throw RowProblem("the box (\(x), \(y), \(w), \(h)) is out of range") }
        let box = CropBox(left: Int(coordinates[0]), top: Int(coordinates[1]), right: Int(coordinates[2]), bottom: Int(coordinates[3]))
        guard box.width > 0, box.height > 0, box.width * box.height <= ImageDecoder.defaultMaxPixels else {
            throw RowProblem("the box \(box) from bbox (\(x), \(y), \(w), \(h)) is empty or too large")
        }
        return box
    }
}
