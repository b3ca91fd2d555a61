import Foundation

/// A layout whose records are all known up front (JSONL, CSV/TSV, COCO): random access, so an
/// epoch's order is a permutation of `items`.
public struct IndexedDataset: Sendable, Equatable {
    /// The manifest or annotation file.
    public let source: String
    public let items: [DataItem]

    public init(source: String, items: [DataItem]) {
        self.source = source
        self.items = items
    }

    /// The usable samples in file order (bad records left out).
    public var samples: [TrainingSample] { items.compactMap(\.sample) }
}

/// Paths inside manifests are relative to the manifest's folder unless absolute.
enum ManifestPaths {
    static func folder(of file: String) -> String {
        URL(fileURLWithPath: file).deletingLastPathComponent().path
    }

    static func resolve(_ path: String, in folder: String) -> String {
        path.hasPrefix("/") ? path : (folder.hasSuffix("/") ? folder + path : folder + "/" + path)
    }

    static func fileName(_ path: String) -> String {
        URL(fileURLWithPath: path).lastPathComponent
    }

    static func read(_ path: String, what: String) throws -> Data {
        do {
            return try Data(contentsOf: URL(fileURLWithPath: path), options: .mappedIfSafe)
        } catch {
            let exists = FileManager.default.fileExists(atPath: path)
            throw DataError(file: path, exists ? "cannot read the \(what): \(error.localizedDescription)"
                                               : "the \(what) does not exist")
        }
    }
}

/// JSON Lines manifest: one `{"image": PATH, "caption": TEXT}` object a line (field names
/// configurable). Blank lines are skipped; keys are `NAME:LINE` with 1-based line numbers.
public enum JSONLManifest {
    public static func read(path: String, imageField: String = "image", captionField: String = "caption") throws -> IndexedDataset {
        let data = try ManifestPaths.read(path, what: "JSONL manifest")
        let folder = ManifestPaths.folder(of: path)
        let name = ManifestPaths.fileName(path)
        var items: [DataItem] = []
        var lineNumber = 0
        for rawLine in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            lineNumber += 1
            let line = rawLine.last == UInt8(ascii: "\r") ? rawLine.dropLast() : rawLine
            guard line.contains(where: { !$0.isASCIIWhitespace }) else { continue }
            let key = "\(name):\(lineNumber)"
            items.append(record(Data(line), key: key, folder: folder, imageField: imageField, captionField: captionField))
        }
        return IndexedDataset(source: path, items: items)
    }

    private static func record(_ line: Data, key: String, folder: String, imageField: String, captionField: String) -> DataItem {
        guard String(validating: line, as: UTF8.self) != nil else {
            return .bad(BadSample(key: key, kind: .invalidText, detail: "the line is not valid UTF-8"))
        }
        let expected = "expected a JSON object {\"\(imageField)\": path, \"\(captionField)\": text}"
        guard let object = (try? JSONSerialization.jsonObject(with: line)) as? [String: Any] else {
            return .bad(BadSample(key: key, kind: .malformedRecord, detail: "not valid JSON, \(expected)"))
        }
        guard let image = object[imageField] as? String, !image.isEmpty else {
            return .bad(BadSample(key: key, kind: .malformedRecord, detail: "no string \"\(imageField)\": \(expected)"))
        }
        guard let caption = object[captionField] as? String else {
            return .bad(BadSample(key: key, kind: .malformedRecord, detail: "no string \"\(captionField)\": \(expected)"))
        }
        switch CaptionCheck.clean(caption, key: key) {
        case .failure(let bad): return .bad(bad)
        case .success(let text):
            return .sample(TrainingSample(key: key, caption: text, image: .file(ManifestPaths.resolve(image, in: folder))))
        }
    }
}

extension UInt8 {
    var isASCIIWhitespace: Bool { self == 0x20 || self == 0x09 || self == 0x0A || self == 0x0D }
}
