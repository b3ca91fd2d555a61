import Foundation
import XCTest
@testable import WeightsIO

/// Reads checkpoints written by the real torch 2.13 (tools/make_torch_fixtures.py) and compares each
/// tensor with what torch itself reported: dtype, shape, strides, storage offset, and the exact bytes.
final class TorchCheckpointTests: XCTestCase {
    func testStateDictWithEveryDtypeSavedToPath() throws {
        let store = try TorchCheckpointReader.read(path: TorchFixtures.path("state_all.pt"))
        XCTAssertEqual(store.format, .torchZip)
        XCTAssertEqual(store.metadata["prefix"], "state_all")  // path saves use the file's basename
        XCTAssertEqual(store.count, 27)
        try TorchFixtures.assertMatches(store, stem: "state_all")

        // Views share one zero-copy storage record.
        let base = try XCTUnwrap(store["base"]), transposed = try XCTUnwrap(store["base_t"]), row = try XCTUnwrap(store["base_row1"])
        XCTAssertTrue(base.storage.owner === transposed.storage.owner)
        XCTAssertEqual(base.storage.range, transposed.storage.range)
        XCTAssertEqual(base.storage.range, row.storage.range)
        XCTAssertEqual(base.storage.count, 12 * 4)
        XCTAssertEqual(base.storage.range.lowerBound % 64, 0, "torch aligns records to 64 bytes")
        XCTAssertFalse(transposed.isContiguous)
        XCTAssertEqual(try XCTUnwrap(store["expanded"]).strides, [1, 0])
        XCTAssertEqual(try XCTUnwrap(store["scalar"]).shape, [])
        XCTAssertEqual(try XCTUnwrap(store["empty"]).elementCount, 0)
        // v3 dtypes: untyped storage, offset counted in elements of the tensor dtype.
        let f8 = try XCTUnwrap(store["f8_view"])
        XCTAssertEqual(f8.dtype, .f8e4m3)
        XCTAssertEqual(f8.storageOffset, 2)
        XCTAssertEqual(f8.storage.count, 6)
        XCTAssertEqual(try XCTUnwrap(store["u64"]).dtype, .u64)
    }

    func testBufferSavedCheckpointUsesArchivePrefix() throws {
        let store = try TorchCheckpointReader.read(path: TorchFixtures.path("state_buffer.pt"))
        XCTAssertEqual(store.metadata["prefix"], "archive")
        try TorchFixtures.assertMatches(store, stem: "state_all")
    }

    func testCheckpointWithoutCRCs() throws {
        let owner = try MappedFile.map(TorchFixtures.path("state_nocrc.pt"))
        let archive = try ZipArchive(owner: owner, file: "state_nocrc.pt")
        XCTAssertTrue(archive.entries.allSatisfy { $0.crc32 == 0 }, "the fixture must really have CRC 0 everywhere")
        let store = try TorchCheckpointReader.read(owner: owner, file: "state_nocrc.pt")
        try TorchFixtures.assertMatches(store, stem: "state_nocrc")
    }

    func testProtocol4Pickle() throws {
        // pickle_protocol=4: FRAME, SHORT_BINUNICODE, MEMOIZE, STACK_GLOBAL.
        let store = try TorchCheckpointReader.read(path: TorchFixtures.path("state_proto4.pt"))
        try TorchFixtures.assertMatches(store, stem: "state_nocrc")
    }

    func testLightningCheckpointWithClassKeysAndNumpyScalars() throws {
        let store = try TorchCheckpointReader.read(path: TorchFixtures.path("lightning.ckpt"))
        XCTAssertEqual(store.format, .torchZip)
        try TorchFixtures.assertMatches(store, stem: "lightning")
        // Unwrapped twice, nested dicts joined with "."; callbacks and optimizer state skipped.
        XCTAssertNotNil(store["first_stage_model.encoder.weight"])
        XCTAssertFalse(store.names.contains { $0.hasPrefix("state_dict") || $0.hasPrefix("optimizer") })
        XCTAssertEqual(store.count, 6)
    }

    func testTracedTorchScriptModule() throws {
        let store = try TorchCheckpointReader.read(path: TorchFixtures.path("traced.pt"))
        XCTAssertEqual(store.format, .torchScript)
        XCTAssertEqual(store.metadata["torchscript"], "true")
        XCTAssertEqual(store.metadata["prefix"], "traced")
        try TorchFixtures.assertMatches(store, stem: "traced")
        XCTAssertEqual(store["proj"]?.dtype, .f16)
        XCTAssertEqual(store["context_length"]?.dtype, .i64)
    }

    func testScriptedTorchScriptModuleKeepsOnlyDeclaredParametersAndBuffers() throws {
        let store = try TorchCheckpointReader.read(path: TorchFixtures.path("scripted.pt"))
        XCTAssertEqual(store.format, .torchScript)
        // The scripted module keeps `attn_mask` as a plain tensor attribute in data.pkl; state_dict() omits it.
        XCTAssertNil(store["blocks.0.attn_mask"])
        try TorchFixtures.assertMatches(store, stem: "scripted")
    }

    func testWholePickledModuleReadsLikeItsStateDict() throws {
        // torch.save(model): inert __main__.Net / torch.nn classes; non-persistent buffers and plain
        // tensor attributes (attn_mask) are not state.
        let store = try TorchCheckpointReader.read(path: TorchFixtures.path("module.pt"))
        try TorchFixtures.assertMatches(store, stem: "module")
        XCTAssertNil(store["blocks.0.cache"])
        XCTAssertNil(store["blocks.0.attn_mask"])
        let expectedOrder = try JSONSerialization.jsonObject(with: Data(contentsOf: TorchFixtures.folder.appendingPathComponent("module.expected.json")))
        XCTAssertEqual(Set(store.names), Set((expectedOrder as? [String: Any] ?? [:]).keys))
        XCTAssertEqual(store.names.first, "proj", "parameters come before buffers and children, as in state_dict()")
    }

    func testTorchScriptDeclarationsFromCode() throws {
        var declarations = TorchScriptDeclarations()
        declarations.parse("""
        class Block(Module):
          __parameters__ = ["weight", "bias", ]
          __buffers__ = ["running_mean",
            "running_var", ]
          weight : Tensor
        class Other(Module):
          __parameters__ = []
          __buffers__ = []
        """, module: "__torch__.a.___torch_mangle_3")
        XCTAssertEqual(declarations.stateNames(of: PickleSymbol("__torch__.a.___torch_mangle_3", "Block")),
                       ["weight", "bias", "running_mean", "running_var"])
        XCTAssertEqual(declarations.stateNames(of: PickleSymbol("__torch__.a.___torch_mangle_3", "Other")), [])
        XCTAssertNil(declarations.stateNames(of: PickleSymbol("__torch__.a", "Block")))
    }

    func testLegacyStackedPickleFormat() throws {
        let store = try TorchCheckpointReader.read(path: TorchFixtures.path("legacy.pt"))
        XCTAssertEqual(store.format, .torchLegacy)
        try TorchFixtures.assertMatches(store, stem: "legacy")
        XCTAssertEqual(store["w"]?.storage.range, store["w_t"]?.storage.range)
    }

    func testLegacyTruncatedOrPaddedFilesAreRefused() throws {
        let bytes = try TorchFixtures.bytes("legacy.pt")
        assertWeightsError(.corrupt, ["legacy-cut.pt", "storage"]) {
            try TorchCheckpointReader.read(bytes: Array(bytes.dropLast()), file: "legacy-cut.pt")
        }
        assertWeightsError(.corrupt, ["1 bytes follow the last storage"]) {
            try TorchCheckpointReader.read(bytes: bytes + [0], file: "legacy-pad.pt")
        }
        // Cut inside the object pickle.
        assertWeightsError(.corrupt, ["legacy object pickle", "truncated"]) {
            try TorchCheckpointReader.read(bytes: Array(bytes.prefix(300)), file: "legacy-short.pt")
        }
    }

    func testEveryTruncationOfARealCheckpointFailsCleanly() throws {
        let bytes = try TorchFixtures.bytes("state_nocrc.pt")
        for length in stride(from: 0, to: bytes.count, by: 7) {
            XCTAssertThrowsError(try TorchCheckpointReader.read(bytes: Array(bytes.prefix(length))), "prefix of \(length) bytes")
        }
    }

    func testEveryTruncationOfTheLegacyCheckpointFailsCleanly() throws {
        let bytes = try TorchFixtures.bytes("legacy.pt")
        for length in 0 ..< bytes.count {
            XCTAssertThrowsError(try TorchCheckpointReader.read(bytes: Array(bytes.prefix(length))), "prefix of \(length) bytes")
        }
    }

    func testNotACheckpoint() {
        assertWeightsError(.format, ["notes.txt", "not a torch checkpoint"]) {
            try TorchCheckpointReader.read(bytes: Array("hello world".utf8), file: "notes.txt")
        }
    }
}
