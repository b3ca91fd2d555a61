import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Maps a whole file read-only (MAP_PRIVATE). Tensor records slice the mapping without copying;
/// the mapping lives as long as any slice of it (`ByteOwner` reference counting).
public enum MappedFile {
    public static func map(_ path: String) throws -> ByteOwner {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw WeightsError(.io, file: path, "cannot open: \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            throw WeightsError(.io, file: path, "cannot stat: \(String(cString: strerror(errno)))")
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw WeightsError(.io, file: path, "not a regular file")
        }
        let size = Int(info.st_size)
        if size == 0 {
            return ByteOwner(bytes: UnsafeRawBufferPointer(start: nil, count: 0), release: nil)
        }
        guard let base = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), base != MAP_FAILED else {
            throw WeightsError(.io, file: path, "cannot map \(size) bytes: \(String(cString: strerror(errno)))")
        }
        return ByteOwner(bytes: UnsafeRawBufferPointer(start: base, count: size)) { buffer in
            if let start = buffer.baseAddress { munmap(UnsafeMutableRawPointer(mutating: start), buffer.count) }
        }
    }

    /// Hints the kernel that the range will be read soon and in order (large conversions).
    public static func adviseSequential(_ slice: ByteSlice) {
        guard slice.count > 0, let base = slice.owner.bytes.baseAddress else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = (slice.range.lowerBound / page) * page
        let length = slice.range.upperBound - start
        // Two separate advice values, not flags: read ahead aggressively, and fetch the range now.
        _ = madvise(UnsafeMutableRawPointer(mutating: base + start), length, MADV_SEQUENTIAL)
        _ = madvise(UnsafeMutableRawPointer(mutating: base + start), length, MADV_WILLNEED)
    }
}
