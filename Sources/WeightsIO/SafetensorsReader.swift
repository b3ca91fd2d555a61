import Foundation

/// One tensor entry of a safetensors header.
public struct SafetensorsEntry: Sendable, Equatable {
    public let name: String
    public let dtype: DType
    public let shape: [Int]
    /// Byte range relative to the start of the data section.
    public let dataOffsets: Range<Int>
}

/// A parsed and fully validated safetensors header.
public struct SafetensorsHeader: Sendable {
    /// Header length `N` from the first 8 bytes.
    public let headerLength: Int
    /// Absolute file offset of the data section (`8 + N`).
    public var dataStart: Int { 8 + headerLength }
    /// Entries in the order the header lists them.
    public let entries: [SafetensorsEntry]
    /// `__metadata__`, or nil when the header has none.
    public let metadata: [String: String]?
}

/// Reads safetensors files (https://github.com/huggingface/safetensors, format in
/// shared/reference/formats.md §1) into a `WeightStore` of zero-copy records.
///
/// Validation is the reference reader's (§1.3) plus ours: duplicate keys, a non-object top level,
/// empty names, JSON deeper than 64 levels and non-integer numbers are refused; every integer is
/// parsed exactly as a UInt64. Store names keep the header's order (for files written by the
/// reference writer this is also offset order).
///
/// Error kinds: `.format` for structural/JSON/type errors, `.unsupported` for a dtype the format
/// knows but we do not read (F4, F6_*, F8_E8M0, *FNUZ), `.limit` for a header over 100,000,000
/// bytes or nesting too deep, `.corrupt` for lengths and offsets that disagree with the file.
public enum SafetensorsReader {
    public static let maxHeaderLength = 100_000_000
    public static let maxJSONDepth = 64

    /// Dtype names the format defines but `DType` does not cover.
    static let knownUnsupportedDTypes: Set<String> = [
        "F4", "F6_E2M3", "F6_E3M2", "F8_E8M0", "F8_E4M3FNUZ", "F8_E5M2FNUZ",
    ]

    /// Maps the file and reads it. Tensor records view the mapping; nothing is copied.
    public static func read(path: String) throws -> WeightStore {
        let owner = try MappedFile.map(path)
        return try read(owner: owner, file: path)
    }

    /// Reads from bytes already in memory (an mmap or a heap copy); `file` names it in errors.
    public static func read(owner: ByteOwner, file: String = "<memory>") throws -> WeightStore {
        let header = try readHeader(owner.bytes, file: file)
        var store = WeightStore(format: .safetensors, sources: [file], metadata: header.metadata ?? [:])
        for entry in header.entries {
            let range = (header.dataStart + entry.dataOffsets.lowerBound)..<(header.dataStart + entry.dataOffsets.upperBound)
            let record = TensorRecord(name: entry.name, dtype: entry.dtype, shape: entry.shape,
                                      storage: ByteSlice(owner: owner, range: range))
            try store.add(record, file: file)
        }
        return store
    }

    /// Parses and validates the header against the whole file's bytes (the data section's length
    /// is part of the validation).
    public static func readHeader(_ bytes: UnsafeRawBufferPointer, file: String = "<memory>") throws -> SafetensorsHeader {
        guard bytes.count >= 8 else {
            throw WeightsError(.format, file: file, "file is \(bytes.count) bytes, shorter than the 8-byte safetensors length prefix")
        }
        let declared = bytes.loadUnaligned(fromByteOffset: 0, as: UInt64.self).littleEndian
        guard declared <= UInt64(maxHeaderLength) else {
            throw WeightsError(.limit, file: file, at: "byte 0", "header length \(declared) exceeds the limit of \(maxHeaderLength) bytes")
        }
        let headerLength = Int(declared)
        guard 8 + headerLength <= bytes.count else {
            throw WeightsError(.corrupt, file: file, at: "byte 0",
                               "header length \(headerLength) reaches past the end of the \(bytes.count)-byte file")
        }
        let headerBytes = UnsafeRawBufferPointer(rebasing: bytes[8..<(8 + headerLength)])
        let json: JSONValue
        do {
            json = try JSONParser.parse(headerBytes, maxDepth: maxJSONDepth)
        } catch {
            let kind: WeightsError.Kind = error.kind == .tooDeep ? .limit : .format
            throw WeightsError(kind, file: file, at: "header byte \(8 + error.offset)", "invalid header JSON: \(error.message)")
        }
        guard case .object(let top) = json else {
            throw WeightsError(.format, file: file, at: "header", "the header must be a JSON object, found \(json.kindName)")
        }

        var metadata: [String: String]?
        var entries: [SafetensorsEntry] = []
        entries.reserveCapacity(top.count)
        for (key, value) in top.members {
            if key == "__metadata__" {
                metadata = try parseMetadata(value, file: file)
            } else {
                entries.append(try parseEntry(name: key, value, file: file))
            }
        }
        try validateLayout(entries, dataLength: bytes.count - 8 - headerLength, file: file)
        return SafetensorsHeader(headerLength: headerLength, entries: entries, metadata: metadata)
    }

    private static func parseMetadata(_ value: JSONValue, file: String) throws -> [String: String] {
        guard case .object(let object) = value else {
            throw WeightsError(.format, file: file, at: "__metadata__", "must be an object of strings, found \(value.kindName)")
        }
        var metadata: [String: String] = [:]
        for (key, member) in object.members {
            guard case .string(let text) = member else {
                throw WeightsError(.format, file: file, at: "__metadata__.\(key)", "metadata values must be strings, found \(member.kindName)")
            }
            metadata[key] = text
        }
        return metadata
    }

    private static func parseEntry(name: String, _ value: JSONValue, file: String) throws -> SafetensorsEntry {
        let location = "tensor '\(name)'"
        guard !name.isEmpty else { throw WeightsError(.format, file: file, at: "tensor ''", "tensor names must not be empty") }
        guard case .object(let fields) = value else {
            throw WeightsError(.format, file: file, at: location, "entry must be an object, found \(value.kindName)")
        }
        // dtype
        guard let dtypeValue = fields["dtype"] else { throw WeightsError(.format, file: file, at: location, "missing \"dtype\"") }
        guard case .string(let dtypeName) = dtypeValue else {
            throw WeightsError(.format, file: file, at: location, "\"dtype\" must be a string, found \(dtypeValue.kindName)")
        }
        guard let dtype = DType(rawValue: dtypeName) else {
            if knownUnsupportedDTypes.contains(dtypeName) {
                throw WeightsError(.unsupported, file: file, at: location, "dtype \(dtypeName) is not supported")
            }
            throw WeightsError(.format, file: file, at: location, "unknown dtype \"\(dtypeName)\"")
        }
        // shape
        guard let shapeValue = fields["shape"] else { throw WeightsError(.format, file: file, at: location, "missing \"shape\"") }
        guard case .array(let dims) = shapeValue else {
            throw WeightsError(.format, file: file, at: location, "\"shape\" must be an array, found \(shapeValue.kindName)")
        }
        var shape: [Int] = []
        shape.reserveCapacity(dims.count)
        for dim in dims {
            shape.append(try exactInt(dim, what: "shape entry", location: location, file: file))
        }
        // data_offsets
        guard let offsetsValue = fields["data_offsets"] else {
            throw WeightsError(.format, file: file, at: location, "missing \"data_offsets\"")
        }
        guard case .array(let offsets) = offsetsValue, offsets.count == 2 else {
            throw WeightsError(.format, file: file, at: location, "\"data_offsets\" must be an array of two integers")
        }
        let begin = try exactInt(offsets[0], what: "data offset", location: location, file: file)
        let end = try exactInt(offsets[1], what: "data offset", location: location, file: file)
        guard end >= begin else {
            throw WeightsError(.corrupt, file: file, at: location, "data_offsets [\(begin), \(end)] end before they begin")
        }
        return SafetensorsEntry(name: name, dtype: dtype, shape: shape, dataOffsets: begin..<end)
    }

    /// A non-negative JSON integer that fits an Int (sizes and offsets of real files do).
    private static func exactInt(_ value: JSONValue, what: String, location: String, file: String) throws -> Int {
        guard case .number(let number) = value else {
            throw WeightsError(.format, file: file, at: location, "\(what) must be a non-negative integer, found \(value.kindName)")
        }
        guard let exact = number.uint64Value else {
            throw WeightsError(.format, file: file, at: location, "\(what) must be a non-negative integer, found \(number.literal)")
        }
        guard exact <= UInt64(Int.max) else {
            throw WeightsError(.limit, file: file, at: location, "\(what) \(exact) does not fit a 64-bit signed size")
        }
        return Int(exact)
    }

    /// Offsets must tile the data section exactly (no gaps, overlaps or trailing bytes) and each
    /// entry's byte size must equal prod(shape) × element size, computed with overflow checks.
    private static func validateLayout(_ entries: [SafetensorsEntry], dataLength: Int, file: String) throws {
        for entry in entries {
            let location = "tensor '\(entry.name)'"
            // A zero dimension means no bytes, however large the others (the reference accepts these).
            guard let bytes = TensorShape.byteCount(entry.shape, dtype: entry.dtype) else {
                throw WeightsError(.corrupt, file: file, at: location, "byte size of shape \(entry.shape) overflows")
            }
            guard entry.dataOffsets.count == bytes else {
                throw WeightsError(.corrupt, file: file, at: location,
                                   "\(entry.dtype.rawValue) \(entry.shape) needs \(bytes) bytes but data_offsets [\(entry.dataOffsets.lowerBound), \(entry.dataOffsets.upperBound)] span \(entry.dataOffsets.count)")
            }
        }
        // Sort by (begin, end) so zero-sized entries sharing an offset are still ordered.
        let sorted = entries.sorted {
            ($0.dataOffsets.lowerBound, $0.dataOffsets.upperBound) < ($1.dataOffsets.lowerBound, $1.dataOffsets.upperBound)
        }
        var runningEnd = 0
        for entry in sorted {
            guard entry.dataOffsets.lowerBound == runningEnd else {
                let what = entry.dataOffsets.lowerBound > runningEnd ? "a gap" : "an overlap"
                throw WeightsError(.corrupt, file: file, at: "tensor '\(entry.name)'",
                                   "data_offsets begin at \(entry.dataOffsets.lowerBound) but the previous tensor ends at \(runningEnd) (\(what))")
            }
            runningEnd = entry.dataOffsets.upperBound
        }
        guard runningEnd == dataLength else {
            if runningEnd > dataLength {
                throw WeightsError(.corrupt, file: file, at: "data section",
                                   "tensors need \(runningEnd) bytes but the data section holds \(dataLength) (file truncated?)")
            }
            throw WeightsError(.corrupt, file: file, at: "data section",
                               "\(dataLength - runningEnd) trailing bytes after the last tensor (data section is \(dataLength) bytes, tensors end at \(runningEnd))")
        }
    }
}
