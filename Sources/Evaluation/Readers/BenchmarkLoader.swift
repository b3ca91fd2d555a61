import WeightsIO

/// A BENCHMARK argument: a file or folder whose layout is detected, or forced with a prefix
/// (`winoground:DIR`, `sugarcrepe:FILE`, `choice:FILE`, `aro:DIR`, `aro-relation:FILE`, `aro-attribution:FILE`,
/// `zeroshot:DIR`, `retrieval:FILE`, `probe:DIR`).
public struct BenchmarkSpec: Hashable, Sendable, CustomStringConvertible {
    public enum Layout: String, CaseIterable, Sendable {
        case winoground, sugarcrepe, choice
        /// Whichever ARO files a folder holds, or the one a file is.
        case aro
        case aroRelation = "aro-relation"
        case aroAttribution = "aro-attribution"
        /// A folder of class folders (ImageFolder).
        case zeroshot
        /// A Karpathy split JSON, or a folder holding one.
        case retrieval
        /// An example world folder's linear probe.
        case probe
    }

    public let layout: Layout?
    public let path: String

    public init(layout: Layout?, path: String) {
        self.layout = layout
        self.path = path
    }

    /// `KIND:PATH` when KIND names a layout; anything else (including other colons) is a plain path.
    public init(argument: String) {
        if let colon = argument.firstIndex(of: ":"), let layout = Layout(rawValue: String(argument[..<colon])) {
            self.init(layout: layout, path: String(argument[argument.index(after: colon)...]))
        } else {
            self.init(layout: nil, path: argument)
        }
    }

    public var description: String { layout.map { "\($0.rawValue):\(path)" } ?? path }
}

/// What some layouts need besides their path.
public struct BenchmarkOptions: Sendable {
    /// The image folder of SugarCrepe, ARO and retrieval (whose JSON names files without a folder).
    public var images: String?
    /// The Karpathy split scored by retrieval.
    public var split: String
    /// Zero-shot class names (`classnames.txt` / `.json`) and prompt templates, instead of the ones in the folder.
    public var classNames: String?
    public var templates: String?

    public init(images: String? = nil, split: String = KarpathyReader.defaultSplit, classNames: String? = nil, templates: String? = nil) {
        (self.images, self.split, self.classNames, self.templates) = (images, split, classNames, templates)
    }
}

/// Opens BENCHMARK arguments: finds the layout, reads the rows, names the benchmarks uniquely.
public enum BenchmarkLoader {
    static let expected = "Winoground-style JSONL (caption_0, caption_1, image_0, image_1), multiple choice JSONL (image, captions, answer), "
        + "a SugarCrepe JSON dict (filename, caption, negative_caption), an ARO JSON list (true_caption, false_caption) "
        + "or a Karpathy split JSON (images[].sentences)"
    static let forcing = "name the layout as KIND:PATH (\(BenchmarkSpec.Layout.allCases.map(\.rawValue).joined(separator: ", ")))"

    /// Every benchmark of every argument, in order; a name used twice gets `#2`, `#3`, ….
    /// `images` is the image folder for SugarCrepe and ARO (whose JSON names files without a folder).
    public static func open(_ specs: [BenchmarkSpec], images: String? = nil) throws -> [Benchmark] {
        try open(specs, options: BenchmarkOptions(images: images))
    }

    public static func open(_ specs: [BenchmarkSpec], options: BenchmarkOptions) throws -> [Benchmark] {
        var benchmarks: [Benchmark] = []
        var used: [String: Int] = [:]
        for spec in specs {
            for var benchmark in try open(spec, options: options) {
                let count = (used[benchmark.name] ?? 0) + 1
                used[benchmark.name] = count
                if count > 1 { benchmark.name += "#\(count)" }
                benchmarks.append(benchmark)
            }
        }
        return benchmarks
    }

    /// Whether an argument names a benchmark rather than a model, without reading it: KIND:PATH, a
    /// `.json`/`.jsonl` file, or a folder holding a file of a benchmark layout. (`eval --teacher` uses it
    /// to tell a left-out MODEL.)
    public static func namesBenchmark(_ argument: String) -> Bool {
        let spec = BenchmarkSpec(argument: argument)
        if spec.layout != nil { return true }
        let path = spec.path
        if BenchmarkFile.isFolder(path) {
            return ([WinogroundReader.fileName, AROReader.relationFile, AROReader.attributionFile]
                .contains { BenchmarkFile.exists(BenchmarkFile.join(path, $0)) }) || !SugarCrepeReader.files(in: path).isEmpty
        }
        return path.hasSuffix(".jsonl") || path.hasSuffix(".json")
    }

    public static func open(_ spec: BenchmarkSpec, images: String? = nil) throws -> [Benchmark] {
        try open(spec, options: BenchmarkOptions(images: images))
    }

    public static func open(_ spec: BenchmarkSpec, options: BenchmarkOptions) throws -> [Benchmark] {
        guard BenchmarkFile.exists(spec.path) else { throw EvaluationError(file: spec.path, "the benchmark does not exist") }
        guard BenchmarkFile.isFolder(spec.path) else { return [try openFile(spec, options: options)] }
        if let whole = try openWholeFolder(spec, options: options) { return whole }
        return try openFolder(spec, images: options.images)
    }

    /// The folder layouts scored as a whole: a zero-shot ImageFolder, a folder with a Karpathy split, an
    /// example world (its test-swaps and probe); nil when the folder is none of them (or another is forced).
    static func openWholeFolder(_ spec: BenchmarkSpec, options: BenchmarkOptions) throws -> [Benchmark]? {
        let folder = spec.path
        let karpathy = KarpathyReader.fileNames.map { BenchmarkFile.join(folder, $0) }.filter(BenchmarkFile.exists)
        switch spec.layout {
        case .zeroshot?:
            return [try ImageFolderReader.read(folder: folder, classNames: options.classNames, templates: options.templates)]
        case .retrieval?:
            guard !karpathy.isEmpty else {
                throw EvaluationError(file: folder, "found no Karpathy split (\(KarpathyReader.fileNames.joined(separator: ", ")))")
            }
            return try karpathy.map { try KarpathyReader.read(file: $0, split: options.split, images: options.images) }
        case .probe?:
            return [try ExampleWorldReader.probe(folder: folder)]
        case nil:
            if ExampleWorldReader.isWorld(folder) {
                return [try WinogroundReader.read(file: BenchmarkFile.join(folder, ExampleWorldReader.testFile)),
                        try ExampleWorldReader.probe(folder: folder)]
            }
            if !karpathy.isEmpty {
                return try karpathy.map { try KarpathyReader.read(file: $0, split: options.split, images: options.images) }
            }
            // Only when no file of another layout is there: any folder with image subfolders would pass.
            if !hasFileBenchmark(folder), ImageFolderReader.looksLikeImageFolder(folder) {
                return [try ImageFolderReader.read(folder: folder, classNames: options.classNames, templates: options.templates)]
            }
            return nil
        default:
            return nil
        }
    }

    static func hasFileBenchmark(_ folder: String) -> Bool {
        BenchmarkFile.exists(BenchmarkFile.join(folder, WinogroundReader.fileName)) || !SugarCrepeReader.files(in: folder).isEmpty
            || [AROReader.relationFile, AROReader.attributionFile].contains { BenchmarkFile.exists(BenchmarkFile.join(folder, $0)) }
    }

    static func openFolder(_ spec: BenchmarkSpec, images: String?) throws -> [Benchmark] {
        let folder = spec.path
        let examples = BenchmarkFile.join(folder, WinogroundReader.fileName)
        let sugarCrepe = SugarCrepeReader.files(in: folder)
        let aro = [(AROReader.relationFile, BenchmarkKind.aroRelation), (AROReader.attributionFile, .aroAttribution)]
            .map { (BenchmarkFile.join(folder, $0.0), $0.1) }.filter { BenchmarkFile.exists($0.0) }
        let wanted = spec.layout
        var benchmarks: [Benchmark] = []
        if wanted == nil || wanted == .winoground, BenchmarkFile.exists(examples) {
            benchmarks.append(try WinogroundReader.read(file: examples))
        }
        if wanted == nil || wanted == .sugarcrepe, !sugarCrepe.isEmpty {
            benchmarks.append(try SugarCrepeReader.read(files: sugarCrepe, images: images, source: folder))
        }
        for (file, kind) in aro where wanted == nil || wanted == .aro || wanted?.rawValue == kind.rawValue {
            benchmarks.append(try AROReader.read(file: file, kind: kind, images: images))
        }
        guard !benchmarks.isEmpty else {
            let looked = wanted == .choice ? "choice needs a JSONL file, not a folder"
                : "found no \(WinogroundReader.fileName) (Winoground), SugarCrepe file (\(SugarCrepeReader.subsets.map { "\($0).json" }.joined(separator: ", "))) "
                + "or ARO file (\(AROReader.relationFile), \(AROReader.attributionFile))\(wanted.map { " for \($0.rawValue)" } ?? ""), "
                + "no Karpathy split (\(KarpathyReader.fileNames.joined(separator: ", "))), no example world (\(ExampleWorldReader.trainFile) + "
                + "\(ExampleWorldReader.testFile)) and no class folders with images (zero-shot)"
            throw EvaluationError(file: folder, looked)
        }
        return benchmarks
    }

    static func openFile(_ spec: BenchmarkSpec, options: BenchmarkOptions) throws -> Benchmark {
        let file = spec.path, images = options.images
        let layout = try spec.layout ?? detect(file: file)
        switch layout {
        case .winoground: return try WinogroundReader.read(file: file)
        case .choice: return try MultipleChoiceReader.read(file: file)
        case .sugarcrepe: return try SugarCrepeReader.read(files: [file], images: images)
        case .aro: return try AROReader.read(file: file, images: images)
        case .aroRelation: return try AROReader.read(file: file, kind: .aroRelation, images: images)
        case .aroAttribution: return try AROReader.read(file: file, kind: .aroAttribution, images: images)
        case .retrieval: return try KarpathyReader.read(file: file, split: options.split, images: images)
        case .zeroshot, .probe: throw EvaluationError(file: file, "\(layout.rawValue) needs a folder, not a file")
        }
    }

    /// The layout of a file from its content: a JSON list is ARO; a first line that is a whole object is
    /// JSON Lines (Winoground-style or multiple choice by its fields); a dict of items is SugarCrepe, one
    /// with an "images" array of entries with "sentences" a Karpathy split.
    public static func detect(file: String) throws -> BenchmarkSpec.Layout {
        let bytes = try BenchmarkFile.bytes(file, what: "benchmark file")
        let unknown = EvaluationError(file: file, "cannot tell which benchmark this is: expected \(expected); \(forcing)")
        guard let first = bytes.first(where: { !($0 == 0x20 || $0 == 0x09 || $0 == 0x0A || $0 == 0x0D) }) else { throw unknown }
        if first == UInt8(ascii: "[") { return .aro }
        if let line = BenchmarkFile.lines(bytes).first, case .success(let record) = BenchmarkFile.record(line.text) {
            if record["caption_0"] != nil, record["image_0"] != nil { return .winoground }
            if record["captions"] != nil, record["answer"] != nil { return .choice }
        }
        if let value = try? JSONParser.parse(bytes) {
            if KarpathyReader.matches(value) { return .retrieval }
            if let entry = value.objectValue?.values.first?.objectValue, entry["negative_caption"] != nil { return .sugarcrepe }
        }
        throw unknown
    }
}
