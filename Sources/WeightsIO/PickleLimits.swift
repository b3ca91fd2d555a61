/// Safety limits of the pickle VM and the torch readers built on it (formats.md §5.3 defaults).
public struct PickleLimits: Sendable {
    /// Size of one pickle (`data.pkl`); SD's is a few hundred KB.
    public var maxPickleBytes = 256 << 20
    public var maxOpcodes = 50_000_000
    /// Value stack plus MARK stack.
    public var maxStackDepth = 1_000_000
    /// Container nesting, in the VM and in every walk over its result.
    public var maxNesting = 256
    public var maxMemoEntries = 4_000_000
    /// One string or bytes value; never more than the input that is left anyway.
    public var maxStringBytes = 64 << 20
    /// LONG1/LONG4 wider than this become inert big integers (never usable as a size or offset).
    public var maxIntBytes = 8
    /// Values created, and nodes visited by walks over the result.
    public var maxNodes = 50_000_000
    public var maxTensors = 1_000_000
    public var maxRank = 32
    /// Logical size of a tensor that addresses more than its storage holds (zero strides, as from
    /// `expand`): converters materialise these, so a tiny file must not promise terabytes.
    public var maxExpandedTensorBytes = 4 << 30
    /// Zip container limits (entry count, inflate cap).
    public var zip = ZipLimits()
    /// Flattening budgets, per byte of the pickle being flattened (see `FlattenBudget`).
    public var flattenVisitsPerPickleByte = 2
    public var flattenNameBytesPerPickleByte = 16
    /// Names per pickle byte are at most 1 / this: each named tensor needs a key and a rebuild call.
    public var flattenPickleBytesPerName = 4
    /// Allowance on top, so tiny files with a few nested dicts are never refused.
    public var flattenMinimumVisits = 1 << 16
    public var flattenMinimumNameBytes = 1 << 20
    /// `code/` sources a TorchScript archive may inflate, per byte of the archive (plus 1 MiB):
    /// torch stores them uncompressed, so anything more is a zip bomb.
    public var codeBytesPerArchiveByte = 4

    public init() {}
}

/// A failure raised inside the VM or an interpreter, before the VM adds file and opcode position.
struct PickleFault: Error {
    let kind: WeightsError.Kind
    let message: String
    init(_ kind: WeightsError.Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }
}

/// What flattening one pickle's object tree may cost. Without shared sub-dicts a walk visits about
/// one dict entry per pickle byte and names at most one tensor per few bytes. A sub-dict referenced
/// many times (memo GETs: "billion laughs" on names) is walked once per reference, so a 1.5 KB pickle
/// could name 2^40 tensors; these budgets bind while walking, keeping time and memory a small
/// multiple of the pickle's size.
struct FlattenBudget {
    let file: String
    let maxVisits: Int
    let maxNames: Int
    let maxNameBytes: Int
    private var visits = 0
    private var names = 0
    private var nameBytes = 0

    init(file: String, limits: PickleLimits, pickleBytes: Int) {
        self.file = file
        let size = max(pickleBytes, 0)
        func scaled(_ factor: Int, _ minimum: Int) -> Int {
            let (product, overflow) = size.multipliedReportingOverflow(by: factor)
            return overflow ? Int.max : TensorShape.saturatingSum(product, minimum)
        }
        maxVisits = min(limits.maxNodes, scaled(limits.flattenVisitsPerPickleByte, limits.flattenMinimumVisits))
        maxNames = min(limits.maxTensors, size / max(limits.flattenPickleBytesPerName, 1) + limits.flattenMinimumVisits)
        maxNameBytes = scaled(limits.flattenNameBytesPerPickleByte, limits.flattenMinimumNameBytes)
    }

    /// One dict entry or attribute looked at.
    mutating func visit(at prefix: String) throws {
        visits += 1
        guard visits <= maxVisits else {
            throw WeightsError(.limit, file: file, at: "'\(prefix.prefix(200))'",
                               "more than \(maxVisits) values visited while naming tensors (a sub-dict shared many times?)")
        }
    }

    /// Joins `prefix` and `key` with ".", charging the name's bytes before it is built.
    mutating func join(_ prefix: String, _ key: String) throws -> String {
        let length = prefix.isEmpty ? key.utf8.count : prefix.utf8.count + 1 + key.utf8.count
        nameBytes = TensorShape.saturatingSum(nameBytes, length)
        guard nameBytes <= maxNameBytes else {
            throw WeightsError(.limit, file: file, at: "'\(prefix.prefix(200))'",
                               "tensor names exceed \(maxNameBytes) bytes in total (a sub-dict shared many times?)")
        }
        return prefix.isEmpty ? key : prefix + "." + key
    }

    /// One tensor named.
    mutating func name(at prefix: String) throws {
        names += 1
        guard names <= maxNames else {
            throw WeightsError(.limit, file: file, at: "'\(prefix.prefix(200))'",
                               "more than \(maxNames) tensor names from this pickle (a tensor or sub-dict shared many times?)")
        }
    }
}
