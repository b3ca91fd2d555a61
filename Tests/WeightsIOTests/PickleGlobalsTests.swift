import Foundation
import XCTest
@testable import WeightsIO

/// Pickle globals: the allowlist ("safe"), the dangerous-name classifier (refused, by name), the
/// unknown rest (listed per file, refused by `strictGlobals`), and DEFLATE members of torch zips.
final class PickleGlobalsTests: XCTestCase {
    private func verdict(_ module: String, _ name: String) -> PickleGlobalVerdict {
        PickleGlobalPolicy.verdict(for: PickleSymbol(module, name))
    }

    func testAllowlistedDataConstructorsAreSafe() {
        let safe = [("collections", "OrderedDict"), ("collections", "Counter"), ("torch._utils", "_rebuild_tensor_v2"),
                    ("torch._utils", "_rebuild_parameter"), ("torch._tensor", "_rebuild_from_type_v2"),
                    ("torch", "FloatStorage"), ("torch", "BFloat16Storage"), ("torch.cuda", "HalfStorage"),
                    ("torch.storage", "UntypedStorage"), ("torch", "float16"), ("torch", "Size"), ("torch", "device"),
                    ("torch.nn.parameter", "Parameter"), ("torch.serialization", "_get_layout"), ("_codecs", "encode"),
                    ("builtins", "set"), ("__builtin__", "frozenset"), ("builtins", "complex"), ("builtins", "slice"),
                    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "scalar"), ("numpy", "dtype"),
                    ("numpy", "ndarray"), ("numpy", "float32"), ("numpy.dtypes", "Float64DType"),
                    ("torch.jit._pickle", "build_intlist"), ("torch.jit._pickle", "restore_type_tag")]
        for (module, name) in safe {
            XCTAssertEqual(verdict(module, name), .safe, "\(module).\(name)")
        }
    }

    func testCheckpointExtrasAreUnknownNotDangerous() {
        let unknown = [("pytorch_lightning.callbacks.model_checkpoint", "ModelCheckpoint"),
                       ("pytorch_lightning.utilities.parsing", "AttributeDict"), ("argparse", "Namespace"),
                       ("omegaconf.dictconfig", "DictConfig"), ("omegaconf.base", "ContainerMetadata"), ("typing", "Any"),
                       ("pathlib", "PosixPath"), ("uuid", "UUID"), ("copyreg", "_reconstructor"), ("builtins", "object"),
                       ("__torch__.torch.nn.modules.linear", "Linear"), ("mymodule", "Outer.Inner"),
                       ("collections", "defaultdict"), ("torch.nn.modules.linear", "Linear")]
        for (module, name) in unknown {
            XCTAssertEqual(verdict(module, name), .unknown, "\(module).\(name)")
        }
    }

    /// Each name of the issue, and the dotted walks that reach os/sys through another module.
    func testDangerousGlobalsAreRefusedWithTheirName() {
        let dangerous: [(String, String, String)] = [
            ("genericpath", "os.system", "to 'os.system'"), ("torch", "os.system", "to 'os.system'"),
            ("collections", "_sys.exit", "to 'sys.exit'"), ("numpy", "_os.popen", "to 'os.popen'"),
            ("_ctypes", "dlopen", "native code"), ("ctypes", "CDLL", "native code"),
            ("_xxsubinterpreters", "run_string", "run code"), ("_interpreters", "exec", "run code"),
            ("logging.config", "dictConfig", "run code"), ("torch.storage", "_load_from_bytes", "run code"),
            ("torch.utils.cpp_extension", "load_inline", "run code"),
            ("importlib.machinery", "SourceFileLoader", "import modules"), ("_frozen_importlib_external", "ExtensionFileLoader", "import modules"),
            ("_imp", "create_dynamic", "import modules"), ("pathlib", "Path.write_text", "write files"),
            ("pathlib", "PosixPath.unlink", "write files"), ("codecs", "open", "write files"), ("numpy", "save", "write files"),
            ("zipfile", "ZipFile", "write or delete files"), ("sqlite3", "connect", "write or delete files"),
            ("tarfile", "open", "write or delete files"), ("__builtin__", "eval", "builtin"), ("builtins", "getattr", "builtin"),
            ("builtins", "__import__", "builtin"), ("copy_reg", "_reconstructor_unsafe", "run code"),
            ("commands", "getoutput", "processes"), ("collections", "OrderedDict.__init__.__globals__", "walks past"),
            ("torch", "__builtins__", "interpreter internal"), ("uuid", "_get_command_stdout", "uuid"),
            ("os.path", "join", "os"), ("torch.jit", "load", "run code"), ("torch.serialization", "load", "unpickles"),
        ]
        for (module, name, why) in dangerous {
            guard case .dangerous(let reason) = verdict(module, name) else {
                XCTFail("\(module).\(name) is not dangerous"); continue
            }
            XCTAssertTrue(reason.contains("'\(module).\(name)'"), reason)
            XCTAssertTrue(reason.contains(why), "\(reason) lacks '\(why)'")
        }
    }

    func testAllowlistedNamesReachedByADottedWalkAreNotSafe() {
        XCTAssertNotEqual(verdict("collections", "OrderedDict.fromkeys"), .safe)
        XCTAssertNotEqual(verdict("torch._utils", "_rebuild_tensor_v2.__globals__"), .safe)
        XCTAssertNotEqual(verdict("torch", "FloatStorage.from_file"), .safe)
    }

    // MARK: files

    private let floats: [UInt8] = [Float](arrayLiteral: 1, 2, 3, 4).withUnsafeBytes(Array.init)

    /// `{'w': tensor, 'args': argparse.Namespace(), 'callbacks': {ModelCheckpoint: {}}}` with a zip of `records`.
    private func lightningLike(data: (inout ZipBuilder) -> Void = { $0.add("archive/data/0", [Float](arrayLiteral: 1, 2, 3, 4).withUnsafeBytes(Array.init)) }) -> [UInt8] {
        var pickle = PickleBuilder()
        pickle.emptyDict(); pickle.mark()
        pickle.string("w"); pickle.tensorV2("FloatStorage", key: "0", numel: 4, offset: 0, size: [2, 2], stride: [2, 1])
        pickle.string("args"); pickle.global("argparse", "Namespace"); pickle.emptyTuple(); pickle.op(0x81)
        pickle.emptyDict(); pickle.op(0x62)
        pickle.string("callbacks"); pickle.emptyDict(); pickle.global("pytorch_lightning.callbacks.model_checkpoint", "ModelCheckpoint")
        pickle.emptyDict(); pickle.op(0x73)
        pickle.setItems(); pickle.stop()
        var zip = ZipBuilder()
        zip.add("archive/data.pkl", pickle.bytes)
        data(&zip)
        zip.add("archive/version", Array("3\n".utf8))
        return zip.build()
    }

    private func write(_ bytes: [UInt8], name: String) throws -> String {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("pickle-globals-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent(name).path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    func testUnknownGlobalsAreListedAndStrictRefusesThem() throws {
        let path = try write(lightningLike(), name: "lightning.ckpt")
        let store = try WeightsReader.open(path)
        XCTAssertEqual(store.names, ["w"])
        XCTAssertEqual(store.unknownGlobals, ["argparse.Namespace", "pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint"])
        XCTAssertEqual(store.pickleGlobals?.isSafe, false)
        assertWeightsError(.unsafe, ["lightning.ckpt", "strict", "argparse.Namespace", "ModelCheckpoint"]) {
            try WeightsReader.open(path, options: ReadOptions(strictGlobals: true))
        }
    }

    func testSafeFilesPassStrictAndSafetensorsHaveNoPickleVerdict() throws {
        let pickle = PickleBuilder.stateDict([("w", { $0.tensorV2("FloatStorage", key: "0", numel: 4, offset: 0, size: [4], stride: [1]) })])
        var zip = ZipBuilder()
        zip.add("archive/data.pkl", pickle); zip.add("archive/data/0", floats)
        let path = try write(zip.build(), name: "plain.pt")
        let store = try WeightsReader.open(path, options: ReadOptions(strictGlobals: true))
        XCTAssertEqual(store.pickleGlobals, PickleGlobalsReport(unknown: []))
        let converted = path + ".safetensors"
        try WeightsConverter.write(store, to: converted)
        XCTAssertNil(try WeightsReader.open(converted, options: ReadOptions(strictGlobals: true)).pickleGlobals)
    }

    func testDangerousGlobalInALegacyPickleIsRefused() throws {
        // The fourth pickle of a legacy file (formats.md §4) carries a dotted STACK_GLOBAL.
        var object: [UInt8] = [0x80, 0x04, 0x7D, 0x28]
        for text in ["evil", "torch", "os.system", "id"] {
            object += [0x8C, UInt8(text.utf8.count)] + Array(text.utf8)
            if text == "os.system" { object += [0x93, 0x28] }
        }
        object += [0x74, 0x52, 0x75, 0x2E]  // TUPLE REDUCE SETITEMS STOP
        var file = TorchLegacyCheckpoint.magic
        file += [0x80, 0x02, 0x4D, 0xE9, 0x03, 0x2E]  // 1001
        file += [0x80, 0x02, 0x7D, 0x2E]  // {}
        file += object
        assertWeightsError(.unsafe, ["legacy object pickle", "torch.os.system", "to 'os.system'"]) {
            try TorchCheckpointReader.read(bytes: file, file: "legacy.pth")
        }
    }

    // MARK: DEFLATE members

    func testDeflatedMembersAreInflatedIntoOwnedMemoryOnlyWhenReferenced() throws {
        let bytes = lightningLike { zip in
            zip.addDeflated("archive/data/0", self.floats)
            // Never referenced by the pickle, and not even a valid stream: it must not be inflated.
            zip.addDeflated("archive/data/9", [1, 2, 3], stream: [0xFF, 0xFF])
        }
        let store = try TorchCheckpointReader.read(bytes: bytes)
        let record = try XCTUnwrap(store["w"])
        XCTAssertEqual(TorchFixtures.packed(record), floats)
        XCTAssertFalse(record.storage.owner.isFileMapping)
        XCTAssertEqual(record.storage.count, 16)
    }

    func testDeflatedPickleIsRead() throws {
        var zip = ZipBuilder()
        let pickle = PickleBuilder.stateDict([("w", { $0.tensorV2("FloatStorage", key: "0", numel: 4, offset: 0, size: [4], stride: [1]) })])
        zip.addDeflated("archive/data.pkl", pickle)
        zip.addDeflated("archive/data/0", floats)
        let store = try TorchCheckpointReader.read(bytes: zip.build())
        XCTAssertEqual(store.names, ["w"])
        XCTAssertEqual(TorchFixtures.packed(try XCTUnwrap(store["w"])), floats)
    }

    func testDeflateIsBoundedAndChecked() {
        var limits = PickleLimits()
        limits.zip.maxInflatedDataBytes = 8
        assertWeightsError(.limit, ["archive/data/0", "budget"]) {
            try TorchCheckpointReader.read(bytes: self.lightningLike { $0.addDeflated("archive/data/0", self.floats) }, limits: limits)
        }
        var bomb = ZipBuilder.Member(name: "archive/data/0", data: [UInt8](repeating: 0, count: 17 << 20), method: 8, crc: 0)
        bomb.compressed = [0x03, 0x00]  // an empty fixed-Huffman block: never inflated, the ratio refuses it first
        assertWeightsError(.limit, ["archive/data/0", "zip bomb"]) {
            try TorchCheckpointReader.read(bytes: self.lightningLike { $0.members.append(bomb) })
        }
        var wrongCRC = ZipBuilder.Member(name: "archive/data/0", data: floats, method: 8, crc: 0x1234_5678)
        wrongCRC.compressed = ZipBuilder.storedDeflate(floats)
        assertWeightsError(.corrupt, ["archive/data/0", "CRC-32"]) {
            try TorchCheckpointReader.read(bytes: self.lightningLike { $0.members.append(wrongCRC) })
        }
        assertWeightsError(.corrupt, ["archive/data/0", "more than the declared 16"]) {
            try TorchCheckpointReader.read(bytes: self.lightningLike { zip in
                zip.addDeflated("archive/data/0", self.floats, stream: ZipBuilder.storedDeflate(self.floats + [0, 0, 0, 0]))
            })
        }
    }
}
