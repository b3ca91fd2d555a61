import Foundation
import WeightsIO

/// Shared pieces of the harnesses: splitting one fuzz input into several files, building the stored
/// zip a torch checkpoint is, and reading every tensor of a store the way `convert` does.
public enum FuzzInput {
    /// Separates the files packed into one input ("\0--\0" is rare in real files; libFuzzer learns it
    /// from the comparison).
    public static let separator: [UInt8] = [0, 0x2D, 0x2D, 0]

    /// The input cut at each separator, padded with empty parts to `count`.
    public static func parts(_ data: UnsafeRawBufferPointer, count: Int) -> [[UInt8]] {
        let bytes = [UInt8](data)
        var parts: [[UInt8]] = []
        var start = 0
        var index = 0
        while index + separator.count <= bytes.count, parts.count < count - 1 {
            if bytes[index] == 0, bytes[index + 1] == 0x2D, bytes[index + 2] == 0x2D, bytes[index + 3] == 0 {
                parts.append(Array(bytes[start..<index]))
                index += separator.count
                start = index
            } else {
                index += 1
            }
        }
        parts.append(Array(bytes[start...]))
        while parts.count < count { parts.append([]) }
        return parts
    }

    /// Writes `bytes` to a per-process scratch file (for readers that take a path) and returns its path.
    public static func scratchFile(_ bytes: [UInt8], name: String) -> String {
        let folder = scratchFolder()
        let path = folder + "/" + name
        _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
        return path
    }

    public static func scratchFolder() -> String {
        let base = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
        let folder = base + "/sdsclip-fuzz-\(getpid())"
        try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        return folder
    }
}

/// A zip with stored members and no CRCs (torch's `compute_crc32=False`), laid out as torch writes one.
public enum StoredZip {
    public static func build(_ members: [(name: String, bytes: [UInt8])]) -> [UInt8] {
        var out: [UInt8] = []
        var central: [UInt8] = []
        for member in members {
            let name = Array(member.name.utf8)
            let offset = out.count
            out += le32(0x0403_4B50) + le16(20) + le16(0) + le16(0) + le16(0) + le16(0) + le32(0)
            out += le32(member.bytes.count) + le32(member.bytes.count) + le16(name.count) + le16(0) + name
            out += member.bytes
            central += le32(0x0201_4B50) + le16(20) + le16(20) + le16(0) + le16(0) + le16(0) + le16(0) + le32(0)
            central += le32(member.bytes.count) + le32(member.bytes.count) + le16(name.count) + le16(0) + le16(0)
            central += le16(0) + le16(0) + le32(0) + le32(offset) + name
        }
        let centralOffset = out.count
        out += central
        out += le32(0x0605_4B50) + le16(0) + le16(0) + le16(members.count) + le16(members.count)
        out += le32(central.count) + le32(centralOffset) + le16(0)
        return out
    }

    private static func le16(_ value: Int) -> [UInt8] { [UInt8(truncatingIfNeeded: value), UInt8(truncatingIfNeeded: value >> 8)] }
    private static func le32(_ value: Int) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: value >> ($0 * 8)) } }
}

public enum StoreReader {
    /// Tensors larger than this are only validated: a tiny file may legitimately promise gigabytes of
    /// zero-stride data, which would only test the allocator.
    public static let maxMaterialisedBytes = 16 << 20

    /// Reads every tensor's bytes, as `convert` does, so bad offsets and strides surface.
    public static func readAll(_ store: WeightStore) {
        for record in store.orderedRecords {
            do {
                try StridedGather.validate(record)
                guard record.byteCount <= maxMaterialisedBytes else { continue }
                let packed = try StridedGather.packedBytes(of: record)
                if DTypeConversion.convertsToFloat32(record.dtype), record.dtype.byteSize > 0 {
                    _ = try DTypeConversion.floats(of: record)
                }
                _ = packed.count
            } catch {
                continue
            }
        }
    }
}
