import Foundation

/// The data layouts sdsclip trains from.
public enum DatasetLayout: String, Sendable, CaseIterable {
    case jsonl, csv, tsv, coco, webdataset

    /// Chooses the layout from what is at `path`: a folder with `annotations/captions_*.json`
    /// or a `.json` file → COCO; `.jsonl` → JSONL; `.csv`/`.tsv`; a shard, a brace pattern or a
    /// folder of shards → webdataset.
    public static func detect(_ path: String) throws -> DatasetLayout {
        let lower = path.lowercased()
        var isFolder: ObjCBool = false
        let exists = FileManager.default.fileExists(atPath: path, isDirectory: &isFolder)
        if exists && isFolder.boolValue {
            if !COCOCaptions.captionFiles(inRoot: path).isEmpty { return .coco }
            if (try? ShardList.resolve(path)) != nil { return .webdataset }
            throw DataError(file: path, "cannot tell the data layout of this folder: expected annotations/captions_*.json (COCO) "
                            + "or .tar/.tar.gz/.tgz shards (webdataset); or pass a .jsonl, .csv or .tsv manifest")
        }
        if lower.hasSuffix(".jsonl") { return .jsonl }
        if lower.hasSuffix(".csv") { return .csv }
        if lower.hasSuffix(".tsv") { return .tsv }
        if lower.hasSuffix(".json") { return .coco }
        if ShardList.isShardName(ManifestPaths.fileName(path)) || path.contains("{") { return .webdataset }
        guard exists else { throw DataError(file: path, "no such file or folder") }
        throw DataError(file: path, "cannot tell the data layout from the name: expected .jsonl, .csv, .tsv, .json (COCO captions), "
                        + ".tar/.tar.gz/.tgz or a folder; name the layout explicitly")
    }
}

/// Field names and overrides for the layouts; the defaults are each format's conventions.
public struct DatasetOptions: Sendable, Equatable {
    public var jsonlImageField = "image"
    public var jsonlCaptionField = "caption"
    public var csvImageColumn = "filepath"
    public var csvCaptionColumn = "title"
    /// nil: tab for `.tsv` (and `--layout tsv`), comma otherwise.
    public var csvSeparator: UInt8?
    /// COCO: the caption file to use when the root holds several (else the only one).
    public var cocoAnnotations: String?
    /// COCO: the image folder, instead of `ROOT/SPLIT/`.
    public var cocoImageFolder: String?
    public var webdataset = ShardedDataset.Options()

    public init() {}
}

/// A data set ready to stream: indexed (random access) or sharded (streamed).
public enum TrainingDataset: Sendable, Equatable {
    case indexed(IndexedDataset)
    case sharded(ShardedDataset)

    /// Opens `path` with the given layout, or the detected one.
    public static func open(_ path: String, layout: DatasetLayout? = nil, options: DatasetOptions = DatasetOptions()) throws -> TrainingDataset {
        switch try layout ?? DatasetLayout.detect(path) {
        case .jsonl:
            return .indexed(try JSONLManifest.read(path: path, imageField: options.jsonlImageField,
                                                   captionField: options.jsonlCaptionField))
        case .csv, .tsv:
            let separator = options.csvSeparator ?? (layout == .tsv ? UInt8(ascii: "\t") : DelimitedManifest.defaultSeparator(for: path))
            return .indexed(try DelimitedManifest.read(path: path, separator: separator, imageColumn: options.csvImageColumn,
                                                       captionColumn: options.csvCaptionColumn))
        case .coco:
            return .indexed(try COCOCaptions.read(annotations: try cocoAnnotations(path, options: options),
                                                  imageFolder: options.cocoImageFolder))
        case .webdataset:
            return .sharded(try ShardedDataset(source: path, options: options.webdataset))
        }
    }

    /// Every item in file order (tests, small sets); shards are read in full.
    public func allItems() -> [DataItem] {
        switch self {
        case .indexed(let dataset): return dataset.items
        case .sharded(let dataset): return dataset.allItems()
        }
    }

    private static func cocoAnnotations(_ path: String, options: DatasetOptions) throws -> String {
        if let chosen = options.cocoAnnotations { return chosen }
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder), isFolder.boolValue else { return path }
        let files = COCOCaptions.captionFiles(inRoot: path)
        guard files.count == 1, let only = files.first else {
            let found = files.isEmpty ? "none" : files.map(ManifestPaths.fileName).joined(separator: ", ")
            throw DataError(file: path, "expected exactly one annotations/captions_*.json, found \(found); choose one")
        }
        return only
    }
}
