/// A pixel box as Pillow's `Image.crop((left, top, right, bottom))`: right and bottom exclusive; parts
/// outside the image come out black.
public struct CropBox: Hashable, Sendable, CustomStringConvertible {
    public let left: Int
    public let top: Int
    public let right: Int
    public let bottom: Int

    public init(left: Int, top: Int, right: Int, bottom: Int) {
        (self.left, self.top, self.right, self.bottom) = (left, top, right, bottom)
    }

    public var width: Int { right - left }
    public var height: Int { bottom - top }
    public var description: String { "(\(left), \(top), \(right), \(bottom))" }
}

/// One image as a benchmark names it: a file, optionally cropped (ARO). The embedding cache key.
public struct ImageReference: Hashable, Sendable, CustomStringConvertible {
    public let path: String
    public let crop: CropBox?

    public init(path: String, crop: CropBox? = nil) {
        self.path = path
        self.crop = crop
    }

    public var description: String { crop.map { "\(path) cropped to \($0)" } ?? path }
}

/// How an item is scored from its caption-image similarities.
public enum ItemTask: Hashable, Sendable {
    /// Winoground: images and captions come in two matched pairs (caption k describes image k).
    case pairs
    /// One image and several captions: correct when caption `answer` scores strictly highest.
    case choice(answer: Int)
}

/// One test case of a benchmark.
public struct BenchmarkItem: Hashable, Sendable {
    /// Where the item came from, for messages: `examples.jsonl:12 (id 11)`, `add_att.json "5"`.
    public let id: String
    public let images: [ImageReference]
    public let captions: [String]
    public let task: ItemTask
    /// The group it is also scored in (Winoground's collapsed_tag, SugarCrepe's file, ARO's relation).
    public let subset: String?

    public init(id: String, images: [ImageReference], captions: [String], task: ItemTask, subset: String? = nil) {
        self.id = id
        self.images = images
        self.captions = captions
        self.task = task
        self.subset = subset
    }
}

/// An item left out, and why (a malformed row, a missing or undecodable image).
public struct SkippedItem: Error, Hashable, Sendable, CustomStringConvertible {
    public let id: String
    public let reason: String

    public init(id: String, reason: String) {
        self.id = id
        self.reason = reason
    }

    public var description: String { "\(id): \(reason)" }
}
