/// A storage as a torch pickle references it: `('storage', <class>, key, location, numel[, view])`.
/// The key is an opaque identifier (never a path); bytes are attached by the container reader.
public struct TorchStorageRef: Sendable, Equatable {
    public let key: String
    /// Element type of a typed storage class; nil for `UntypedStorage`, whose numel counts bytes.
    public let dtype: DType?
    /// numel as declared, in elements of the storage class.
    public let elementCount: Int
    /// Legacy storage views (`view_metadata`): element range inside the root storage `key`.
    public let view: Range<Int>?

    public var elementSize: Int { dtype?.byteSize ?? 1 }
    /// Declared size in bytes of the whole root storage.
    public var rootByteCount: Int { elementCount * elementSize }
    /// Bytes a tensor on this storage may address.
    public var byteCount: Int { (view?.count ?? elementCount) * elementSize }
}

/// A dense tensor rebuilt symbolically by `_rebuild_tensor(_v2/_v3)`: a view of a storage.
public struct TorchTensorRef: Sendable, Equatable {
    public let storage: TorchStorageRef
    public let dtype: DType
    /// In elements of `dtype`.
    public let storageOffset: Int
    public let shape: [Int]
    public let strides: [Int]
}

/// The torch names the reader understands: storage classes and dtypes.
enum TorchTypeNames {
    /// `torch.<X>Storage` (also `torch.cuda.<X>Storage`) → element type.
    static let storageClasses: [String: DType] = [
        "DoubleStorage": .f64, "FloatStorage": .f32, "HalfStorage": .f16, "BFloat16Storage": .bf16,
        "LongStorage": .i64, "IntStorage": .i32, "ShortStorage": .i16, "CharStorage": .i8,
        "ByteStorage": .u8, "BoolStorage": .bool, "ComplexFloatStorage": .c64,
    ]

    /// `torch.<dtype>` symbols (v3 rebuilds) → element type.
    static let dtypes: [String: DType] = [
        "float64": .f64, "double": .f64, "float32": .f32, "float": .f32, "float16": .f16, "half": .f16,
        "bfloat16": .bf16, "int64": .i64, "long": .i64, "int32": .i32, "int": .i32, "int16": .i16, "short": .i16,
        "int8": .i8, "uint8": .u8, "bool": .bool, "complex64": .c64, "cfloat": .c64,
        "float8_e5m2": .f8e5m2, "float8_e4m3fn": .f8e4m3, "uint16": .u16, "uint32": .u32, "uint64": .u64,
    ]

    enum StorageClass {
        case typed(DType)
        case untyped
    }

    /// Resolves a storage-class symbol, or explains why it is not readable.
    static func storageClass(_ symbol: PickleSymbol) throws -> StorageClass {
        let isTorchModule = symbol.module == "torch" || symbol.module == "torch.cuda" || symbol.module == "torch.storage"
        guard isTorchModule, symbol.name.hasSuffix("Storage") else {
            throw PickleFault(.corrupt, "storage class '\(symbol)' is not a torch storage class")
        }
        if symbol.name == "UntypedStorage" || symbol.name == "_UntypedStorage" { return .untyped }
        if let dtype = storageClasses[symbol.name] { return .typed(dtype) }
        if symbol.name.hasPrefix("Q") {
            throw PickleFault(.unsupported, "quantized storage '\(symbol)' is not supported")
        }
        throw PickleFault(.unsupported, "storage class '\(symbol)' has no supported element type")
    }

    static func dtype(_ value: PickleValue) throws -> DType {
        guard case .symbol(let symbol) = value, symbol.module == "torch" else {
            throw PickleFault(.corrupt, "expected a torch dtype, got \(value.kindName)")
        }
        guard let dtype = dtypes[symbol.name] else {
            throw PickleFault(.unsupported, "tensor dtype 'torch.\(symbol.name)' is not supported")
        }
        return dtype
    }
}
