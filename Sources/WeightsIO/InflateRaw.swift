import CZlib

/// Raw DEFLATE (no zlib header, windowBits -15) with an exact, pre-declared output size.
/// Used only for small TorchScript `code/` members; the caller caps `expectedSize`.
enum InflateRaw {
    static func inflate(_ input: UnsafeRawBufferPointer, expectedSize: Int, file: String, member: String) throws -> [UInt8] {
        func failure(_ message: String) -> WeightsError {
            WeightsError(.corrupt, file: file, at: "zip member '\(member)'", "DEFLATE data: \(message)")
        }
        guard input.count <= Int(UInt32.max), expectedSize <= Int(UInt32.max) else { throw failure("member too large to inflate") }
        var output = [UInt8](repeating: 0, count: expectedSize + 1)  // one spare byte detects overlong streams
        var stream = z_stream()
        guard inflateInit2_(&stream, -15, zlibVersion(), Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw failure("zlib could not be initialised")
        }
        defer { inflateEnd(&stream) }
        var scratch: UInt8 = 0
        let status: Int32 = output.withUnsafeMutableBufferPointer { out in
            withUnsafeMutablePointer(to: &scratch) { empty in
                // zlib never writes through next_in; an empty input still needs a valid pointer.
                let source = input.bindMemory(to: Bytef.self).baseAddress.map { UnsafeMutablePointer(mutating: $0) } ?? empty
                stream.next_in = input.isEmpty ? empty : source
                stream.avail_in = uInt(input.count)
                stream.next_out = out.baseAddress ?? empty
                stream.avail_out = out.baseAddress == nil ? 0 : uInt(out.count)
                return CZlib.inflate(&stream, Z_FINISH)
            }
        }
        guard status == Z_STREAM_END else { throw failure("stream is malformed or truncated (zlib status \(status))") }
        guard Int(stream.total_out) == expectedSize else {
            throw failure("inflated to \(stream.total_out) bytes but the directory declares \(expectedSize)")
        }
        guard stream.avail_in == 0 else { throw failure("\(stream.avail_in) bytes follow the end of the stream") }
        output.removeLast()
        return output
    }
}
