import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Maps a whole file read-only (MAP_PRIVATE). Tensor records slice the mapping without copying;
/// the mapping lives as long as any slice of it (`ByteOwner` reference counting).
public enum MappedFile {
    public static func map(_ path: String) throws -> ByteOwner {
        // Regular files only, opened without blocking (a FIFO would wait forever for a writer).
        let (fd, size) = try InputFile.openRegular(path)
        defer { close(fd) }
        // A file that shrinks while mapped reads as zeros and is reported, instead of SIGBUS.
        TruncationGuard.install()
        if size == 0 {
            return ByteOwner(bytes: UnsafeRawBufferPointer(start: nil, count: 0), release: nil)
        }
        guard let base = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), base != MAP_FAILED else {
            throw WeightsError(.io, file: path, "cannot map \(size) bytes: \(String(cString: strerror(errno)))")
        }
        return ByteOwner(bytes: UnsafeRawBufferPointer(start: base, count: size), isFileMapping: true, file: path) { buffer in
            if let start = buffer.baseAddress { munmap(UnsafeMutableRawPointer(mutating: start), buffer.count) }
        }
    }

    /// Hints the kernel that the range will be read soon and in order (large conversions).
    public static func adviseSequential(_ slice: ByteSlice) {
        guard slice.count > 0, let base = slice.owner.bytes.baseAddress else { return }
        let start = (slice.range.lowerBound / pageSize) * pageSize
        let length = slice.range.upperBound - start
        // Two separate advice values, not flags: read ahead aggressively, and fetch the range now.
        _ = madvise(UnsafeMutableRawPointer(mutating: base + start), length, MADV_SEQUENTIAL)
        _ = madvise(UnsafeMutableRawPointer(mutating: base + start), length, MADV_WILLNEED)
    }

    /// Starts reading the pages of `range` of a file mapping into the page cache, without waiting.
    public static func adviseWillNeed(of owner: ByteOwner, range: Range<Int>) {
        guard let pages = wholePages(of: owner, range: range) else { return }
        _ = madvise(pages.start, pages.length, MADV_WILLNEED)
    }

    /// Maps the pages of `range` of a file mapping into this process in one call (Linux 5.14+
    /// `MADV_POPULATE_READ`), ahead of a bulk read such as a `write` from the mapping. Older kernels
    /// refuse the advice and the pages simply fault in on access.
    public static func prefault(of owner: ByteOwner, range: Range<Int>) {
        guard let pages = wholePages(of: owner, range: range) else { return }
        _ = madvise(pages.start, pages.length, populateRead)
    }

    /// Drops this process's resident pages for `range` of a file mapping once they have been
    /// consumed, so streaming a multi-GB file does not count it all as resident memory. The data stays
    /// valid: a read-only private file mapping refills from the file (usually the page cache) on
    /// the next access. Does nothing for owners that are not file mappings (heap bytes would be lost).
    public static func releaseResidentPages(of owner: ByteOwner, range: Range<Int>) {
        // The kernel maps a page-cache folio (up to 2 MiB) whole when any page of it is touched, so
        // pages beside the range may be resident too; drop the whole 2 MiB blocks around it.
        // Neighbours' pages just fault back in if they are needed again.
        let start = range.lowerBound / releaseBlock * releaseBlock
        let end = (range.upperBound + releaseBlock - 1) / releaseBlock * releaseBlock
        guard let pages = wholePages(of: owner, range: start..<min(end, owner.bytes.count)) else { return }
        _ = madvise(pages.start, pages.length, MADV_DONTNEED)
    }

    /// The largest page-cache folio a file mapping maps at once (a PMD on x86-64 and arm64 with 4 KiB pages).
    private static let releaseBlock = 2 << 20

    /// The whole pages that cover `range` of a file mapping; nil for other owners or an empty range.
    private static func wholePages(of owner: ByteOwner, range: Range<Int>) -> (start: UnsafeMutableRawPointer, length: Int)? {
        guard owner.isFileMapping, !range.isEmpty, range.upperBound <= owner.bytes.count,
              let base = owner.bytes.baseAddress else { return nil }
        let start = (range.lowerBound / pageSize) * pageSize
        let end = min(((range.upperBound + pageSize - 1) / pageSize) * pageSize, owner.bytes.count)
        guard end > start else { return nil }
        return (UnsafeMutableRawPointer(mutating: base + start), end - start)
    }

    static let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))
    /// `MADV_POPULATE_READ` from <linux/mman.h>, which Glibc's Swift module does not export.
    private static let populateRead: Int32 = 22
}
