import Foundation
import Imaging
import WeightsIO

/// Writes the example world as every data layout sdsclip reads, plus Winoground-style test pairs:
///
///     OUT/images/NNNNN.png             the training images
///     OUT/train.jsonl                  {"image": "images/00000.png", "caption": "…"} a line
///     OUT/train.csv                    open_clip CSV: filepath,title (comma-separated, RFC 4180)
///     OUT/shards/train-NNN.tar         webdataset: NNNNN.png + NNNNN.txt, `shardSize` samples a shard
///     OUT/coco/annotations/captions_train2017.json, OUT/coco/train2017 -> ../images (symlink)
///     OUT/test-images/NNNNN_{0,1}.png  and OUT/test-swaps.jsonl (image_0, image_1, caption_0, caption_1)
///
/// The output depends only on the options: no dates, no unseeded randomness.
public enum ExampleDataWriter {
    public struct Options: Sendable {
        public var size = 64
        public var count = 64
        public var seed: UInt64 = 0
        public var shardSize = 16
        public var testPairs = 16
        /// Allow a non-empty output folder: the entries this writer makes are replaced, others kept.
        public var overwrite = false

        public init() {}
    }

    public struct Summary: Sendable {
        public let images: Int
        public let shards: Int
        public let testPairs: Int
    }

    /// What the writer creates in the output folder (and replaces with `overwrite`).
    public static let entries = ["images", "shards", "coco", "test-images", "train.jsonl", "train.csv", "test-swaps.jsonl"]
    public static let maximumCount = 100_000

    public static func write(to folder: String, options: Options) throws -> Summary {
        guard (1...maximumCount).contains(options.count), (0...maximumCount).contains(options.testPairs) else {
            throw DataError(file: folder, "count must be 1 to \(maximumCount) and test pairs 0 to \(maximumCount)")
        }
        guard options.shardSize > 0 else { throw DataError(file: folder, "shard size must be positive") }
        let world = try ExampleWorld(size: options.size, seed: options.seed)
        let out = URL(fileURLWithPath: folder)
        try prepare(out, overwrite: options.overwrite)
        for sub in ["images", "shards", "coco/annotations", "test-images"] {
            try makeFolder(out.appendingPathComponent(sub))
        }

        var jsonl = "", csv = "filepath,title\n"
        var cocoImages: [String] = [], cocoAnnotations: [String] = []
        var shard = TarWriter()
        var shardCount = 0
        for index in 0..<options.count {
            let name = number(index, width: 5)
            let scene = world.scene(index)
            let png = [UInt8](try PNGEncoder.encode(world.render(scene, variant: index)))
            try AtomicFile.write(png, to: out.appendingPathComponent("images/\(name).png").path)
            jsonl += "{\"image\": \(JSONText.quote("images/\(name).png")), \"caption\": \(JSONText.quote(scene.caption))}\n"
            csv += "images/\(name).png,\(CSVText.field(scene.caption))\n"
            cocoImages.append("{\"id\": \(index), \"file_name\": \"\(name).png\", \"width\": \(options.size), \"height\": \(options.size)}")
            cocoAnnotations.append("{\"id\": \(index), \"image_id\": \(index), \"caption\": \(JSONText.quote(scene.caption))}")
            try shard.add(name: "\(name).png", data: png)
            try shard.add(name: "\(name).txt", data: Array(scene.caption.utf8))
            if (index + 1) % options.shardSize == 0 || index + 1 == options.count {
                let shardName = "shards/train-\(number(shardCount, width: 3)).tar"
                try AtomicFile.write(shard.finished(), to: out.appendingPathComponent(shardName).path)
                shard = TarWriter()
                shardCount += 1
            }
        }
        try writeText(jsonl, to: out.appendingPathComponent("train.jsonl"))
        try writeText(csv, to: out.appendingPathComponent("train.csv"))
        let coco = "{\"info\": {\"description\": \"sdsclip example world, seed \(options.seed)\"},\n\"images\": [\n"
            + cocoImages.joined(separator: ",\n") + "\n],\n\"annotations\": [\n" + cocoAnnotations.joined(separator: ",\n") + "\n]}\n"
        try writeText(coco, to: out.appendingPathComponent("coco/annotations/captions_train2017.json"))
        // COCO's default image folder is ROOT/SPLIT; point it at the shared images.
        try FileManager.default.createSymbolicLink(atPath: out.appendingPathComponent("coco/train2017").path,
                                                   withDestinationPath: "../images")

        var swaps = ""
        for index in 0..<options.testPairs {
            let (first, second, _) = world.swapPair(index)
            let name = number(index, width: 5)
            // Placements differ from the training images' (variants past the training range).
            for (side, scene) in [first, second].enumerated() {
                let image = world.render(scene, variant: maximumCount + 2 * index + side)
                try PNGEncoder.write(image, to: out.appendingPathComponent("test-images/\(name)_\(side).png").path)
            }
            swaps += "{\"image_0\": \(JSONText.quote("test-images/\(name)_0.png")), \"image_1\": \(JSONText.quote("test-images/\(name)_1.png")), "
                + "\"caption_0\": \(JSONText.quote(first.caption)), \"caption_1\": \(JSONText.quote(second.caption))}\n"
        }
        try writeText(swaps, to: out.appendingPathComponent("test-swaps.jsonl"))
        return Summary(images: options.count, shards: shardCount, testPairs: options.testPairs)
    }

    private static func prepare(_ out: URL, overwrite: Bool) throws {
        let manager = FileManager.default
        var isFolder: ObjCBool = false
        guard manager.fileExists(atPath: out.path, isDirectory: &isFolder) else {
            return try makeFolder(out)
        }
        guard isFolder.boolValue else { throw DataError(file: out.path, "exists and is not a folder") }
        let present = (try? manager.contentsOfDirectory(atPath: out.path)) ?? []
        guard !present.isEmpty else { return }
        guard overwrite else {
            throw DataError(file: out.path, "the output folder is not empty (\(present.count) entries); pass --overwrite to replace "
                            + "what example-data writes there (\(entries.joined(separator: ", ")))")
        }
        for entry in entries where present.contains(entry) {
            do {
                try manager.removeItem(at: out.appendingPathComponent(entry))
            } catch {
                throw DataError(file: out.appendingPathComponent(entry).path, "cannot remove it to overwrite: \(error.localizedDescription)")
            }
        }
    }

    private static func makeFolder(_ url: URL) throws {
        do {
            try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        } catch {
            throw DataError(file: url.path, "cannot create the folder: \(error.localizedDescription)")
        }
    }

    private static func writeText(_ text: String, to url: URL) throws {
        try AtomicFile.write(Array(text.utf8), to: url.path)
    }

    /// Zero-padded decimal (no String(format:), whose locale handling varies).
    static func number(_ value: Int, width: Int) -> String {
        let digits = String(value)
        return String(repeating: "0", count: max(0, width - digits.count)) + digits
    }
}

/// JSON string literals, escaped by hand so the output is the same bytes everywhere
/// (Foundation's encoder escapes '/' on some platforms and not others).
enum JSONText {
    static func quote(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}

/// RFC 4180: quote a field holding a comma, quote or line break; double inner quotes.
enum CSVText {
    static func field(_ text: String) -> String {
        guard text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return text }
        return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}
