import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// How far a committed write is guaranteed.
public enum WriteDurability: Sendable {
    /// Rename-atomic: any failure of the writing process (error, crash, kill) leaves the old file or
    /// none, never a partial one. What the reference safetensors writer and `torch.save` give.
    case atomic
    /// Also survives a power loss: the data and the folder entry are fsynced before and after the rename.
    case durable
}

/// Writes a file so that the destination either keeps its old content or gets the complete new
/// content, never a partial file: bytes go to a sibling temp file in the same folder (same file
/// system, so rename is atomic), which is renamed over the destination on `commit()` (fsynced
/// first with `.durable`). Dropping the writer without committing removes the temp file.
/// Not thread-safe.
///
/// What may be at the destination is `WriteOptions`' business (`WriteDestination.check`, made on
/// opening and again just before the rename): only a regular file is ever replaced, and its permission
/// bits are kept; a symlink, folder, device or FIFO is refused. With `temporaries` the temp file is
/// booked so a signal handler can remove it. Opening also removes stale temp files of this
/// destination left by writers that were killed (their PID, in the name, no longer runs).
///
/// Large outputs: give `expectedSize` so the file is allocated up front (a full disk fails before
/// any writing, and the file system skips per-block delayed allocation), and the writer starts
/// write-back every `writebackInterval` bytes so the disk works while we copy and the final fsync
/// has little left to do.
public final class AtomicFileWriter {
    public let destination: String
    public let temporaryPath: String
    /// Bytes accepted so far (buffered or written).
    public private(set) var bytesWritten: Int64 = 0

    private var descriptor: Int32
    private let buffer: UnsafeMutableRawBufferPointer
    private let bufferStart: UnsafeMutableRawPointer
    private var buffered = 0
    private var finished = false
    /// Bytes handed to the kernel, and where the not-yet-started write-back begins.
    private var flushed: Int64 = 0
    private var writebackStart: Int64 = 0
    private var preallocated: Int64 = 0
    private let options: WriteOptions
    private var durability: WriteDurability { options.durability }

    /// Block size for buffered writes; large blocks keep syscalls rare for multi-GB outputs.
    public static let blockSize = 4 << 20
    /// Pieces at least this large skip the buffer.
    public static let directWriteMinimum = 64 << 10
    /// Start write-back of every 32 MiB as it is written.
    public static let writebackInterval: Int64 = 32 << 20

    public convenience init(destination: String, expectedSize: Int64? = nil, durability: WriteDurability = .atomic) throws {
        try self.init(destination: destination, expectedSize: expectedSize, options: WriteOptions(durability: durability))
    }

    public init(destination: String, expectedSize: Int64? = nil, options: WriteOptions) throws {
        self.destination = destination
        self.options = options
        let url = URL(fileURLWithPath: destination)
        let folder = url.deletingLastPathComponent().path
        let name = url.lastPathComponent
        guard !name.isEmpty, name != "/" else {
            throw WeightsError(.io, file: destination, "destination is not a file path")
        }
        let keptMode = try WriteDestination.check(destination, options: options)
        for stale in StaleTemporaries.find(in: folder, destinationName: name, markers: ["tmp"]) { unlink(stale) }
        var opened: Int32 = -1
        var candidate = ""
        for _ in 0..<16 {
            candidate = folder + "/." + name + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            let path = candidate
            let created: Int32? = try options.temporaries.create(path, .file) {
                let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
                guard fd >= 0 else {
                    if errno == EEXIST { return nil }
                    throw WeightsError(.io, file: destination, "cannot create a temp file in \(folder): \(String(cString: strerror(errno)))")
                }
                return fd
            }
            if let created {
                opened = created
                break
            }
        }
        guard opened >= 0 else {
            throw WeightsError(.io, file: destination, "cannot create a temp file in \(folder): every name tried exists")
        }
        // The replacement keeps the replaced file's permissions (the umask applied to 0644 otherwise).
        if let keptMode { _ = fchmod(opened, keptMode) }
        descriptor = opened
        temporaryPath = candidate
        let block = UnsafeMutableRawPointer.allocate(byteCount: Self.blockSize, alignment: 64)
        bufferStart = block
        buffer = UnsafeMutableRawBufferPointer(start: block, count: Self.blockSize)
        if let expectedSize, expectedSize > 0, let allocate = LinuxFileCalls.fallocate {
            if allocate(opened, 0, 0, expectedSize) == 0 {
                preallocated = expectedSize
            } else if errno == ENOSPC || errno == EFBIG {
                let reason = String(cString: strerror(errno))
                abort()
                throw WeightsError(.io, file: destination, "cannot allocate \(expectedSize) bytes for the output: \(reason)")
            }  // other errors (EOPNOTSUPP on some file systems): write without preallocation
        }
    }

    deinit {
        if !finished { abort() }
        bufferStart.deallocate()
    }

    /// Appends bytes. Small pieces are gathered in the buffer; from `directWriteMinimum` on they go
    /// straight to the file, since a copy through the buffer would cost more than the system call saves.
    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard !finished else { throw WeightsError(.io, file: destination, "write after commit or abort") }
        guard bytes.count > 0, let source = bytes.baseAddress else { return }
        if bytes.count >= Self.directWriteMinimum {
            try flush()
            try writeFully(bytes)
        } else {
            if buffered + bytes.count > buffer.count { try flush() }
            (bufferStart + buffered).copyMemory(from: source, byteCount: bytes.count)
            buffered += bytes.count
        }
        bytesWritten += Int64(bytes.count)
    }

    public func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try write($0) }
    }

    /// Fills up to `count` bytes in place through `fill`, which gets a buffer slice to write into;
    /// avoids an extra copy when the producer converts data anyway.
    public func withWritableBlock(maximum count: Int, _ fill: (UnsafeMutableRawBufferPointer) throws -> Int) throws {
        guard !finished else { throw WeightsError(.io, file: destination, "write after commit or abort") }
        if buffer.count - buffered < min(count, buffer.count) { try flush() }
        let room = min(count, buffer.count - buffered)
        let produced = try fill(UnsafeMutableRawBufferPointer(rebasing: buffer[buffered..<(buffered + room)]))
        precondition(produced >= 0 && produced <= room, "fill reported more bytes than it was given")
        buffered += produced
        bytesWritten += Int64(produced)
    }

    /// Flushes, renames over the destination (fsyncing file and folder when `.durable`).
    public func commit() throws {
        guard !finished else { throw WeightsError(.io, file: destination, "commit after commit or abort") }
        do {
            try flush()
            // Preallocation set the size; the content decides it.
            if preallocated != 0, preallocated != flushed, ftruncate(descriptor, off_t(flushed)) != 0 {
                throw WeightsError(.io, file: destination, "cannot set the file size: \(String(cString: strerror(errno)))")
            }
            if durability == .durable, fsync(descriptor) != 0 {
                throw WeightsError(.io, file: destination, "fsync failed: \(String(cString: strerror(errno)))")
            }
            guard close(descriptor) == 0 else {
                descriptor = -1
                throw WeightsError(.io, file: destination, "close failed: \(String(cString: strerror(errno)))")
            }
            descriptor = -1
            try options.temporaries.finish(temporaryPath) {
                // What is at the destination may have changed since opening; rename(2) would replace anything.
                try WriteDestination.check(destination, options: options)
                try moveIntoPlace()
            }
            options.temporaries.forget(temporaryPath)
        } catch {
            abort()
            throw error
        }
        finished = true
        if durability == .durable { syncFolder() }
    }

    /// Discards everything written: closes and removes the temp file. The destination is untouched.
    public func abort() {
        if descriptor >= 0 { close(descriptor) }
        descriptor = -1
        if !finished {
            unlink(temporaryPath)
            options.temporaries.forget(temporaryPath)
        }
        finished = true
    }

    /// rename(2), or with `.refuse` a rename that fails rather than replace a file that appeared meanwhile.
    private func moveIntoPlace() throws {
        if options.existing == .refuse, let renameNoReplace = LinuxFileCalls.renameat2 {
            if renameNoReplace(LinuxFileCalls.currentFolder, temporaryPath, LinuxFileCalls.currentFolder, destination,
                               LinuxFileCalls.renameNoReplace) == 0 { return }
            if errno == EEXIST {
                throw WeightsError(.io, file: destination, "the output appeared while it was being written; it is left as it is (--overwrite replaces it)")
            }
            guard errno == EINVAL || errno == ENOSYS else {  // else: the file system cannot; the check above stands
                throw WeightsError(.io, file: destination, "cannot rename the temp file into place: \(String(cString: strerror(errno)))")
            }
        }
        guard rename(temporaryPath, destination) == 0 else {
            throw WeightsError(.io, file: destination, "cannot rename the temp file into place: \(String(cString: strerror(errno)))")
        }
    }

    private func flush() throws {
        guard buffered > 0 else { return }
        try writeFully(UnsafeRawBufferPointer(rebasing: buffer[0..<buffered]))
        buffered = 0
    }

    private func writeFully(_ bytes: UnsafeRawBufferPointer) throws {
        guard var pointer = bytes.baseAddress else { return }
        var left = bytes.count
        while left > 0 {
            let written = Glibc.write(descriptor, pointer, min(left, 1 << 30))
            if written < 0 {
                if errno == EINTR { continue }
                if errno == EFAULT {
                    // The bytes come from a file mapping that no longer backs them.
                    throw WeightsError(.io, file: destination,
                                       "the input's bytes could not be read: was the input file truncated or replaced while it was being converted?")
                }
                throw WeightsError(.io, file: destination, "write failed: \(String(cString: strerror(errno)))")
            }
            if written == 0 { throw WeightsError(.io, file: destination, "write made no progress") }
            pointer += written
            left -= written
        }
        advance(by: Int64(bytes.count))
    }

    /// Books `count` bytes handed to the kernel; with `.durable`, starts their write-back early.
    private func advance(by count: Int64) {
        flushed += count
        if durability == .durable, flushed - writebackStart >= Self.writebackInterval, let startWriteback = LinuxFileCalls.syncFileRange {
            // Asynchronous: queues the range for the disk and returns (fsync still makes it durable).
            _ = startWriteback(descriptor, writebackStart, flushed - writebackStart, LinuxFileCalls.syncFileRangeWrite)
            writebackStart = flushed
        }
    }

    private func syncFolder() {
        let folder = URL(fileURLWithPath: destination).deletingLastPathComponent().path
        let fd = open(folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 {
            _ = fsync(fd)
            close(fd)
        }
    }
}

/// Linux calls that Swift's Glibc module does not export (GNU extensions), looked up once at run
/// time; nil where the C library lacks them, and callers then simply do without.
enum LinuxFileCalls {
    typealias Fallocate = @convention(c) (Int32, Int32, Int64, Int64) -> Int32
    typealias SyncFileRange = @convention(c) (Int32, Int64, Int64, UInt32) -> Int32
    typealias Renameat2 = @convention(c) (Int32, UnsafePointer<CChar>, Int32, UnsafePointer<CChar>, UInt32) -> Int32

    /// `fallocate(fd, mode, offset, length)`; mode 0 allocates and extends the size.
    static let fallocate: Fallocate? = lookup("fallocate64", as: Fallocate.self)
    /// `sync_file_range(fd, offset, count, flags)`.
    static let syncFileRange: SyncFileRange? = lookup("sync_file_range", as: SyncFileRange.self)
    /// SYNC_FILE_RANGE_WRITE: start write-out of dirty pages in the range, do not wait.
    static let syncFileRangeWrite: UInt32 = 2
    /// `renameat2(olddirfd, old, newdirfd, new, flags)` (glibc 2.28).
    static let renameat2: Renameat2? = lookup("renameat2", as: Renameat2.self)
    /// RENAME_NOREPLACE: fail with EEXIST rather than replace the new path.
    static let renameNoReplace: UInt32 = 1
    /// AT_FDCWD.
    static let currentFolder: Int32 = -100

    private static func lookup<F>(_ symbol: String, as type: F.Type) -> F? {
        guard let handle = dlopen(nil, RTLD_NOW), let address = dlsym(handle, symbol) else { return nil }
        return unsafeBitCast(address, to: type)
    }
}

public enum AtomicFile {
    /// Runs `body` with a writer for `path` and commits when it returns; any error aborts.
    /// `expectedSize` (when known) preallocates the file; see `AtomicFileWriter`.
    public static func write(to path: String, expectedSize: Int64? = nil, durability: WriteDurability = .atomic,
                             _ body: (AtomicFileWriter) throws -> Void) throws {
        try write(to: path, expectedSize: expectedSize, options: WriteOptions(durability: durability), body)
    }

    /// `write(to:)` with every write option.
    public static func write(to path: String, expectedSize: Int64? = nil, options: WriteOptions,
                             _ body: (AtomicFileWriter) throws -> Void) throws {
        let writer = try AtomicFileWriter(destination: path, expectedSize: expectedSize, options: options)
        do {
            try body(writer)
            try writer.commit()
        } catch {
            writer.abort()
            throw error
        }
    }

    /// Writes `bytes` atomically (small files: JSON configs, indexes).
    public static func write(_ bytes: [UInt8], to path: String) throws {
        try write(to: path) { try $0.write(bytes) }
    }
}
