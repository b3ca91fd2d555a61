import Foundation

// The shared vocabulary of WeightsIO: element types, byte owners, tensor records, stores and errors.
// Format readers (safetensors, torch zip, TorchScript, legacy) all produce `WeightStore`s made of
// `TensorRecord`s that point into a memory-mapped file, so opening a file never copies tensor data.

/// Element type of a stored tensor. Raw values are the safetensors dtype strings.
public enum DType: String, Sendable, CaseIterable, Codable {
    case bool = "BOOL"
    case u8 = "U8", i8 = "I8"
    case f8e5m2 = "F8_E5M2", f8e4m3 = "F8_E4M3"
    case i16 = "I16", u16 = "U16"
    case f16 = "F16", bf16 = "BF16"
    case i32 = "I32", u32 = "U32"
    case f32 = "F32"
    case c64 = "C64"
    case f64 = "F64"
    case i64 = "I64", u64 = "U64"

    /// Bytes per element.
    public var byteSize: Int {
        switch self {
        case .bool, .u8, .i8, .f8e5m2, .f8e4m3: return 1
        case .i16, .u16, .f16, .bf16: return 2
        case .i32, .u32, .f32: return 4
        case .c64, .f64, .i64, .u64: return 8
        }
    }

    /// Position in the safetensors `Dtype` enum; the reference writer orders tensors by this, descending.
    public var safetensorsRank: Int {
        switch self {
        case .bool: return 0
        case .u8: return 4
        case .i8: return 5
        case .f8e5m2: return 6
        case .f8e4m3: return 7
        case .i16: return 11
        case .u16: return 12
        case .f16: return 13
        case .bf16: return 14
        case .i32: return 15
        case .u32: return 16
        case .f32: return 17
        case .c64: return 18
        case .f64: return 19
        case .i64: return 20
        case .u64: return 21
        }
    }

    public var isFloatingPoint: Bool {
        switch self {
        case .f8e5m2, .f8e4m3, .f16, .bf16, .f32, .f64: return true
        default: return false
        }
    }

    /// The torch spelling (`torch.float16`), for messages and interop scripts.
    public var torchName: String {
        switch self {
        case .bool: return "bool"
        case .u8: return "uint8"
        case .i8: return "int8"
        case .f8e5m2: return "float8_e5m2"
        case .f8e4m3: return "float8_e4m3fn"
        case .i16: return "int16"
        case .u16: return "uint16"
        case .f16: return "float16"
        case .bf16: return "bfloat16"
        case .i32: return "int32"
        case .u32: return "uint32"
        case .f32: return "float32"
        case .c64: return "complex64"
        case .f64: return "float64"
        case .i64: return "int64"
        case .u64: return "uint64"
        }
    }
}

/// A read-only region of bytes that stays valid for the owner's lifetime (an mmap, or heap memory).
public final class ByteOwner: @unchecked Sendable {
    public let bytes: UnsafeRawBufferPointer
    /// True for a read-only mapping of a file: its resident pages can be dropped after use (they
    /// refill from the file on the next access), which keeps streaming conversions' memory flat.
    public let isFileMapping: Bool
    /// The mapped file's path, for errors about the file itself (it shrank while being read).
    public let file: String?
    private let release: (@Sendable (UnsafeRawBufferPointer) -> Void)?

    public init(bytes: UnsafeRawBufferPointer, isFileMapping: Bool = false, file: String? = nil,
                release: (@Sendable (UnsafeRawBufferPointer) -> Void)?) {
        self.bytes = bytes
        self.isFileMapping = isFileMapping
        self.file = file
        self.release = release
    }

    /// Copies `data` into memory owned by the returned object.
    public convenience init(copying data: some Collection<UInt8>) {
        let count = data.count
        let raw = UnsafeMutableRawBufferPointer.allocate(byteCount: max(count, 1), alignment: 64)
        _ = raw.initializeMemory(as: UInt8.self, from: data)
        self.init(bytes: UnsafeRawBufferPointer(start: raw.baseAddress, count: count)) { buffer in
            UnsafeMutableRawBufferPointer(mutating: buffer).deallocate()
        }
    }

    deinit { release?(bytes) }
}

/// A byte range inside a `ByteOwner`; what a tensor's storage is.
public struct ByteSlice: Sendable {
    public let owner: ByteOwner
    public let range: Range<Int>

    public init(owner: ByteOwner, range: Range<Int>) {
        precondition(range.lowerBound >= 0 && range.upperBound <= owner.bytes.count, "slice outside its owner")
        self.owner = owner
        self.range = range
    }

    public var count: Int { range.count }

    /// The bytes, valid while `self` (and so the owner) is alive.
    public var buffer: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: owner.bytes[range])
    }
}

/// One named tensor as stored: dtype, shape, element strides and the storage bytes it views.
public struct TensorRecord: Sendable {
    public let name: String
    public let dtype: DType
    public let shape: [Int]
    /// Element strides. Safetensors tensors are always row-major packed.
    public let strides: [Int]
    /// Offset of element [0,…,0] in the storage, in elements.
    public let storageOffset: Int
    public let storage: ByteSlice

    public init(name: String, dtype: DType, shape: [Int], strides: [Int]? = nil, storageOffset: Int = 0, storage: ByteSlice) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.strides = strides ?? TensorRecord.rowMajorStrides(shape)
        self.storageOffset = storageOffset
        self.storage = storage
    }

    /// Readers only build records whose element and byte counts fit an Int (or that have no
    /// elements); anything else saturates instead of trapping.
    public var elementCount: Int { TensorShape.elementCount(shape) ?? Int.max }
    public var byteCount: Int { TensorShape.byteCount(shape, dtype: dtype) ?? Int.max }

    /// Row-major element strides. A zero-element tensor may have other dimensions whose product
    /// overflows (`[0, 2^32, 2^32]`); no element is ever addressed through those strides, so they
    /// saturate at Int.max rather than trap.
    public static func rowMajorStrides(_ shape: [Int]) -> [Int] {
        var strides = [Int](repeating: 1, count: shape.count)
        var running = 1
        for axis in stride(from: shape.count - 1, through: 0, by: -1) {
            strides[axis] = running
            let (product, overflow) = running.multipliedReportingOverflow(by: max(shape[axis], 1))
            running = overflow ? Int.max : product
        }
        return strides
    }

    /// True when the elements are packed row-major (strides of size-1 axes do not matter).
    public var isContiguous: Bool {
        if elementCount == 0 { return true }
        var expected = 1
        for axis in stride(from: shape.count - 1, through: 0, by: -1) where shape[axis] != 1 {
            if strides[axis] != expected { return false }
            expected *= shape[axis]
        }
        return true
    }
}

/// Overflow-checked counts of a shape. A shape with a zero dimension has no elements, whatever its
/// other dimensions (torch and safetensors load `[0, 2^32, 2^32]`), so zero is checked first.
public enum TensorShape {
    /// The number of elements, or nil when it does not fit an Int (or a dimension is negative).
    public static func elementCount(_ shape: [Int]) -> Int? {
        if shape.contains(0) { return 0 }
        var count = 1
        for extent in shape {
            guard extent > 0 else { return nil }
            let (product, overflow) = count.multipliedReportingOverflow(by: extent)
            guard !overflow else { return nil }
            count = product
        }
        return count
    }

    /// The packed byte size, or nil when it does not fit an Int.
    public static func byteCount(_ shape: [Int], dtype: DType) -> Int? {
        guard let count = elementCount(shape) else { return nil }
        let (bytes, overflow) = count.multipliedReportingOverflow(by: dtype.byteSize)
        return overflow ? nil : bytes
    }

    /// Totals over many tensors (reports) never trap; they saturate.
    public static func saturatingSum(_ a: Int, _ b: Int) -> Int {
        let (sum, overflow) = a.addingReportingOverflow(b)
        return overflow ? Int.max : sum
    }
}

/// How a store was read.
public enum WeightFormat: String, Sendable, Codable {
    case safetensors
    case shardedSafetensors = "sharded-safetensors"
    case torchZip = "torch-zip"
    case torchScript = "torchscript"
    case torchLegacy = "torch-legacy"
    case folder
}

/// A name → tensor map read from one or more files. Names keep the order the files give them.
public struct WeightStore: Sendable {
    public let format: WeightFormat
    /// The files the tensors came from.
    public let sources: [String]
    public private(set) var names: [String]
    public private(set) var records: [String: TensorRecord]
    /// safetensors `__metadata__`, or facts a reader found worth reporting (e.g. the archive prefix).
    public var metadata: [String: String]
    /// The verdict on the pickles read (nil when there were none, as for safetensors).
    public var pickleGlobals: PickleGlobalsReport?
    /// Pickle globals neither allowlisted nor dangerous, sorted; empty when none (or no pickle).
    public var unknownGlobals: [String] { pickleGlobals?.unknown ?? [] }

    public init(format: WeightFormat, sources: [String], metadata: [String: String] = [:]) {
        self.format = format
        self.sources = sources
        self.names = []
        self.records = [:]
        self.metadata = metadata
    }

    public init(format: WeightFormat, sources: [String], records: [TensorRecord], metadata: [String: String] = [:]) throws {
        self.init(format: format, sources: sources, metadata: metadata)
        for record in records { try add(record, file: sources.first ?? "") }
    }

    /// Adds a tensor; a second tensor of the same name is an error, never a silent overwrite.
    public mutating func add(_ record: TensorRecord, file: String) throws {
        guard records[record.name] == nil else {
            throw WeightsError(.corrupt, file: file, at: "tensor '\(record.name)'", "the name occurs twice")
        }
        names.append(record.name)
        records[record.name] = record
    }

    public subscript(name: String) -> TensorRecord? { records[name] }
    public var count: Int { names.count }
    public var orderedRecords: [TensorRecord] { names.compactMap { records[$0] } }
    public var totalBytes: Int { records.values.reduce(0) { TensorShape.saturatingSum($0, $1.byteCount) } }
    public var totalElements: Int { records.values.reduce(0) { TensorShape.saturatingSum($0, $1.elementCount) } }
}

/// Every failure WeightsIO reports: which file, where in it, and what was expected.
public struct WeightsError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Kind: String, Sendable {
        /// The file could not be opened, mapped or written.
        case io
        /// Not a format we know, or a structure that breaks the format's rules.
        case format
        /// Valid for its format, but a feature we do not read (quantized tensors, encryption, …).
        case unsupported
        /// A construct that would run code if loaded by Python (a dangerous pickle global).
        case unsafe
        /// A configured safety limit (sizes, depth, counts) was exceeded.
        case limit
        /// Internally inconsistent data: sizes, offsets or references that do not agree.
        case corrupt
    }

    public let kind: Kind
    public let file: String
    /// Tensor name, record, byte offset or opcode position, when known.
    public let location: String?
    public let message: String

    public init(_ kind: Kind, file: String, at location: String? = nil, _ message: String) {
        self.kind = kind
        self.file = file
        self.location = location
        self.message = message
    }

    public var description: String {
        if let location { return "\(file): \(location): \(message)" }
        return "\(file): \(message)"
    }
}
