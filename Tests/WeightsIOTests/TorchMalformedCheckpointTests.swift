import XCTest
@testable import WeightsIO

/// Handcrafted torch zips: each breaks one rule of formats.md §5.3 and must fail with a specific error.
final class TorchMalformedCheckpointTests: XCTestCase {
    private let floats: [UInt8] = [Float](arrayLiteral: 1, 2, 3, 4).withUnsafeBytes(Array.init)

    private func checkpoint(_ pickle: [UInt8], records: [(String, [UInt8])] = [], prefix: String = "archive",
                            dataMethod: UInt16 = 0, extra: [(String, [UInt8])] = []) -> [UInt8] {
        var zip = ZipBuilder()
        zip.add(prefix + "/data.pkl", pickle)
        for (key, bytes) in records { zip.add(prefix + "/data/" + key, bytes, method: dataMethod) }
        for (name, bytes) in extra { zip.add(name, bytes) }
        zip.add(prefix + "/version", Array("3\n".utf8))
        return zip.build()
    }

    private func tensor(_ storageClass: String = "FloatStorage", key: String = "0", numel: Int = 4, offset: Int = 0,
                        size: [Int] = [2, 2], stride: [Int] = [2, 1]) -> (inout PickleBuilder) -> Void {
        { $0.tensorV2(storageClass, key: key, numel: numel, offset: offset, size: size, stride: stride) }
    }

    func testMinimalHandcraftedCheckpointReads() throws {
        let pickle = PickleBuilder.stateDict([("w", tensor()), ("w_t", tensor(stride: [1, 2])), ("row", tensor(offset: 2, size: [2], stride: [1]))])
        let store = try TorchCheckpointReader.read(bytes: checkpoint(pickle, records: [("0", floats)]))
        XCTAssertEqual(store.names, ["w", "w_t", "row"])
        XCTAssertEqual(TorchFixtures.packed(try XCTUnwrap(store["w_t"])),
                       [Float](arrayLiteral: 1, 3, 2, 4).withUnsafeBytes(Array.init))
        XCTAssertEqual(TorchFixtures.packed(try XCTUnwrap(store["row"])), [Float](arrayLiteral: 3, 4).withUnsafeBytes(Array.init))
    }

    func testStorageRecordMustMatchDeclaredSizeExactly() {
        let pickle = PickleBuilder.stateDict([("w", tensor(numel: 4))])
        assertWeightsError(.corrupt, ["storage '0'", "16 bytes", "holds 12"]) {
            try TorchCheckpointReader.read(bytes: self.checkpoint(pickle, records: [("0", Array(self.floats.prefix(12)))]))
        }
        assertWeightsError(.corrupt, ["holds 20"]) {
            try TorchCheckpointReader.read(bytes: self.checkpoint(pickle, records: [("0", self.floats + [0, 0, 0, 0])]))
        }
    }

    func testMissingRecord() {
        let pickle = PickleBuilder.stateDict([("w", tensor(key: "7"))])
        assertWeightsError(.corrupt, ["archive/data/7", "missing"]) {
            try TorchCheckpointReader.read(bytes: self.checkpoint(pickle, records: [("0", self.floats)]))
        }
    }

    func testViewsMustFitTheirStorage() {
        let outOfRange = PickleBuilder.stateDict([("w", tensor(offset: 1))])
        assertWeightsError(.corrupt, ["needs 20 bytes", "has 16"]) {
            try TorchCheckpointReader.read(bytes: self.checkpoint(outOfRange, records: [("0", self.floats)]))
        }
        let negative = PickleBuilder.stateDict([("w", tensor(offset: 3, size: [2], stride: [-1]))])
        assertWeightsError(.corrupt, ["negative stride"]) {
            try TorchCheckpointReader.read(bytes: self.checkpoint(negative, records: [("0", self.floats)]))
        }
        let overflow = PickleBuilder.stateDict([("w", tensor(size: [3, 3], stride: [Int(Int32.max), Int(Int32.max)]))])
        assertWeightsError(.corrupt, ["needs"]) {
            try TorchCheckpointReader.read(bytes: self.checkpoint(overflow, records: [("0", self.floats)]))
        }
        let zeroStride = PickleBuilder.stateDict([("w", tensor(size: [3, 2], stride: [0, 1]))])
        XCTAssertNoThrow(try TorchCheckpointReader.read(bytes: checkpoint(zeroStride, records: [("0", floats)])))
        // Zero strides cannot promise unbounded memory.
        let bomb = PickleBuilder.stateDict([("w", tensor(size: [1 << 20, 1 << 20], stride: [0, 0]))])
        assertWeightsError(.limit, ["expanded tensor", "materialise"]) {
            try TorchCheckpointReader.read(bytes: self.checkpoint(bomb, records: [("0", self.floats)]))
        }
        let unaddressable = PickleBuilder.stateDict([("w", tensor(size: [1 << 31, 1 << 31, 1 << 31], stride: [0, 0, 0]))])
        assertWeightsError(.limit, ["more elements than can be addressed"]) {
            try TorchCheckpointReader.read(bytes: self.checkpoint(unaddressable, records: [("0", self.floats)]))
        }
    }

    func testOneStorageViewedWithTwoDtypesIsCorrupt() {
        let pickle = PickleBuilder.stateDict([("a", tensor()), ("b", tensor("HalfStorage", numel: 8, size: [8], stride: [1]))])
        assertWeightsError(.corrupt, ["storage '0'", "float32", "float16"]) {
            try TorchCheckpointReader.read(bytes: self.checkpoint(pickle, records: [("0", self.floats)]))
        }
    }

    func testTensorDataCompressedOtherThanByDeflateIsRefused() {
        let pickle = PickleBuilder.stateDict([("w", tensor())])
        assertWeightsError(.unsupported, ["archive/data/0", "method 12", "DEFLATE"]) {
            try TorchCheckpointReader.read(bytes: self.checkpoint(pickle, records: [("0", self.floats)], dataMethod: 12))
        }
    }

    func testUnsafeGlobalRefusesTheWholeFile() {
        var pickle = PickleBuilder()
        pickle.emptyDict(); pickle.mark()
        pickle.string("w"); tensor()(&pickle)
        pickle.string("x"); pickle.global("posix", "system"); pickle.mark(); pickle.string("id"); pickle.tuple(); pickle.reduce()
        pickle.setItems(); pickle.stop()
        assertWeightsError(.unsafe, ["evil.pt", "archive/data.pkl", "posix.system"]) {
            try TorchCheckpointReader.read(bytes: self.checkpoint(pickle.bytes, records: [("0", self.floats)]), file: "evil.pt")
        }
    }

    func testUnsupportedTensorKinds() {
        let quantized = PickleBuilder.stateDict([("q", tensor("QInt8Storage"))])
        assertWeightsError(.unsupported, ["quantized"]) {
            try TorchCheckpointReader.read(bytes: self.checkpoint(quantized, records: [("0", self.floats)]))
        }
        for function in ["_rebuild_qtensor", "_rebuild_sparse_tensor", "_rebuild_nested_tensor", "_rebuild_meta_tensor_no_storage"] {
            let pickle = PickleBuilder.stateDict([("t", { p in p.global("torch._utils", function); p.emptyTuple(); p.reduce() })])
            assertWeightsError(.unsupported, [function]) { try TorchCheckpointReader.read(bytes: self.checkpoint(pickle)) }
        }
        let fnuz = PickleBuilder.stateDict([("t", { p in
            p.global("torch._utils", "_rebuild_tensor_v3"); p.mark()
            p.storage("UntypedStorage", key: "0", numel: 16, module: "torch.storage")
            p.int(0); p.ints([4]); p.ints([1]); p.op(0x89); p.global("collections", "OrderedDict"); p.emptyTuple(); p.reduce()
            p.global("torch", "float8_e4m3fnuz"); p.tuple(); p.reduce()
        })])
        assertWeightsError(.unsupported, ["float8_e4m3fnuz"]) {
            try TorchCheckpointReader.read(bytes: self.checkpoint(fnuz, records: [("0", self.floats)]))
        }
    }

    func testStorageKeysAreNeverPaths() {
        let pickle = PickleBuilder.stateDict([("w", tensor(key: "../../etc/passwd"))])
        assertWeightsError(.format, ["storage key"]) {
            try TorchCheckpointReader.read(bytes: self.checkpoint(pickle, records: [("0", self.floats)]))
        }
    }

    func testArchiveLayoutRules() {
        let pickle = PickleBuilder.stateDict([("w", tensor())])
        assertWeightsError(.format, ["other/evil", "not under the archive folder 'archive/'"]) {
            try TorchCheckpointReader.read(bytes: self.checkpoint(pickle, records: [("0", self.floats)], extra: [("other/evil", [1])]))
        }
        var noPickle = ZipBuilder()
        noPickle.add("archive/version", [0x33])
        assertWeightsError(.format, ["archive/data.pkl", "missing"]) { try TorchCheckpointReader.read(bytes: noPickle.build()) }
        assertWeightsError(.unsupported, ["big"]) {
            try TorchCheckpointReader.read(bytes: self.checkpoint(pickle, records: [("0", self.floats)], extra: [("archive/byteorder", Array("big".utf8))]))
        }
        assertWeightsError(.corrupt, ["follow the STOP"]) {
            try TorchCheckpointReader.read(bytes: self.checkpoint(pickle + [0x4E], records: [("0", self.floats)]))
        }
    }

    func testFlatteningPolicy() throws {
        // {"a.b": t, "a": {"b": t}} collide after joining with ".".
        let collision = PickleBuilder.stateDict([("a.b", tensor()), ("a", { p in
            p.emptyDict(); p.mark(); p.string("b"); self.tensor()(&p); p.setItems()
        })])
        assertWeightsError(.corrupt, ["'a.b'", "twice"]) {
            try TorchCheckpointReader.read(bytes: self.checkpoint(collision, records: [("0", self.floats)]))
        }
        // A whole pickled module is not a state dict.
        var module = PickleBuilder()
        module.global("mymodels", "Net"); module.emptyTuple(); module.op(0x81); module.emptyDict(); module.op(0x62); module.stop()
        assertWeightsError(.unsupported, ["mymodels.Net", "neither a state dict nor an nn.Module"]) {
            try TorchCheckpointReader.read(bytes: self.checkpoint(module.bytes))
        }
    }

    func testTensorLimit() {
        var limits = PickleLimits()
        limits.maxTensors = 1
        let pickle = PickleBuilder.stateDict([("a", tensor()), ("b", tensor())])
        assertWeightsError(.limit, ["more than 1 tensors"]) {
            try TorchCheckpointReader.read(bytes: self.checkpoint(pickle, records: [("0", self.floats)]), limits: limits)
        }
    }

    func testHostileSidePicklesRefuseTorchScriptArchive() throws {
        // A real TorchScript archive with one of its other pickles replaced by a hostile one.
        let owner = try MappedFile.map(TorchFixtures.path("traced.pt"))
        let archive = try ZipArchive(owner: owner, file: "traced.pt")
        for target in ["traced/constants.pkl", "traced/traced_inputs.pkl"] {
            var zip = ZipBuilder()
            for entry in archive.entries where entry.isStored {
                var bytes = Array(try archive.storedBytes(entry).buffer)
                if entry.name == target {
                    var evil = PickleBuilder()
                    evil.global("builtins", "exec"); evil.mark(); evil.string("print(1)"); evil.tuple(); evil.reduce(); evil.stop()
                    bytes = evil.bytes
                }
                zip.add(entry.name, bytes)
            }
            // Without the compressed code/ members no filter applies; the unmodified copy still reads.
            assertWeightsError(.unsafe, [target, "builtins.exec"]) { try TorchCheckpointReader.read(bytes: zip.build()) }
        }
    }

    func testInertDictSubclassesAndUnknownObjectsAreSkipped() throws {
        // hyper_parameters = AttributeDict(lr=0.1) as Lightning writes it: NEWOBJ + SETITEMS on an unknown class.
        let pickle = PickleBuilder.stateDict([
            ("hyper_parameters", { p in
                p.global("lightning_fabric.utilities.data", "AttributeDict"); p.emptyTuple(); p.op(0x81)
                p.mark(); p.string("lr"); p.int(1); p.setItems()
            }),
            ("state_dict", { p in p.emptyDict(); p.mark(); p.string("w"); self.tensor()(&p); p.setItems() }),
        ])
        let store = try TorchCheckpointReader.read(bytes: checkpoint(pickle, records: [("0", floats)]))
        XCTAssertEqual(store.names, ["w"])
    }
}
