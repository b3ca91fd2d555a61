/// The pre-1.6 `torch.save` format (formats.md §4): five stacked pickles (magic, protocol version,
/// sys_info, the object, the sorted storage keys), then each storage as an int64 element count
/// followed by its raw little-endian bytes.
enum TorchLegacyCheckpoint {
    /// PROTO 2, LONG1 0x1950a86a20f9469cfc6c, STOP.
    static let magic: [UInt8] = [0x80, 0x02, 0x8A, 0x0A, 0x6C, 0xFC, 0x9C, 0x46, 0xF9, 0x20, 0x6A, 0xA8, 0x50, 0x19, 0x2E]
    static let protocolVersion: Int64 = 1001

    static func hasMagic(_ bytes: UnsafeRawBufferPointer) -> Bool {
        bytes.count >= magic.count && bytes.prefix(magic.count).elementsEqual(magic)
    }

    static func read(owner: ByteOwner, file: String, limits: PickleLimits) throws -> WeightStore {
        let bytes = owner.bytes
        guard hasMagic(bytes) else {
            throw WeightsError(.format, file: file, at: "byte 0", "no legacy torch magic number")
        }
        let globals = PickleGlobalLedger()
        func machine(_ record: String, _ interpreter: PickleInterpreter? = nil) -> PickleMachine {
            PickleMachine(bytes: bytes, file: file, record: record, limits: limits, interpreter: interpreter, globals: globals)
        }
        let afterVersion = try machine("legacy protocol pickle").run(from: magic.count, requireEnd: false) { value, end in
            guard case .int(let version) = value, version == protocolVersion else {
                throw WeightsError(.unsupported, file: file, at: "legacy protocol pickle", "protocol version \(describe(value)); only \(protocolVersion) is read")
            }
            return end
        }
        let afterSysInfo = try machine("legacy sys_info pickle").run(from: afterVersion, requireEnd: false) { value, end in
            guard case .dict(let info) = value else {
                throw WeightsError(.corrupt, file: file, at: "legacy sys_info pickle", "sys_info is a \(value.kindName), not a dict")
            }
            if case .bool(false)? = info["little_endian"] {
                throw WeightsError(.unsupported, file: file, at: "legacy sys_info pickle", "big-endian legacy checkpoints are not supported")
            }
            return end
        }
        let interpreter = TorchPickleInterpreter(form: .legacy, limits: limits, resolveRecord: nil)
        return try machine("legacy object pickle", interpreter).run(from: afterSysInfo, requireEnd: false) { root, afterObject in
            let keys = try machine("legacy storage-key pickle").run(from: afterObject, requireEnd: false) { value, end in
                guard case .list(let list) = value else {
                    throw WeightsError(.corrupt, file: file, at: "legacy storage-key pickle", "the key list is a \(value.kindName)")
                }
                return (try list.items.map { item -> String in
                    guard let key = item.stringValue else {
                        throw WeightsError(.corrupt, file: file, at: "legacy storage-key pickle", "a storage key is a \(item.kindName)")
                    }
                    return key
                }, end)
            }
            let storageBytes = try readStorages(owner: owner, file: file, keys: keys.0, start: keys.1, declared: interpreter.storages)
            var flattener = TorchStateFlattener(file: file, limits: limits, pickleBytes: afterObject - afterSysInfo)
            try flattener.flatten(root: root)
            var store = try TorchRecordBuilder.store(format: .torchLegacy, file: file, tensors: flattener.tensors,
                                                     storageBytes: storageBytes, metadata: [:])
            store.pickleGlobals = globals.report
            return store
        }
    }

    /// Walks the raw storages in key-list order; every count must match the pickle and every byte is accounted for.
    private static func readStorages(owner: ByteOwner, file: String, keys: [String], start: Int,
                                     declared: [String: TorchStorageRef]) throws -> [String: ByteSlice] {
        let bytes = owner.bytes
        var cursor = start
        var slices: [String: ByteSlice] = [:]
        for key in keys {
            let location = "storage '\(key)' at byte \(cursor)"
            guard let storage = declared[key] else {
                throw WeightsError(.corrupt, file: file, at: location, "listed in the key list but never referenced, so its element size is unknown")
            }
            guard slices[key] == nil else { throw WeightsError(.corrupt, file: file, at: location, "listed twice") }
            guard bytes.count - cursor >= 8 else { throw WeightsError(.corrupt, file: file, at: location, "truncated element count") }
            let count = Int64(littleEndian: bytes.loadUnaligned(fromByteOffset: cursor, as: Int64.self))
            guard count == Int64(storage.elementCount) else {
                throw WeightsError(.corrupt, file: file, at: location, "element count \(count) differs from the \(storage.elementCount) the pickle declares")
            }
            let dataStart = cursor + 8
            guard storage.rootByteCount <= bytes.count - dataStart else {
                throw WeightsError(.corrupt, file: file, at: location, "needs \(storage.rootByteCount) bytes, \(bytes.count - dataStart) left")
            }
            slices[key] = ByteSlice(owner: owner, range: dataStart ..< dataStart + storage.rootByteCount)
            cursor = dataStart + storage.rootByteCount
        }
        if let missing = declared.keys.sorted().first(where: { slices[$0] == nil }) {
            throw WeightsError(.corrupt, file: file, at: "storage '\(missing)'", "referenced by the pickle but absent from the key list")
        }
        guard cursor == bytes.count else {
            throw WeightsError(.corrupt, file: file, at: "byte \(cursor)", "\(bytes.count - cursor) bytes follow the last storage")
        }
        return slices
    }
}
