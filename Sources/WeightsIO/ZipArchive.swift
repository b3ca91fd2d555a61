import Foundation
import CZlib

// A strict, read-only zip reader over a memory-mapped file. It exists for PyTorch checkpoints:
// members are located through the central directory (zip64 aware), data offsets come from the
// LOCAL header (torch pads it with an alignment extra the central header lacks), sizes come from
// the central directory only, and STORED members are handed out as zero-copy slices.

/// One member of a zip archive, as its central-directory record and local header describe it.
public struct ZipEntry: Sendable, Equatable {
    public let name: String
    /// 0 = STORED, 8 = DEFLATE.
    public let method: UInt16
    public let flags: UInt16
    /// 0 means "not computed" (torch's `compute_crc32=False`).
    public let crc32: UInt32
    public let compressedSize: Int
    public let uncompressedSize: Int
    public let localHeaderOffset: Int
    /// First data byte, computed from the local header's own name and extra lengths.
    public let dataOffset: Int

    public var dataRange: Range<Int> { dataOffset ..< dataOffset + compressedSize }
    public var isStored: Bool { method == ZipArchive.methodStored }
}

/// Safety limits of the zip layer.
public struct ZipLimits: Sendable {
    /// Checked before the entry table is allocated.
    public var maxEntries = 100_000
    /// Upper bound for inflating a DEFLATE `code/` source (TorchScript).
    public var maxInflatedBytes = 16 << 20
    /// Tensor data and pickles of a re-packed torch file may be DEFLATE members: at most this many
    /// bytes are inflated per archive, into memory (they cannot be mapped).
    public var maxInflatedDataBytes = 4 << 30
    /// A DEFLATE member larger than `maxInflatedBytes` may expand at most this much (weights barely
    /// compress; a zip bomb of zeros expands about 1000×).
    public var maxDeflateRatio = 64

    public init() {}
}

public struct ZipArchive: Sendable {
    static let methodStored: UInt16 = 0
    static let methodDeflate: UInt16 = 8
    /// EOCD (22 bytes) plus the longest possible comment (65,535 bytes).
    static let eocdSearchWindow = 65_557

    public let file: String
    public let owner: ByteOwner
    /// Entries in central-directory order.
    public let entries: [ZipEntry]
    private let indexByName: [String: Int]

    public init(owner: ByteOwner, file: String, limits: ZipLimits = .init()) throws {
        self.file = file
        self.owner = owner
        let parsed = try ZipDirectoryParser(owner: owner, file: file, limits: limits).parse()
        self.entries = parsed.entries
        self.indexByName = parsed.index
    }

    public func entry(named name: String) -> ZipEntry? {
        indexByName[name].map { entries[$0] }
    }

    /// The member's bytes without copying; compressed members are refused (see `memberBytes`, which
    /// inflates them under a budget).
    public func storedBytes(_ entry: ZipEntry, verifyCRC: Bool = false) throws -> ByteSlice {
        guard entry.isStored else {
            throw WeightsError(.unsupported, file: file, at: "zip member '\(entry.name)'",
                               "compression method \(entry.method) where only STORED (0) is allowed")
        }
        let slice = ByteSlice(owner: owner, range: entry.dataRange)
        if verifyCRC { try checkCRC(entry, slice.buffer) }
        return slice
    }

    /// The member's bytes: a zero-copy slice when STORED, inflated into owned memory when DEFLATE
    /// (charged to `budget`; CRC always checked), refused otherwise.
    public func memberBytes(_ entry: ZipEntry, budget: ZipInflateBudget, verifyCRC: Bool = false) throws -> ByteSlice {
        switch entry.method {
        case Self.methodStored:
            return try storedBytes(entry, verifyCRC: verifyCRC)
        case Self.methodDeflate:
            try budget.charge(entry, file: file)
            let raw = UnsafeRawBufferPointer(rebasing: owner.bytes[entry.dataRange])
            let inflated = try InflateRaw.inflateOwned(raw, expectedSize: entry.uncompressedSize, file: file, member: entry.name)
            try checkCRC(entry, inflated.bytes)
            return ByteSlice(owner: inflated, range: 0 ..< entry.uncompressedSize)
        default:
            throw WeightsError(.unsupported, file: file, at: "zip member '\(entry.name)'",
                               "compression method \(entry.method); only STORED (0) and DEFLATE (8) are read")
        }
    }

    /// The member's bytes, inflating DEFLATE members up to `maxBytes` (never more than declared).
    public func contents(_ entry: ZipEntry, maxBytes: Int) throws -> [UInt8] {
        guard entry.uncompressedSize <= maxBytes else {
            throw WeightsError(.limit, file: file, at: "zip member '\(entry.name)'",
                               "declared size \(entry.uncompressedSize) bytes exceeds the \(maxBytes)-byte cap")
        }
        let raw = UnsafeRawBufferPointer(rebasing: owner.bytes[entry.dataRange])
        let bytes: [UInt8]
        switch entry.method {
        case Self.methodStored:
            bytes = Array(raw)
        case Self.methodDeflate:
            bytes = try InflateRaw.inflate(raw, expectedSize: entry.uncompressedSize, file: file, member: entry.name)
        default:
            throw WeightsError(.unsupported, file: file, at: "zip member '\(entry.name)'",
                               "compression method \(entry.method); only STORED and DEFLATE are read")
        }
        try bytes.withUnsafeBytes { try checkCRC(entry, $0) }
        return bytes
    }

    private func checkCRC(_ entry: ZipEntry, _ data: UnsafeRawBufferPointer) throws {
        guard entry.crc32 != 0 else { return }  // zero: the writer did not compute it
        let actual = data.isEmpty ? 0 : UInt32(CZlib.crc32(0, data.bindMemory(to: Bytef.self).baseAddress, uInt(data.count)))
        guard actual == entry.crc32 else {
            throw WeightsError(.corrupt, file: file, at: "zip member '\(entry.name)'",
                               "CRC-32 is \(hex(actual)) but the central directory says \(hex(entry.crc32))")
        }
    }
}

/// What the DEFLATE members of one archive may still inflate to (`ZipLimits.maxInflatedDataBytes`),
/// and the expansion-ratio rule for large members; charged before anything is allocated.
public final class ZipInflateBudget {
    private var remaining: Int
    private let limits: ZipLimits

    public init(limits: ZipLimits) {
        self.limits = limits
        self.remaining = limits.maxInflatedDataBytes
    }

    func charge(_ entry: ZipEntry, file: String) throws {
        let size = entry.uncompressedSize
        if size > limits.maxInflatedBytes {
            let (bound, overflow) = max(entry.compressedSize, 1).multipliedReportingOverflow(by: limits.maxDeflateRatio)
            guard overflow || size <= bound else {
                throw WeightsError(.limit, file: file, at: "zip member '\(entry.name)'",
                                   "DEFLATE member of \(entry.compressedSize) bytes declares \(size) bytes, more than \(limits.maxDeflateRatio)× (a zip bomb, not weights)")
            }
        }
        guard size <= remaining else {
            throw WeightsError(.limit, file: file, at: "zip member '\(entry.name)'",
                               "inflating \(size) more bytes exceeds the \(limits.maxInflatedDataBytes)-byte budget for DEFLATE members")
        }
        remaining -= size
    }
}

private func hex(_ value: UInt32) -> String { "0x" + String(value, radix: 16) }

/// Reads the end records and the central directory, checking every structural rule.
private struct ZipDirectoryParser {
    let owner: ByteOwner
    let file: String
    let limits: ZipLimits
    var bytes: UnsafeRawBufferPointer { owner.bytes }
    /// File span whose local headers are unmapped together once read.
    static let releaseSpan = 16 << 20

    private func fail(_ kind: WeightsError.Kind = .format, at offset: Int, _ message: String) -> WeightsError {
        WeightsError(kind, file: file, at: "zip byte \(offset)", message)
    }

    private func u16(_ at: Int) -> Int { Int(UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt16.self))) }
    private func u32(_ at: Int) -> Int { Int(UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt32.self))) }
    private func u64(_ at: Int) throws -> Int {
        let value = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt64.self))
        guard value <= UInt64(Int.max) else { throw fail(.corrupt, at: at, "64-bit field \(value) is out of range") }
        return Int(value)
    }

    private struct EndRecord {
        var entryCount: Int
        var directoryOffset: Int
        var directorySize: Int
        /// Where the central directory must end (start of the zip64 end record, or of the EOCD).
        var directoryLimit: Int
    }

    func parse() throws -> (entries: [ZipEntry], index: [String: Int]) {
        guard bytes.count >= 4, u32(0) == 0x0403_4b50 else {
            throw fail(at: 0, "not a zip archive: no local-header signature PK\\x03\\x04 at offset 0")
        }
        let end = try readEndRecord()
        guard end.entryCount <= limits.maxEntries else {
            throw fail(.limit, at: end.directoryOffset, "\(end.entryCount) entries exceed the limit of \(limits.maxEntries)")
        }
        var entries: [ZipEntry] = []
        entries.reserveCapacity(end.entryCount)
        var index: [String: Int] = [:]
        index.reserveCapacity(end.entryCount)
        var cursor = end.directoryOffset
        let directoryEnd = end.directoryOffset + end.directorySize
        var records: [CentralRecord] = []
        records.reserveCapacity(end.entryCount)
        for _ in 0 ..< end.entryCount {
            records.append(try readCentralRecord(at: &cursor, directoryEnd: directoryEnd))
        }
        guard cursor == directoryEnd else {
            throw fail(.corrupt, at: cursor, "central directory has \(directoryEnd - cursor) bytes beyond its \(end.entryCount) entries")
        }
        // Ask for every local header's page before reading any: from a cold page cache the disk then
        // serves them together instead of one synchronous read after another (a torch checkpoint has
        // one header in front of each tensor, scattered through the file).
        for record in records where record.localOffset < end.directoryOffset {
            MappedFile.adviseWillNeed(of: owner, range: record.localOffset..<min(record.localOffset + 30 + record.nameLength, end.directoryOffset))
        }
        var touched: Range<Int>?
        for record in records {
            let entry = try resolveLocalHeader(of: record, dataLimit: end.directoryOffset)
            guard index[entry.name] == nil else {
                throw WeightsError(.corrupt, file: file, at: "zip member '\(entry.name)'", "the name occurs twice in the central directory")
            }
            index[entry.name] = entries.count
            entries.append(entry)
            // Reading a local header maps the page-cache folio around it (up to 2 MiB). Unmapping the
            // headers read every 16 MiB of file keeps a checkpoint's thousands of them from adding up
            // to a large resident set, in few calls (each unmap interrupts every CPU running a thread
            // of ours).
            touched = touched.map { min($0.lowerBound, entry.localHeaderOffset)..<max($0.upperBound, entry.dataOffset) }
                ?? entry.localHeaderOffset..<entry.dataOffset
            if let range = touched, range.count >= Self.releaseSpan {
                MappedFile.releaseResidentPages(of: owner, range: range)
                touched = nil
            }
        }
        if let range = touched { MappedFile.releaseResidentPages(of: owner, range: range) }
        try checkNoOverlap(entries)
        return (entries, index)
    }

    private func readEndRecord() throws -> EndRecord {
        let lowest = max(0, bytes.count - ZipArchive.eocdSearchWindow)
        var position = bytes.count - 22
        var found: Int?
        while position >= lowest {
            if u32(position) == 0x0605_4b50, position + 22 + u16(position + 20) == bytes.count {
                found = position
                break
            }
            position -= 1
        }
        guard let eocd = found else {
            throw fail(at: bytes.count, "no end-of-central-directory record in the last \(ZipArchive.eocdSearchWindow) bytes")
        }
        var record = EndRecord(entryCount: u16(eocd + 10), directoryOffset: u32(eocd + 16),
                               directorySize: u32(eocd + 12), directoryLimit: eocd)
        let saturated = u16(eocd + 4) == 0xFFFF || u16(eocd + 6) == 0xFFFF || u16(eocd + 8) == 0xFFFF
            || record.entryCount == 0xFFFF || record.directorySize == 0xFFFF_FFFF || record.directoryOffset == 0xFFFF_FFFF
        let locator = eocd - 20
        if locator >= 0, u32(locator) == 0x0706_4b50 {
            let z64 = try u64(locator + 8)
            guard u32(locator + 4) == 0, u32(locator + 16) <= 1 else {
                throw fail(.unsupported, at: locator, "multi-disk zip64 archives are not supported")
            }
            guard z64 <= locator - 56, u32(z64) == 0x0606_4b50 else {
                throw fail(.corrupt, at: locator, "zip64 locator points to \(z64), where there is no zip64 end record")
            }
            guard u32(z64 + 16) == 0, u32(z64 + 20) == 0 else {
                throw fail(.unsupported, at: z64, "multi-disk zip64 archives are not supported")
            }
            let onDisk = try u64(z64 + 24)
            record.entryCount = try u64(z64 + 32)
            guard onDisk == record.entryCount else {
                throw fail(.unsupported, at: z64, "entry count on this disk (\(onDisk)) differs from the total (\(record.entryCount))")
            }
            record.directorySize = try u64(z64 + 40)
            record.directoryOffset = try u64(z64 + 48)
            record.directoryLimit = z64
        } else if saturated {
            throw fail(.corrupt, at: eocd, "end record has saturated fields but no zip64 locator")
        } else {
            guard u16(eocd + 4) == 0, u16(eocd + 6) == 0, u16(eocd + 8) == record.entryCount else {
                throw fail(.unsupported, at: eocd, "multi-disk zip archives are not supported")
            }
        }
        let (directoryEnd, overflow) = record.directoryOffset.addingReportingOverflow(record.directorySize)
        guard !overflow, directoryEnd <= record.directoryLimit else {
            throw fail(.corrupt, at: eocd, "central directory [\(record.directoryOffset), +\(record.directorySize)) runs past its end record at \(record.directoryLimit)")
        }
        return record
    }

    /// A central-directory record, checked; its local header is read later (`resolveLocalHeader`).
    private struct CentralRecord {
        let name: String
        let nameStart: Int
        let nameLength: Int
        let method: UInt16
        let flags: UInt16
        let crc: UInt32
        let compressed: Int
        let uncompressed: Int
        let localOffset: Int
    }

    private func readCentralRecord(at cursor: inout Int, directoryEnd: Int) throws -> CentralRecord {
        let start = cursor
        guard directoryEnd - start >= 46, u32(start) == 0x0201_4b50 else {
            throw fail(.corrupt, at: start, "expected a central-directory header (PK\\x01\\x02)")
        }
        let flags = UInt16(u16(start + 8))
        let method = UInt16(u16(start + 10))
        let crc = UInt32(u32(start + 16))
        var compressed = u32(start + 20)
        var uncompressed = u32(start + 24)
        let nameLength = u16(start + 28), extraLength = u16(start + 30), commentLength = u16(start + 32)
        var diskStart = u16(start + 34)
        var localOffset = u32(start + 42)
        let total = 46 + nameLength + extraLength + commentLength
        guard directoryEnd - start >= total else {
            throw fail(.corrupt, at: start, "central-directory header's name/extra/comment run past the directory")
        }
        let nameBytes = UnsafeRawBufferPointer(rebasing: bytes[(start + 46) ..< (start + 46 + nameLength)])
        let name = try validatedName(nameBytes, at: start)

        // zip64 extra: each value is present only when its 32-bit field is saturated, in this order.
        var extra = start + 46 + nameLength
        let extraEnd = extra + extraLength
        while extra < extraEnd {
            guard extraEnd - extra >= 4 else { throw fail(.corrupt, at: extra, "truncated extra field in '\(name)'") }
            let id = u16(extra), size = u16(extra + 2)
            guard extraEnd - extra - 4 >= size else { throw fail(.corrupt, at: extra, "extra field of '\(name)' runs past its header") }
            if id == 0x0001 {
                var field = extra + 4
                let fieldEnd = field + size
                func take() throws -> Int {
                    guard fieldEnd - field >= 8 else { throw fail(.corrupt, at: field, "zip64 extra of '\(name)' is too short") }
                    defer { field += 8 }
                    return try u64(field)
                }
                if uncompressed == 0xFFFF_FFFF { uncompressed = try take() }
                if compressed == 0xFFFF_FFFF { compressed = try take() }
                if localOffset == 0xFFFF_FFFF { localOffset = try take() }
                if diskStart == 0xFFFF {
                    guard fieldEnd - field >= 4 else { throw fail(.corrupt, at: field, "zip64 extra of '\(name)' is too short") }
                    diskStart = u32(field)
                }
            }
            extra += 4 + size
        }
        guard uncompressed != 0xFFFF_FFFF, compressed != 0xFFFF_FFFF, localOffset != 0xFFFF_FFFF else {
            throw fail(.corrupt, at: start, "'\(name)' has saturated sizes or offset but no zip64 extra")
        }
        guard diskStart == 0 else { throw fail(.unsupported, at: start, "'\(name)' lives on disk \(diskStart)") }
        if flags & 0x0041 != 0 {
            throw WeightsError(.unsupported, file: file, at: "zip member '\(name)'", "the member is encrypted")
        }
        guard method == ZipArchive.methodStored || method == ZipArchive.methodDeflate else {
            throw WeightsError(.unsupported, file: file, at: "zip member '\(name)'", "compression method \(method); only STORED and DEFLATE are read")
        }
        if method == ZipArchive.methodStored, compressed != uncompressed {
            throw WeightsError(.corrupt, file: file, at: "zip member '\(name)'",
                               "STORED member has compressed size \(compressed) but uncompressed size \(uncompressed)")
        }
        cursor = start + total
        return CentralRecord(name: name, nameStart: start + 46, nameLength: nameLength, method: method, flags: flags,
                             crc: crc, compressed: compressed, uncompressed: uncompressed, localOffset: localOffset)
    }

    /// Checks a record's local header against it: same name, and the data starts after the local
    /// header's OWN name and extra (torch pads the local extra to align the data).
    private func resolveLocalHeader(of record: CentralRecord, dataLimit: Int) throws -> ZipEntry {
        let (name, nameLength, method, localOffset, compressed) =
            (record.name, record.nameLength, record.method, record.localOffset, record.compressed)
        let nameBytes = UnsafeRawBufferPointer(rebasing: bytes[record.nameStart ..< (record.nameStart + nameLength)])
        guard localOffset <= dataLimit - 30, dataLimit >= 30, u32(localOffset) == 0x0403_4b50 else {
            throw WeightsError(.corrupt, file: file, at: "zip member '\(name)'",
                               "no local header at offset \(localOffset) (before the central directory at \(dataLimit))")
        }
        let localFlags = u16(localOffset + 6), localMethod = UInt16(u16(localOffset + 8))
        let localNameLength = u16(localOffset + 26), localExtraLength = u16(localOffset + 28)
        let dataOffset = localOffset + 30 + localNameLength + localExtraLength
        guard dataOffset <= dataLimit else {
            throw WeightsError(.corrupt, file: file, at: "zip member '\(name)'", "local header runs into the central directory")
        }
        guard localNameLength == nameLength,
              UnsafeRawBufferPointer(rebasing: bytes[(localOffset + 30) ..< (localOffset + 30 + nameLength)]).elementsEqual(nameBytes) else {
            throw WeightsError(.corrupt, file: file, at: "zip member '\(name)'", "local header name differs from the central-directory name")
        }
        guard localFlags & 0x0041 == 0 else {
            throw WeightsError(.unsupported, file: file, at: "zip member '\(name)'", "the member is encrypted (local header)")
        }
        guard localMethod == method else {
            throw WeightsError(.corrupt, file: file, at: "zip member '\(name)'", "local method \(localMethod) differs from central method \(method)")
        }
        let (dataEnd, overflow) = dataOffset.addingReportingOverflow(compressed)
        guard !overflow, dataEnd <= dataLimit else {
            throw WeightsError(.corrupt, file: file, at: "zip member '\(name)'",
                               "data [\(dataOffset), +\(compressed)) runs past the central directory at \(dataLimit)")
        }
        return ZipEntry(name: name, method: method, flags: record.flags, crc32: record.crc, compressedSize: compressed,
                        uncompressedSize: record.uncompressed, localHeaderOffset: localOffset, dataOffset: dataOffset)
    }

    /// Names are never used as paths here, but tools that dump members might: refuse the traversal forms.
    private func validatedName(_ raw: UnsafeRawBufferPointer, at offset: Int) throws -> String {
        guard let name = String(validating: raw, as: UTF8.self) else {
            throw fail(.corrupt, at: offset, "member name is not valid UTF-8")
        }
        let problem: String?
        if name.isEmpty { problem = "is empty" }
        else if name.utf8.contains(0) { problem = "contains NUL" }
        else if name.hasPrefix("/") { problem = "starts with '/'" }
        else if name.contains("\\") { problem = "contains a backslash" }
        else if name == ".." || name.hasPrefix("../") || name.hasSuffix("/..") || name.contains("/../") { problem = "contains a '..' component" }
        else { problem = nil }
        if let problem {
            throw WeightsError(.unsafe, file: file, at: "zip byte \(offset)", "member name '\(name.debugDescription.dropFirst().dropLast())' \(problem)")
        }
        return name
    }

    /// Members must not share bytes: overlapping entries are the classic zip-bomb amplifier.
    private func checkNoOverlap(_ entries: [ZipEntry]) throws {
        let ordered = entries.sorted { $0.localHeaderOffset < $1.localHeaderOffset }
        for (previous, next) in zip(ordered, ordered.dropFirst()) where previous.dataRange.upperBound > next.localHeaderOffset {
            throw WeightsError(.corrupt, file: file, at: "zip member '\(next.name)'",
                               "its local header at \(next.localHeaderOffset) overlaps the data of '\(previous.name)' (ends at \(previous.dataRange.upperBound))")
        }
    }
}
