import CZlib

/// Raw DEFLATE (no zlib header, windowBits -15) with an exact, pre-declared output size, which the
/// caller has already capped: it is all that is ever allocated, and a stream that inflates to more
/// or less is an error.
enum InflateRaw {
    static func inflate(_ input: UnsafeRawBufferPointer, expectedSize: Int, file: String, member: String) throws -> [UInt8] {
        var output = [UInt8](repeating: 0, count: expectedSize + 1)  // one spare byte detects overlong streams
        try output.withUnsafeMutableBytes { try inflate(input, into: $0, file: file, member: member) }
        output.removeLast()
        return output
    }

    /// Inflates into memory owned by the returned object (tensor data of a re-packed torch file).
    static func inflateOwned(_ input: UnsafeRawBufferPointer, expectedSize: Int, file: String, member: String) throws -> ByteOwner {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: expectedSize + 1, alignment: 64)
        do {
            try inflate(input, into: buffer, file: file, member: member)
        } catch {
            buffer.deallocate()
            throw error
        }
        return ByteOwner(bytes: UnsafeRawBufferPointer(start: buffer.baseAddress, count: expectedSize)) { bytes in
            UnsafeMutableRawBufferPointer(mutating: bytes).deallocate()
        }
    }

    /// `output` is the declared size plus one spare byte.
    private static func inflate(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer,
                                file: String, member: String) throws {
        func failure(_ message: String) -> WeightsError {
            WeightsError(.corrupt, file: file, at: "zip member '\(member)'", "DEFLATE data: \(message)")
        }
        let expectedSize = output.count - 1
        guard input.count <= Int(UInt32.max), output.count <= Int(UInt32.max) else { throw failure("member too large to inflate") }
        var stream = z_stream()
        guard inflateInit2_(&stream, -15, zlibVersion(), Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw failure("zlib could not be initialised")
        }
        defer { inflateEnd(&stream) }
        var scratch: UInt8 = 0
        let status: Int32 = withUnsafeMutablePointer(to: &scratch) { empty in
            // zlib never writes through next_in; an empty input still needs a valid pointer.
            let source = input.bindMemory(to: Bytef.self).baseAddress.map { UnsafeMutablePointer(mutating: $0) } ?? empty
            stream.next_in = input.isEmpty ? empty : source
            stream.avail_in = uInt(input.count)
            stream.next_out = output.bindMemory(to: Bytef.self).baseAddress ?? empty
            stream.avail_out = output.baseAddress == nil ? 0 : uInt(output.count)
            return CZlib.inflate(&stream, Z_FINISH)
        }
        if status != Z_STREAM_END, stream.avail_out == 0 {
            throw failure("the stream inflates to more than the declared \(expectedSize) bytes")
        }
        guard status == Z_STREAM_END else { throw failure("stream is malformed or truncated (zlib status \(status))") }
        guard Int(stream.total_out) == expectedSize else {
            throw failure("inflated to \(stream.total_out) bytes but the directory declares \(expectedSize)")
        }
        guard stream.avail_in == 0 else { throw failure("\(stream.avail_in) bytes follow the end of the stream") }
    }
}
