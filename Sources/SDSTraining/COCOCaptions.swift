import Foundation

/// MS-COCO captions: `ROOT/annotations/captions_SPLIT.json` with `images[]` (`id`, `file_name`)
/// and `annotations[]` (`image_id`, `caption`, `id`), images in `ROOT/SPLIT/`. One sample per
/// caption, in annotation order; keys are `captions_SPLIT.json:ann ID` (or `#INDEX` without an id).
public enum COCOCaptions {
    /// `annotations` is the JSON file; `imageFolder` overrides `ROOT/SPLIT/`.
    public static func read(annotations path: String, imageFolder: String? = nil) throws -> IndexedDataset {
        let folder = imageFolder ?? defaultImageFolder(for: path)
        let data = try ManifestPaths.read(path, what: "COCO captions file")
        let parsed: Any
        do {
            parsed = try JSONSerialization.jsonObject(with: data)
        } catch {
            throw DataError(file: path, "not valid JSON: \(error.localizedDescription)")
        }
        guard let root = parsed as? [String: Any], let images = root["images"] as? [Any],
              let annotations = root["annotations"] as? [Any] else {
            throw DataError(file: path, "expected a JSON object with arrays \"images\" and \"annotations\" (COCO captions format)")
        }
        var fileNames: [String: String] = [:]
        for (index, entry) in images.enumerated() {
            guard let image = entry as? [String: Any], let id = identifier(image["id"]),
                  let fileName = image["file_name"] as? String, !fileName.isEmpty else {
                throw DataError(file: path, at: "images[\(index)]", "expected an object with \"id\" and \"file_name\"")
            }
            fileNames[id] = fileName
        }
        let name = ManifestPaths.fileName(path)
        var items: [DataItem] = []
        items.reserveCapacity(annotations.count)
        for (index, entry) in annotations.enumerated() {
            let annotation = entry as? [String: Any]
            let key = "\(name):" + (identifier(annotation?["id"]).map { "ann \($0)" } ?? "#\(index)")
            guard let annotation, let imageID = identifier(annotation["image_id"]), let caption = annotation["caption"] as? String else {
                items.append(.bad(BadSample(key: key, kind: .malformedRecord,
                                            detail: "annotations[\(index)]: expected \"image_id\" and a string \"caption\"")))
                continue
            }
            guard let fileName = fileNames[imageID] else {
                items.append(.bad(BadSample(key: key, kind: .malformedRecord,
                                            detail: "annotations[\(index)]: image_id \(imageID) is not in images[]")))
                continue
            }
            switch CaptionCheck.clean(caption, key: key) {
            case .failure(let bad): items.append(.bad(bad))
            case .success(let text):
                items.append(.sample(TrainingSample(key: key, caption: text, image: .file(ManifestPaths.resolve(fileName, in: folder)))))
            }
        }
        return IndexedDataset(source: path, items: items)
    }

    /// `ROOT/annotations/captions_train2017.json` → `ROOT/train2017`.
    public static func defaultImageFolder(for annotations: String) -> String {
        let url = URL(fileURLWithPath: annotations)
        var split = url.deletingPathExtension().lastPathComponent
        if split.hasPrefix("captions_") { split.removeFirst("captions_".count) }
        return url.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent(split).path
    }

    /// The caption files under `ROOT/annotations/`, sorted.
    public static func captionFiles(inRoot root: String) -> [String] {
        let folder = URL(fileURLWithPath: root).appendingPathComponent("annotations")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
        return names.filter { $0.hasPrefix("captions_") && $0.hasSuffix(".json") }.sorted()
            .map { folder.appendingPathComponent($0).path }
    }

    /// COCO ids are integers; some derived sets use strings. Both become the same text key.
    private static func identifier(_ value: Any?) -> String? {
        if let number = value as? Int { return String(number) }
        if let text = value as? String, !text.isEmpty { return text }
        return nil
    }
}
