import Foundation

/// One image-caption pair from any data layout.
public struct TrainingSample: Sendable, Equatable {
    /// Where the sample comes from, for logs and errors: `train.jsonl:12` (line), `train.csv:5`
    /// (line the record starts on), `captions_train2017.json:ann 37` (annotation id),
    /// `train-000.tar:00003` (shard and webdataset key).
    public let key: String
    /// Trimmed of leading and trailing white space; never empty.
    public let caption: String
    public let image: ImageSource

    public init(key: String, caption: String, image: ImageSource) {
        (self.key, self.caption, self.image) = (key, caption, image)
    }
}

public enum ImageSource: Sendable, Equatable {
    /// A file path (absolute, or as given when the manifest named it so).
    case file(String)
    /// Encoded image bytes, e.g. a tar member; `name` is what errors call it (`train-000.tar:00003.png`).
    case bytes(Data, name: String)

    public var name: String {
        switch self {
        case .file(let path): return path
        case .bytes(_, let name): return name
        }
    }
}

/// What a data layout yields at each position of its order: a usable sample, or a record that
/// could not become one. Bad records keep their place so that positions (and resuming) do not
/// depend on which records turned out bad.
public enum DataItem: Sendable, Equatable {
    case sample(TrainingSample)
    case bad(BadSample)

    public var sample: TrainingSample? {
        if case .sample(let sample) = self { return sample }
        return nil
    }
}

/// Why a record was skipped. A bad sample never ends a run by itself; too many of them do
/// (see `BatchLoader.Configuration.maximumBadFraction`).
public enum BadSampleKind: String, Sendable, CaseIterable, Comparable {
    case missingImage = "missing image"
    case unreadableImage = "unreadable image"
    /// Not JPEG or PNG, or corrupt or truncated image data.
    case undecodableImage = "undecodable image"
    /// A valid image the decoder does not handle (CMYK JPEG, WebP, too many pixels).
    case unsupportedImage = "unsupported image"
    case emptyCaption = "empty caption"
    case invalidText = "text not UTF-8"
    /// A manifest line or annotation that does not have the expected shape.
    case malformedRecord = "malformed record"
    /// A webdataset sample with no image member or no caption.
    case incompleteSample = "incomplete sample"
    /// A truncated or corrupt shard: the rest of it is skipped and counted once, here.
    case corruptShard = "corrupt shard"

    public static func < (lhs: Self, rhs: Self) -> Bool {
        (allCases.firstIndex(of: lhs) ?? 0) < (allCases.firstIndex(of: rhs) ?? 0)
    }
}

public struct BadSample: Error, Sendable, Equatable, CustomStringConvertible {
    public let key: String
    public let kind: BadSampleKind
    public let detail: String

    public init(key: String, kind: BadSampleKind, detail: String) {
        (self.key, self.kind, self.detail) = (key, kind, detail)
    }

    public var description: String { "\(key): \(kind.rawValue): \(detail)" }
}

/// Running counts of bad samples by kind.
public struct BadSampleCounts: Sendable, Equatable, CustomStringConvertible {
    public private(set) var byKind: [BadSampleKind: Int] = [:]

    public init() {}

    public var total: Int { byKind.values.reduce(0, +) }

    public subscript(kind: BadSampleKind) -> Int { byKind[kind] ?? 0 }

    public mutating func add(_ kind: BadSampleKind) { byKind[kind, default: 0] += 1 }

    public var description: String {
        byKind.isEmpty ? "none" : byKind.keys.sorted().map { "\($0.rawValue) \(byKind[$0] ?? 0)" }.joined(separator: ", ")
    }
}

/// Captions are trimmed; empty ones are bad samples.
enum CaptionCheck {
    static func clean(_ text: String, key: String) -> Result<String, BadSample> {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty else {
            return .failure(BadSample(key: key, kind: .emptyCaption, detail: "the caption is empty"))
        }
        return .success(trimmed)
    }

    /// For raw bytes (tar members, CSV fields): must be UTF-8.
    static func clean(bytes: some Collection<UInt8>, key: String, what: String) -> Result<String, BadSample> {
        guard let text = String(validating: bytes, as: UTF8.self) else {
            return .failure(BadSample(key: key, kind: .invalidText, detail: "\(what) is not valid UTF-8"))
        }
        return clean(text, key: key)
    }
}
