/// Reads PyTorch checkpoints without running any of their code: `torch.save` zips, TorchScript
/// archives (`torch.jit.save`) and the legacy stacked-pickle format. Tensors are zero-copy views of
/// the mapped file and keep torch's strides and storage offsets.
public enum TorchCheckpointReader {
    public static func read(path: String, limits: PickleLimits = .init()) throws -> WeightStore {
        try read(owner: try MappedFile.map(path), file: path, limits: limits)
    }

    /// Reads from bytes that are already mapped; `file` names them in errors and `WeightStore.sources`.
    public static func read(owner: ByteOwner, file: String, limits: PickleLimits = .init()) throws -> WeightStore {
        let bytes = owner.bytes
        if bytes.count >= 4, bytes[0] == 0x50, bytes[1] == 0x4B, bytes[2] == 0x03, bytes[3] == 0x04 {
            let archive = try ZipArchive(owner: owner, file: file, limits: limits.zip)
            return try TorchZipCheckpoint.read(archive: archive, limits: limits)
        }
        if TorchLegacyCheckpoint.hasMagic(bytes) {
            return try TorchLegacyCheckpoint.read(owner: owner, file: file, limits: limits)
        }
        if bytes.count >= 262, bytes[257] == 0x75, bytes[258] == 0x73, bytes[259] == 0x74, bytes[260] == 0x61, bytes[261] == 0x72 {
            throw WeightsError(.unsupported, file: file, "the tar-based torch format (torch < 0.4) is not supported")
        }
        throw WeightsError(.format, file: file, at: "byte 0",
                           "not a torch checkpoint: expected a zip archive (PK\\x03\\x04) or the legacy torch magic number")
    }
}
