import Foundation

/// Converts any readable weights (a file of any supported format, a sharded index, a folder) to one
/// safetensors file with the same tensor names: what `sdsclip convert` does, as a library call so the
/// CLI, tests and benchmarks share one code path. Views are packed; float tensors are cast to
/// `dtype` when given, other dtypes are kept. The output is written atomically, and never over one of
/// the input's files.
public enum WeightsConverter {
    /// What a conversion read and wrote.
    public struct Summary: Sendable {
        public let format: WeightFormat
        public let tensorCount: Int
        /// Tensor bytes read from the input (element bytes, not file bytes).
        public let bytesRead: Int
    }

    /// Called once with the opened input; returns the progress callback to use (nil for none), so
    /// callers can decide on progress display from the input's size.
    public typealias Opened = (_ store: WeightStore) -> SafetensorsWriter.Progress?

    /// Converts `input` to the safetensors file `output`. `progress` is asked once, with the opened
    /// store, for a progress callback (return nil for none).
    @discardableResult
    public static func convert(input: String, output: String, dtype: DType? = nil, options: ReadOptions = ReadOptions(),
                               durability: WriteDurability = .atomic, progress: Opened? = nil) throws -> Summary {
        try convert(input: input, output: output, dtype: dtype, options: options, writing: WriteOptions(durability: durability), progress: progress)
    }

    /// `convert` with every write option. The output is checked before the input is read, and it is
    /// never one of the input's files (`writing.protected` gains them).
    @discardableResult
    public static func convert(input: String, output: String, dtype: DType? = nil, options: ReadOptions = ReadOptions(),
                               writing: WriteOptions, progress: Opened? = nil) throws -> Summary {
        var writing = writing
        writing.protected = ProtectedFiles(paths: [input])
        try WriteDestination.check(output, options: writing)
        let store = try WeightsReader.open(input, options: options)
        writing.protected = ProtectedFiles(paths: [input] + store.sources)
        try write(store, to: output, dtype: dtype, options: writing, progress: progress?(store))
        return Summary(format: store.format, tensorCount: store.count, bytesRead: store.totalBytes)
    }

    /// Writes an opened store to `output` as `convert` does.
    public static func write(_ store: WeightStore, to output: String, dtype: DType? = nil,
                             durability: WriteDurability = .atomic, progress: SafetensorsWriter.Progress? = nil) throws {
        try write(store, to: output, dtype: dtype, options: WriteOptions(durability: durability, protected: ProtectedFiles(paths: store.sources)),
                  progress: progress)
    }

    /// `write` with every write option.
    public static func write(_ store: WeightStore, to output: String, dtype: DType? = nil,
                             options: WriteOptions, progress: SafetensorsWriter.Progress? = nil) throws {
        let tensors = try store.orderedRecords.map { record -> SafetensorsWriter.Tensor in
            try SafetensorsWriter.Tensor(record: record, castTo: record.dtype.isFloatingPoint ? dtype : nil)
        }
        // safetensors metadata carries over; other formats get the tag save_file's users expect.
        var metadata = store.format == .safetensors || store.format == .shardedSafetensors ? store.metadata : [:]
        if metadata["format"] == nil { metadata["format"] = "pt" }
        try SafetensorsWriter.write(tensors, metadata: metadata, to: output, options: options, progress: progress)
    }
}
