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
