import Foundation

/// Webdataset tar shards: the shard list is known up front, samples are streamed shard by
/// shard. Members are grouped into samples by key as webdataset does: the member path up to
/// the first dot of its file name (folders kept), e.g. `a/00003.seg.png` → key `a/00003`,
/// extension `seg.png` (lower-cased); consecutive members with one key form one sample.
public struct ShardedDataset: Sendable, Equatable {
    public struct Options: Sendable, Equatable {
        /// Image extensions in order of preference: the first present wins.
        public var imageKeys: [String] = ["jpg", "png", "jpeg", "webp"]
        public var textKey: String = "txt"
        /// Without a `textKey` member, the caption is this field of the `json` member.
        public var jsonCaptionField: String = "caption"

        public init() {}
    }

    public let shards: [String]
    public let options: Options

    public init(shards: [String], options: Options = Options()) {
        self.shards = shards
        self.options = options
    }

    /// `source`: a shard, a folder of shards or a brace pattern (see `ShardList`).
    public init(source: String, options: Options = Options()) throws {
        self.init(shards: try ShardList.resolve(source), options: options)
    }

    /// One shard's items in file order.
    public func items(ofShard index: Int) -> ShardItems {
        ShardItems(path: shards[index], options: options)
    }

    /// Every item of every shard in list order (tests, small sets).
    public func allItems() -> [DataItem] {
        shards.indices.flatMap { Array(items(ofShard: $0)) }
    }
}

/// Streams the items of one shard. A truncated or corrupt shard yields the samples before the
/// damage, then one `.corruptShard` item naming the shard, then ends.
public final class ShardItems: Sequence, IteratorProtocol {
    private let path: String
    private let shardName: String
    private let options: ShardedDataset.Options
    private var reader: TarShardReader?
    private var started = false
    private var finished = false
    /// Members of the sample being gathered, and the first member of the next one.
    private var group: SampleGroup?
    private var ready: [DataItem] = []

    init(path: String, options: ShardedDataset.Options) {
        self.path = path
        self.shardName = ManifestPaths.fileName(path)
        self.options = options
    }

    public func next() -> DataItem? {
        while ready.isEmpty && !finished { advance() }
        return ready.isEmpty ? nil : ready.removeFirst()
    }

    private func advance() {
        do throws(TarShardReader.Failure) {
            if !started {
                started = true
                reader = try TarShardReader(path: path)
            }
            guard let reader else { return finish() }
            guard let member = try reader.next(wanted: wanted) else {
                if let group { ready.append(group.item(options: options)) }
                group = nil
                return finish()
            }
            guard let (key, ext) = Self.split(member.path) else { return }  // no extension: not part of a sample (as webdataset)
            let part = SampleGroup.Member(ext: ext, bytes: member.bytes, size: member.size, path: member.path)
            if let current = group, current.key == key {
                group?.add(part)
            } else {
                if let group { ready.append(group.item(options: options)) }
                group = SampleGroup(key: key, shardName: shardName, first: part)
            }
        } catch {
            guard case .corrupt(let reason) = error else { return finish() }
            // The sample being gathered is part of the unreadable rest.
            let at = group.map { " (at sample \($0.key))" } ?? ""
            ready.append(.bad(BadSample(key: shardName, kind: .corruptShard,
                                        detail: "\(path): \(reason)\(at); the rest of the shard is skipped")))
            group = nil
            finish()
        }
    }

    private func finish() {
        finished = true
        reader = nil  // closes the file now, not when the iterator goes away
    }

    private func wanted(_ path: String) -> Bool {
        guard let (_, ext) = Self.split(path) else { return false }
        return options.imageKeys.contains(ext) || ext == options.textKey || ext == "json"
    }

    /// webdataset's `base_plus_ext`: key up to the first dot of the file name, extension after it.
    static func split(_ path: String) -> (key: String, ext: String)? {
        let slash = path.lastIndex(of: "/").map { path.index(after: $0) } ?? path.startIndex
        guard let dot = path[slash...].firstIndex(of: "."), dot > slash else { return nil }
        let ext = path[path.index(after: dot)...]
        guard !ext.isEmpty else { return nil }
        return (String(path[..<dot]), ext.lowercased())
    }
}

/// The members sharing one key.
struct SampleGroup {
    struct Member {
        let ext: String
        let bytes: Data?
        let size: Int64
        let path: String
    }

    let key: String
    let shardName: String
    private(set) var members: [Member]

    init(key: String, shardName: String, first: Member) {
        self.key = key
        self.shardName = shardName
        self.members = [first]
    }

    mutating func add(_ member: Member) { members.append(member) }

    func item(options: ShardedDataset.Options) -> DataItem {
        let sampleKey = "\(shardName):\(key)"
        func bad(_ kind: BadSampleKind, _ detail: String) -> DataItem {
            .bad(BadSample(key: sampleKey, kind: kind, detail: detail))
        }
        let exts = members.map(\.ext)
        if let duplicate = exts.first(where: { ext in exts.filter { $0 == ext }.count > 1 }) {
            return bad(.malformedRecord, "two members with extension \(duplicate)")
        }
        func member(_ ext: String) -> Member? { members.first { $0.ext == ext } }
        guard let image = options.imageKeys.lazy.compactMap(member).first else {
            return bad(.incompleteSample, "no image member (\(options.imageKeys.joined(separator: ", "))); members: \(exts.joined(separator: ", "))")
        }
        guard let imageBytes = image.bytes else {
            return bad(.unsupportedImage, "\(image.path) is \(image.size) bytes, over the \(TarShardReader.maximumMemberBytes)-byte member limit")
        }
        let caption: Result<String, BadSample>
        if let text = member(options.textKey) {
            guard let bytes = text.bytes else { return bad(.malformedRecord, "\(text.path) is over the member size limit") }
            caption = CaptionCheck.clean(bytes: bytes, key: sampleKey, what: text.path)
        } else if let json = member("json") {
            caption = Self.caption(fromJSON: json, field: options.jsonCaptionField, key: sampleKey)
        } else {
            return bad(.incompleteSample, "no caption: no \(options.textKey) member and no json member; members: \(exts.joined(separator: ", "))")
        }
        switch caption {
        case .failure(let problem): return .bad(problem)
        case .success(let text):
            return .sample(TrainingSample(key: sampleKey, caption: text, image: .bytes(imageBytes, name: "\(shardName):\(image.path)")))
        }
    }

    private static func caption(fromJSON member: Member, field: String, key: String) -> Result<String, BadSample> {
        guard let bytes = member.bytes, String(validating: bytes, as: UTF8.self) != nil else {
            return .failure(BadSample(key: key, kind: .invalidText, detail: "\(member.path) is not valid UTF-8 (or over the size limit)"))
        }
        guard let object = (try? JSONSerialization.jsonObject(with: bytes)) as? [String: Any],
              let text = object[field] as? String else {
            return .failure(BadSample(key: key, kind: .malformedRecord, detail: "\(member.path): expected a JSON object with a string \"\(field)\""))
        }
        return CaptionCheck.clean(text, key: key)
    }
}
