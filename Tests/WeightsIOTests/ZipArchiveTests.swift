import XCTest
@testable import WeightsIO

/// Zip structure checks on handcrafted archives, and the real torch layout (zip64, local-header padding).
final class ZipArchiveTests: XCTestCase {
    private func open(_ bytes: [UInt8], limits: ZipLimits = .init()) throws -> ZipArchive {
        try ZipArchive(owner: ByteOwner(copying: bytes), file: "test.zip", limits: limits)
    }

    func testTorchWrittenArchiveUsesZip64AndAlignedLocalData() throws {
        let owner = try MappedFile.map(TorchFixtures.path("state_all.pt"))
        let archive = try ZipArchive(owner: owner, file: "state_all.pt")
        XCTAssertEqual(archive.entries.first?.name, "state_all/data.pkl")
        let records = archive.entries.filter { $0.name.hasPrefix("state_all/data/") }
        XCTAssertEqual(records.count, 24)
        for record in records {
            XCTAssertEqual(record.dataOffset % 64, 0, record.name)
            XCTAssertGreaterThan(record.dataOffset, record.localHeaderOffset + 30 + record.name.utf8.count,
                                 "data offset must come from the padded local header")
        }
        // The zip64 end record is what the reader used: the archive has one.
        let bytes = owner.bytes
        XCTAssertTrue((0 ..< bytes.count - 4).contains { bytes.loadUnaligned(fromByteOffset: $0, as: UInt32.self) == 0x0606_4b50 })
    }

    func testStoredMembersAreZeroCopyAndCRCIsChecked() throws {
        var zip = ZipBuilder()
        zip.add("a/x", Array("hello".utf8))
        let archive = try open(zip.build())
        let entry = try XCTUnwrap(archive.entry(named: "a/x"))
        let slice = try archive.storedBytes(entry, verifyCRC: true)
        XCTAssertTrue(slice.owner === archive.owner)
        XCTAssertEqual(Array(slice.buffer), Array("hello".utf8))

        var bad = ZipBuilder()
        bad.members = [ZipBuilder.Member(name: "a/x", data: Array("hello".utf8), crc: 0x1234)]
        let badArchive = try open(bad.build())
        assertWeightsError(.corrupt, ["CRC-32", "a/x"]) { try badArchive.storedBytes(badArchive.entries[0], verifyCRC: true) }
    }

    func testInflatesDeflateMembersExactly() throws {
        // Raw DEFLATE of "hello hello hello" produced by zlib (fixed Huffman block).
        let owner = try MappedFile.map(TorchFixtures.path("traced.pt"))
        let archive = try ZipArchive(owner: owner, file: "traced.pt")
        let code = try XCTUnwrap(archive.entry(named: "traced/code/__torch__.py"))
        XCTAssertEqual(code.method, 8)
        let text = String(decoding: try archive.contents(code, maxBytes: 1 << 20), as: UTF8.self)
        XCTAssertTrue(text.hasPrefix("class Net(Module):"))
        XCTAssertEqual(text.utf8.count, code.uncompressedSize)
        assertWeightsError(.limit, ["cap"]) { try archive.contents(code, maxBytes: 100) }
        assertWeightsError(.unsupported, ["STORED"]) { try archive.storedBytes(code) }
    }

    func testZip64ExtrasAndEndRecord() throws {
        // Every size and offset saturated, real values in zip64 extras (as for >4 GiB torch files).
        var zip = ZipBuilder()
        zip.add("a/x", Array("hello".utf8))
        zip.add("a/y", [1, 2, 3])
        let archive = try open(zip.build(zip64: true))
        XCTAssertEqual(archive.entries.map(\.name), ["a/x", "a/y"])
        let second = try XCTUnwrap(archive.entry(named: "a/y"))
        XCTAssertEqual(second.uncompressedSize, 3)
        XCTAssertEqual(Array(try archive.storedBytes(second, verifyCRC: true).buffer), [1, 2, 3])

        // A locator that points at garbage, and saturated fields without any locator.
        var bytes = zip.build(zip64: true)
        let locator = bytes.count - 22 - 20
        bytes[locator + 8] ^= 0x01
        assertWeightsError(.corrupt, ["zip64 locator"]) { try self.open(bytes) }
        let plain = zip.build(zip64: true)
        let withoutLocator = Array(plain[..<(plain.count - 22 - 20)]) + Array(plain[(plain.count - 22)...])
        assertWeightsError(.corrupt, ["saturated"]) { try self.open(withoutLocator) }
    }

    func testRejectsBrokenStructure() throws {
        var duplicate = ZipBuilder()
        duplicate.add("a/x", [1]); duplicate.add("a/x", [2])
        assertWeightsError(.corrupt, ["a/x", "twice"]) { try self.open(duplicate.build()) }

        var mismatch = ZipBuilder()
        mismatch.add("a/x", [1], localName: "a/y")
        assertWeightsError(.corrupt, ["local header name"]) { try self.open(mismatch.build()) }

        for name in ["a/../etc/passwd", "/abs", "a\\b", "a/\u{0}b"] {
            var unsafe = ZipBuilder()
            unsafe.add(name, [1])
            assertWeightsError(.unsafe, ["member name"]) { try self.open(unsafe.build()) }
        }

        var encrypted = ZipBuilder()
        encrypted.add("a/x", [1], flags: 0x0801)
        assertWeightsError(.unsupported, ["encrypted"]) { try self.open(encrypted.build()) }

        var bzip = ZipBuilder()
        bzip.add("a/x", [1], method: 12)
        assertWeightsError(.unsupported, ["method 12"]) { try self.open(bzip.build()) }

        // Entry B's local header sits inside A's data: overlapping members.
        var inner = ZipBuilder()
        inner.add("a/b", [9, 9])
        let innerBytes = inner.build()
        let localB = Array(innerBytes.prefix(30 + 3 + 2))
        var overlap = ZipBuilder()
        overlap.add("a/a", localB)
        overlap.add("a/b", [9, 9])
        assertWeightsError(.corrupt, ["overlaps"]) { try self.open(overlap.build(overrideOffsets: [1: 30 + 3])) }

        var many = ZipBuilder()
        for index in 0 ..< 5 { many.add("a/\(index)", [UInt8(index)]) }
        var limits = ZipLimits()
        limits.maxEntries = 4
        assertWeightsError(.limit, ["5 entries"]) { try self.open(many.build(), limits: limits) }

        var good = ZipBuilder()
        good.add("a/x", [1, 2, 3])
        let bytes = good.build()
        assertWeightsError(.format, ["end-of-central-directory"]) { try self.open(Array(bytes.dropLast(3))) }
        assertWeightsError(.format, ["end-of-central-directory"]) { try self.open(bytes + [0]) }
        assertWeightsError(.format, ["PK"]) { try self.open([0, 0, 0, 0] + bytes.dropFirst(4)) }
        // Central directory pointing past its end record.
        var pointsPast = bytes
        pointsPast[pointsPast.count - 6] = 0xFF
        assertWeightsError(.corrupt, ["central directory"]) { try self.open(pointsPast) }
        // A local header offset beyond the data area.
        assertWeightsError(.corrupt, ["no local header"]) { try self.open(good.build(overrideOffsets: [0: 5])) }
    }
}
