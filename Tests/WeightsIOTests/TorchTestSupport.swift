import Foundation
import XCTest
@testable import WeightsIO

/// Helpers for the torch checkpoint tests: fixture paths, a minimal safetensors reader for the
/// expected values, a strided gather, and builders for handcrafted pickles and zips.
enum TorchFixtures {
    static let folder = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("fixtures/torch")

    static func path(_ name: String) -> String { folder.appendingPathComponent(name).path }

    static func bytes(_ name: String) throws -> [UInt8] { [UInt8](try Data(contentsOf: folder.appendingPathComponent(name))) }

    struct Expected {
        let dtype: String
        let shape: [Int]
        let stride: [Int]
        let offset: Int
        let packed: [UInt8]
    }

    /// `<stem>.expected.json` (dtype/shape/stride/offset as torch reports them) joined with the packed
    /// bytes from `<stem>.expected.safetensors`, which torch wrote from contiguous copies.
    static func expected(_ stem: String) throws -> [String: Expected] {
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent(stem + ".expected.json")))
        guard let meta = json as? [String: [String: Any]] else { throw XCTSkip("bad expected json") }
        let file = try bytes(stem + ".expected.safetensors")
        let headerLength = file.withUnsafeBytes { Int(UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self))) }
        let header = try JSONSerialization.jsonObject(with: Data(file[8 ..< 8 + headerLength])) as? [String: Any] ?? [:]
        var result: [String: Expected] = [:]
        for (name, info) in meta {
            guard let entry = header[name] as? [String: Any], let offsets = entry["data_offsets"] as? [Int] else {
                XCTFail("\(name) missing from \(stem).expected.safetensors")
                continue
            }
            let base = 8 + headerLength
            result[name] = Expected(dtype: info["dtype"] as? String ?? "", shape: info["shape"] as? [Int] ?? [],
                                    stride: info["stride"] as? [Int] ?? [], offset: info["offset"] as? Int ?? -1,
                                    packed: Array(file[(base + offsets[0]) ..< (base + offsets[1])]))
        }
        return result
    }

    /// Row-major bytes of a strided record (zero strides repeat elements).
    static func packed(_ record: TensorRecord) -> [UInt8] {
        let size = record.dtype.byteSize
        var output: [UInt8] = []
        output.reserveCapacity(record.elementCount * size)
        guard record.elementCount > 0 else { return output }
        let source = record.storage.buffer
        var index = [Int](repeating: 0, count: record.shape.count)
        while true {
            var element = record.storageOffset
            for axis in 0 ..< index.count { element += index[axis] * record.strides[axis] }
            output.append(contentsOf: source[(element * size) ..< (element * size + size)])
            var axis = index.count - 1
            while axis >= 0 {
                index[axis] += 1
                if index[axis] < record.shape[axis] { break }
                index[axis] = 0
                axis -= 1
            }
            if axis < 0 { break }
        }
        return output
    }

    /// Compares every tensor of `store` with the fixture's expectations: names, dtype, shape, strides,
    /// storage offset, and the packed bytes exactly.
    static func assertMatches(_ store: WeightStore, stem: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let expected = try expected(stem)
        XCTAssertEqual(Set(store.names), Set(expected.keys), "tensor names of \(stem)", file: file, line: line)
        XCTAssertEqual(store.count, expected.count, file: file, line: line)
        for (name, want) in expected {
            guard let record = store[name] else { continue }
            XCTAssertEqual(record.dtype.torchName, want.dtype, "\(stem) \(name) dtype", file: file, line: line)
            XCTAssertEqual(record.shape, want.shape, "\(stem) \(name) shape", file: file, line: line)
            XCTAssertEqual(record.strides, want.stride, "\(stem) \(name) stride", file: file, line: line)
            XCTAssertEqual(record.storageOffset, want.offset, "\(stem) \(name) offset", file: file, line: line)
            XCTAssertEqual(packed(record), want.packed, "\(stem) \(name) bytes", file: file, line: line)
        }
    }
}

/// Asserts that `body` throws a `WeightsError` of `kind` whose text contains every fragment.
func assertWeightsError<T>(_ kind: WeightsError.Kind, _ fragments: [String] = [], file: StaticString = #filePath, line: UInt = #line,
                           _ body: () throws -> T) {
    do {
        _ = try body()
        XCTFail("expected a .\(kind) error, got success", file: file, line: line)
    } catch let error as WeightsError {
        XCTAssertEqual(error.kind, kind, "\(error)", file: file, line: line)
        for fragment in fragments {
            XCTAssertTrue(error.description.contains(fragment), "'\(error)' lacks '\(fragment)'", file: file, line: line)
        }
    } catch {
        XCTFail("expected WeightsError, got \(error)", file: file, line: line)
    }
}

/// Writes protocol-2 pickle opcodes by hand.
struct PickleBuilder {
    var bytes: [UInt8] = [0x80, 0x02]

    init(protocolHeader: Bool = true) { if !protocolHeader { bytes = [] } }

    @discardableResult mutating func raw(_ more: [UInt8]) -> PickleBuilder { bytes += more; return self }
    mutating func op(_ code: UInt8) { bytes.append(code) }
    mutating func global(_ module: String, _ name: String) { bytes += [0x63] + Array((module + "\n" + name + "\n").utf8) }
    mutating func string(_ text: String) {
        let utf8 = Array(text.utf8)
        bytes += [0x58] + withUnsafeBytes(of: UInt32(utf8.count).littleEndian, Array.init) + utf8
    }
    mutating func int(_ value: Int) {
        if (0 ..< 256).contains(value) { bytes += [0x4B, UInt8(value)] }
        else if let small = Int32(exactly: value) { bytes += [0x4A] + withUnsafeBytes(of: small.littleEndian, Array.init) }
        else { bytes += [0x8A, 8] + withUnsafeBytes(of: Int64(value).littleEndian, Array.init) }  // LONG1
    }
    mutating func mark() { op(0x28) }
    mutating func tuple() { op(0x74) }
    mutating func emptyTuple() { op(0x29) }
    mutating func reduce() { op(0x52) }
    mutating func emptyDict() { op(0x7D) }
    mutating func setItems() { op(0x75) }
    mutating func stop() { op(0x2E) }

    /// `('storage', torch.<cls>, key, 'cpu', numel)` + BINPERSID.
    mutating func storage(_ storageClass: String, key: String, numel: Int, module: String = "torch") {
        mark(); string("storage"); global(module, storageClass); string(key); string("cpu"); int(numel); tuple()
        op(0x51)
    }

    mutating func ints(_ values: [Int]) { mark(); values.forEach { int($0) }; tuple() }

    /// `_rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())`.
    mutating func tensorV2(_ storageClass: String, key: String, numel: Int, offset: Int, size: [Int], stride: [Int]) {
        global("torch._utils", "_rebuild_tensor_v2")
        mark()
        storage(storageClass, key: key, numel: numel)
        int(offset); ints(size); ints(stride); op(0x89)
        global("collections", "OrderedDict"); emptyTuple(); reduce()
        tuple(); reduce()
    }

    /// `{name: tensor, ...}` built from closures that push the values.
    static func stateDict(_ items: [(String, (inout PickleBuilder) -> Void)]) -> [UInt8] {
        var pickle = PickleBuilder()
        pickle.emptyDict(); pickle.mark()
        for (name, push) in items { pickle.string(name); push(&pickle) }
        pickle.setItems(); pickle.stop()
        return pickle.bytes
    }
}

/// Builds small zip archives the way torch lays them out (STORED members, no data descriptors),
/// with hooks to break individual rules.
struct ZipBuilder {
    struct Member {
        var name: String
        var data: [UInt8]
        var method: UInt16 = 0
        var flags: UInt16 = 0x0800
        var localName: String?
        var crc: UInt32?
        /// The bytes written for a compressed member (`data` is what they inflate to).
        var compressed: [UInt8]?
    }

    var members: [Member] = []

    mutating func add(_ name: String, _ data: [UInt8], method: UInt16 = 0, flags: UInt16 = 0x0800, localName: String? = nil) {
        members.append(Member(name: name, data: data, method: method, flags: flags, localName: localName))
    }

    /// A DEFLATE member made of stored blocks (valid raw DEFLATE without a compressor).
    mutating func addDeflated(_ name: String, _ data: [UInt8], stream: [UInt8]? = nil) {
        members.append(Member(name: name, data: data, method: 8, compressed: stream ?? Self.storedDeflate(data)))
    }

    static func storedDeflate(_ data: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        var start = 0
        repeat {
            let count = min(65_535, data.count - start)
            let final: UInt8 = start + count == data.count ? 1 : 0
            out += [final, UInt8(count & 0xFF), UInt8(count >> 8), UInt8(~count & 0xFF), UInt8((~count >> 8) & 0xFF)]
            out += data[start ..< start + count]
            start += count
        } while start < data.count
        return out
    }

    static func crc32(_ data: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in data {
            crc ^= UInt32(byte)
            for _ in 0 ..< 8 { crc = crc & 1 != 0 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
        }
        return ~crc
    }

    /// `overrideOffsets` replaces the central directory's local-header offsets (overlap tests).
    /// `zip64` saturates every 32-bit field and writes zip64 extras, end record and locator.
    func build(overrideOffsets: [Int: Int] = [:], zip64: Bool = false) -> [UInt8] {
        var out: [UInt8] = []
        var central: [UInt8] = []
        func le16(_ value: Int, _ into: inout [UInt8]) { into += [UInt8(value & 0xFF), UInt8(value >> 8 & 0xFF)] }
        func le32(_ value: UInt32, _ into: inout [UInt8]) { for shift in stride(from: 0, to: 32, by: 8) { into.append(UInt8(value >> UInt32(shift) & 0xFF)) } }
        for (index, member) in members.enumerated() {
            let offset = out.count
            let crc = member.crc ?? Self.crc32(member.data)
            let localName = Array((member.localName ?? member.name).utf8)
            le32(0x0403_4b50, &out); le16(20, &out); le16(Int(member.flags), &out); le16(Int(member.method), &out)
            let payload = member.compressed ?? member.data
            le16(0, &out); le16(0, &out); le32(crc, &out); le32(UInt32(payload.count), &out); le32(UInt32(member.data.count), &out)
            le16(localName.count, &out); le16(0, &out); out += localName; out += payload

            let name = Array(member.name.utf8)
            let localOffset = overrideOffsets[index] ?? offset
            let size32 = zip64 ? 0xFFFF_FFFF : UInt32(member.data.count)
            let compressed32 = zip64 ? 0xFFFF_FFFF : UInt32(payload.count)
            le32(0x0201_4b50, &central); le16(20, &central); le16(45, &central); le16(Int(member.flags), &central)
            le16(Int(member.method), &central); le16(0, &central); le16(0, &central); le32(crc, &central)
            le32(compressed32, &central); le32(size32, &central)
            le16(name.count, &central); le16(zip64 ? 28 : 0, &central); le16(0, &central); le16(0, &central); le16(0, &central)
            le32(0, &central); le32(zip64 ? 0xFFFF_FFFF : UInt32(localOffset), &central); central += name
            if zip64 {
                le16(0x0001, &central); le16(24, &central)
                for value in [member.data.count, payload.count, localOffset] { le64(value, &central) }
            }
        }
        func le64(_ value: Int, _ into: inout [UInt8]) { for shift in stride(from: 0, to: 64, by: 8) { into.append(UInt8(value >> shift & 0xFF)) } }
        let directoryOffset = out.count
        out += central
        if zip64 {
            let recordOffset = out.count
            le32(0x0606_4b50, &out); le64(44, &out); le16(45, &out); le16(45, &out); le32(0, &out); le32(0, &out)
            le64(members.count, &out); le64(members.count, &out); le64(central.count, &out); le64(directoryOffset, &out)
            le32(0x0706_4b50, &out); le32(0, &out); le64(recordOffset, &out); le32(1, &out)
            le32(0x0605_4b50, &out); le16(0xFFFF, &out); le16(0xFFFF, &out); le16(0xFFFF, &out); le16(0xFFFF, &out)
            le32(0xFFFF_FFFF, &out); le32(0xFFFF_FFFF, &out); le16(0, &out)
            return out
        }
        le32(0x0605_4b50, &out); le16(0, &out); le16(0, &out); le16(members.count, &out); le16(members.count, &out)
        le32(UInt32(central.count), &out); le32(UInt32(directoryOffset), &out); le16(0, &out)
        return out
    }
}

extension TorchCheckpointReader {
    /// Reads in-memory bytes (handcrafted archives).
    static func read(bytes: [UInt8], file: String = "test.pt", limits: PickleLimits = .init()) throws -> WeightStore {
        try read(owner: ByteOwner(copying: bytes), file: file, limits: limits)
    }
}
