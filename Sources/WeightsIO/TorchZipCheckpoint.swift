/// `torch.save` zip checkpoints (since torch 1.6) and, through `TorchScriptWalker`, `torch.jit.save`
/// archives: `<prefix>/data.pkl` plus one record per storage under `<prefix>/data/`. torch writes them
/// STORED (read zero-copy); a file re-packed by a zip tool has DEFLATE members, inflated on use.
enum TorchZipCheckpoint {
    static func read(archive: ZipArchive, limits: PickleLimits) throws -> WeightStore {
        let file = archive.file
        let prefix = try archivePrefix(archive)
        try checkMembers(archive, prefix: prefix)

        if let byteOrder = archive.entry(named: prefix + "/byteorder") {
            let text = String(decoding: try archive.contents(byteOrder, maxBytes: 64), as: UTF8.self)
            guard text == "little" else {
                throw WeightsError(text == "big" ? .unsupported : .corrupt, file: file, at: "zip member '\(byteOrder.name)'",
                                   "byte order '\(text)'; only little-endian checkpoints are read")
            }
        }
        let isTorchScript = archive.entry(named: prefix + "/constants.pkl") != nil
        let budget = ZipInflateBudget(limits: limits.zip)
        let globals = PickleGlobalLedger()
        let context = PickleContext(limits: limits, budget: budget, globals: globals)
        // constants.pkl, traced_inputs.pkl, …: never used for weights, but torch would unpickle them,
        // so a hostile global in any of them refuses the file. Their storages are not resolved
        // (traced_inputs/ records are written empty).
        for entry in archive.entries where entry.name.hasSuffix(".pkl") && entry.name != prefix + "/data.pkl" {
            _ = try unpickle(archive, record: entry.name, storageFolder: nil, context: context) { _, _ in () }
        }
        let pickleBytes = archive.entry(named: prefix + "/data.pkl")?.uncompressedSize ?? 0
        var store = try unpickle(archive, record: prefix + "/data.pkl", storageFolder: prefix + "/data/", context: context) { root, interpreter in
            var metadata = ["prefix": prefix]
            let tensors: [(name: String, tensor: TorchTensorRef)]
            if isTorchScript {
                metadata["torchscript"] = "true"
                var walker = TorchScriptWalker(file: file, limits: limits,
                                               declarations: try TorchScriptDeclarations.read(archive, prefix: prefix, limits: limits),
                                               pickleBytes: pickleBytes)
                try walker.walk(root: root)
                tensors = walker.tensors
            } else {
                var flattener = TorchStateFlattener(file: file, limits: limits, pickleBytes: pickleBytes)
                try flattener.flatten(root: root)
                tensors = flattener.tensors
            }
            return try TorchRecordBuilder.store(format: isTorchScript ? .torchScript : .torchZip, file: file, tensors: tensors,
                                                storageBytes: interpreter.storageBytes, metadata: metadata)
        }
        store.pickleGlobals = globals.report
        return store
    }

    /// What every pickle of one archive shares.
    private struct PickleContext {
        let limits: PickleLimits
        let budget: ZipInflateBudget
        let globals: PickleGlobalLedger
    }

    /// Every record sits under one folder, named by the first central-directory entry (torch's rule).
    static func archivePrefix(_ archive: ZipArchive) throws -> String {
        guard let first = archive.entries.first else {
            throw WeightsError(.format, file: archive.file, "the zip archive is empty, so it is not a torch checkpoint")
        }
        guard let slash = first.name.firstIndex(of: "/"), slash != first.name.startIndex else {
            throw WeightsError(.format, file: archive.file, at: "zip member '\(first.name)'",
                               "the first member is not inside a folder, so this is not a torch checkpoint")
        }
        return String(first.name[..<slash])
    }

    private static func checkMembers(_ archive: ZipArchive, prefix: String) throws {
        let folder = prefix + "/"
        for entry in archive.entries {
            guard entry.name.hasPrefix(folder) else {
                throw WeightsError(.format, file: archive.file, at: "zip member '\(entry.name)'",
                                   "not under the archive folder '\(folder)' that the first member sets")
            }
        }
    }

    /// Runs the VM over one pickle record whose storages live in `storageFolder`.
    private static func unpickle<T>(_ archive: ZipArchive, record: String, storageFolder: String?, context: PickleContext,
                                    _ consume: (PickleValue, TorchPickleInterpreter) throws -> T) throws -> T {
        let file = archive.file
        let limits = context.limits
        guard let entry = archive.entry(named: record) else {
            throw WeightsError(.format, file: file, at: "zip member '\(record)'", "missing: a torch checkpoint needs it")
        }
        guard entry.uncompressedSize <= limits.maxPickleBytes else {
            throw WeightsError(.limit, file: file, at: "zip member '\(record)'",
                               "pickle of \(entry.uncompressedSize) bytes exceeds the \(limits.maxPickleBytes)-byte limit")
        }
        let pickle = try archive.memberBytes(entry, budget: context.budget, verifyCRC: true)
        let resolve: ((String) throws -> ByteSlice)? = storageFolder.map { folder in
            { key in
                let name = folder + key
                guard let storage = archive.entry(named: name) else {
                    throw WeightsError(.corrupt, file: file, at: "zip member '\(name)'", "the pickle references this storage but the record is missing")
                }
                return try archive.memberBytes(storage, budget: context.budget)  // inflated only when referenced
            }
        }
        let interpreter = TorchPickleInterpreter(form: .zip, limits: limits, resolveRecord: resolve)
        let machine = PickleMachine(bytes: pickle.buffer, file: file, record: record, limits: limits, interpreter: interpreter,
                                    globals: context.globals)
        return try withExtendedLifetime(pickle) {
            try machine.run(requireEnd: true) { root, _ in try consume(root, interpreter) }
        }
    }
}
