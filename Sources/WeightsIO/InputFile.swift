import Foundation
#if canImport(Glibc)
import Glibc
#endif
#if os(Linux)
import Synchronization
#endif

/// Opens the files users hand the tool (weights, indexes, configurations, vocabularies). Only
/// regular files are read: a FIFO, socket or device can block forever or never end. The type is
/// checked with `stat` before opening (a blocking `open` of a FIFO waits for a writer), the open is
/// non-blocking anyway, and the opened descriptor is checked again, so a path swapped for a FIFO
/// between the two calls cannot hang the tool either.
public enum InputFile {
    /// The opened descriptor (close it) and the file's size.
    public static func openRegular(_ path: String) throws -> (fd: Int32, size: Int) {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw WeightsError(.io, file: path, "cannot open: \(String(cString: strerror(errno)))")
        }
        try requireRegular(info, path: path)
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else {
            throw WeightsError(.io, file: path, "cannot open: \(String(cString: strerror(errno)))")
        }
        guard fstat(fd, &info) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw WeightsError(.io, file: path, "cannot stat: \(reason)")
        }
        do { try requireRegular(info, path: path) } catch {
            close(fd)
            throw error
        }
        // Reads of a regular file never block; clear the flag so nothing downstream sees EAGAIN.
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
        return (fd, Int(info.st_size))
    }

    /// The whole file (small files: JSON configurations, indexes, vocabularies), at most `maxBytes`.
    public static func readAll(_ path: String, maxBytes: Int = 256 << 20) throws -> [UInt8] {
        let (fd, size) = try openRegular(path)
        defer { close(fd) }
        guard size <= maxBytes else {
            throw WeightsError(.limit, file: path, "the file is \(size) bytes, more than the \(maxBytes) read for it")
        }
        var bytes = [UInt8](repeating: 0, count: size)
        var filled = 0
        while filled < size {
            let got = bytes.withUnsafeMutableBytes { raw -> Int in
                guard let base = raw.baseAddress else { return 0 }
                return read(fd, base + filled, size - filled)
            }
            if got < 0 {
                if errno == EINTR { continue }
                throw WeightsError(.io, file: path, "cannot read: \(String(cString: strerror(errno)))")
            }
            if got == 0 { break }  // shrank since fstat: return what is there
            filled += got
        }
        return Array(bytes[0..<filled])
    }

    private static func requireRegular(_ info: stat, path: String) throws {
        let type = info.st_mode & S_IFMT
        guard type == S_IFREG else {
            throw WeightsError(.io, file: path, "is \(describe(type)), not a regular file; only regular files are read")
        }
    }

    private static func describe(_ type: mode_t) -> String {
        switch type {
        case S_IFIFO: return "a FIFO (named pipe)"
        case S_IFSOCK: return "a socket"
        case S_IFCHR: return "a character device"
        case S_IFBLK: return "a block device"
        case S_IFDIR: return "a folder"
        default: return "a special file"
        }
    }
}

/// Turns reads past the end of a file mapping into zeros plus a recorded fault, instead of SIGBUS.
///
/// Readers and converters work straight from `mmap`ed inputs (zero-copy, flat memory for multi-GB
/// files). If another process truncates a file meanwhile, touching a page past its new end raises
/// SIGBUS and the process dies with its temp file left. Checking the size before each access is
/// racy, and reading through `pread` would cover only some paths and give up zero-copy. Instead a
/// SIGBUS handler maps a zero page over the faulting page (`BUS_ADRERR`: a page with no file data
/// behind it) and counts the fault; the read resumes, and readers and writers compare the count
/// before they return or commit, then fail with an error naming the file, leaving nothing behind.
/// Any other SIGBUS goes to the action installed before (by default, the process ends as before).
/// The handler is process-wide: a truncated mapping made by other code reads as zeros too, and the
/// count it bumps only makes a concurrent WeightsIO read fail (never succeed wrongly).
public enum TruncationGuard {
    /// Faults handled so far in this process. Compare a value taken before a read with one after it.
    public static var faultCount: Int {
        #if os(Linux)
        return truncationFaults.load(ordering: .acquiring)
        #else
        return 0
        #endif
    }

    /// Installs the handler once (later calls do nothing); `MappedFile.map` calls it.
    public static func install() {
        #if os(Linux)
        _ = busHandlerInstalled
        #endif
    }

    /// Throws if a fault was handled since `before`, or if one of the mapped `inputs` is now shorter
    /// than its mapping (a page patched by an earlier fault reads as zeros without faulting again).
    /// The error names the shrunken files (or all mapped inputs when the fault cannot be placed).
    public static func check(since before: Int, inputs: [ByteOwner]) throws {
        var seen = Set<ObjectIdentifier>()
        let mapped = inputs.filter { $0.isFileMapping && $0.file != nil && seen.insert(ObjectIdentifier($0)).inserted }
        let shrunk = mapped.filter { owner in
            var info = stat()
            // A removed or renamed path says nothing about the mapped inode; only a shorter file counts.
            return owner.file.map { stat($0, &info) == 0 && Int(info.st_size) < owner.bytes.count } ?? false
        }
        guard faultCount != before || !shrunk.isEmpty else { return }
        var files: [String] = []
        for file in (shrunk.isEmpty ? mapped : shrunk).compactMap(\.file) where !files.contains(file) { files.append(file) }
        throw WeightsError(.io, file: files.isEmpty ? "<input>" : files.joined(separator: ", "),
                           "the file shrank while it was being read (bytes past its new end read as zeros); the result was discarded")
    }
}

#if os(Linux)
// Process-wide by nature: a signal handler has no context but globals. Both are set once.
private let truncationFaults = Atomic<Int>(0)
/// Written once, by the `sigaction` call that installs the handler; read only by the handler.
nonisolated(unsafe) private let previousBusAction: UnsafeMutablePointer<sigaction> = {
    let action = UnsafeMutablePointer<sigaction>.allocate(capacity: 1)
    action.initialize(to: sigaction())
    return action
}()
private let busHandlerInstalled: Bool = {
    // Initialise everything the handler reads before it can run (lazy globals must not start there).
    _ = truncationFaults.load(ordering: .relaxed)
    _ = MappedFile.pageSize
    var action = sigaction()
    action.__sigaction_handler.sa_sigaction = { signal, info, context in handleBusFault(signal, info, context) }
    action.sa_flags = SA_SIGINFO | SA_ONSTACK
    sigemptyset(&action.sa_mask)
    return sigaction(SIGBUS, &action, previousBusAction) == 0
}()

private func handleBusFault(_ signal: Int32, _ info: UnsafeMutablePointer<siginfo_t>?, _ context: UnsafeMutableRawPointer?) {
    // BUS_ADRERR (2): the page lies past the end of its file.
    if let info, info.pointee.si_code == 2, let address = info.pointee._sifields._sigfault.si_addr {
        let page = UInt(bitPattern: address) & ~UInt(MappedFile.pageSize - 1)
        if let start = UnsafeMutableRawPointer(bitPattern: page),
           mmap(start, MappedFile.pageSize, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != MAP_FAILED {
            truncationFaults.add(1, ordering: .releasing)
            return  // the faulting read is retried and sees zeros
        }
    }
    // Not a truncated mapping: put the previous action back; returning re-raises the fault under it.
    _ = sigaction(SIGBUS, previousBusAction, nil)
}
#endif
