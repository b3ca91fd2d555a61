import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The temp files and folders a process's writes have in flight, so that a signal that stops the
/// process can remove them first (`sdsclip`'s `InterruptCleanup` calls `removeAll` from its signal
/// thread). Creating, renaming into place and `removeAll` all run under one lock: a temp entry is
/// either booked here before it exists on disk or already renamed into place, and after `removeAll`
/// no new one is created and none is renamed.
public final class TemporaryFiles: @unchecked Sendable {
    public enum Kind: Sendable { case file, folder }

    private let lock = NSLock()
    private var live: [String: Kind] = [:]
    private var stopped = false

    public init() {}

    /// The paths currently booked (tests).
    public var paths: [String] { lock.withLock { live.keys.sorted() } }

    /// Runs `create` (which makes `path` on disk, or returns nil when it did not) and books `path`,
    /// atomically with respect to `removeAll`.
    func create<T>(_ path: String, _ kind: Kind, _ create: () throws -> T?) throws -> T? {
        try lock.withLock {
            guard !stopped else { throw Self.stoppedError(path) }
            let made = try create()
            if made != nil { live[path] = kind }
            return made
        }
    }

    /// Runs `move` (the rename of `path` into place) and forgets `path`, atomically with respect to `removeAll`.
    func finish<T>(_ path: String, _ move: () throws -> T) throws -> T {
        try lock.withLock {
            guard !stopped else { throw Self.stoppedError(path) }
            return try move()
        }
    }

    /// Forgets `path` (renamed into place or removed by its writer).
    func forget(_ path: String) {
        lock.withLock { live[path] = nil }
    }

    /// Removes every booked temp file and folder and refuses new ones (the process is stopping).
    public func removeAll() {
        lock.withLock {
            stopped = true
            for (path, kind) in live {
                switch kind {
                case .file: unlink(path)
                case .folder:
                    // Renamed first, so a writer still running cannot add to it by path while it is removed.
                    let doomed = path + ".removing"
                    try? FileManager.default.removeItem(atPath: rename(path, doomed) == 0 ? doomed : path)
                }
            }
            live = [:]
        }
    }

    static func stoppedError(_ path: String) -> WeightsError {
        WeightsError(.io, file: path, "the process is being stopped by a signal; nothing more is written")
    }
}

extension Optional where Wrapped == TemporaryFiles {
    /// `create` booked in the registry when there is one.
    func create<T>(_ path: String, _ kind: TemporaryFiles.Kind, _ body: () throws -> T?) throws -> T? {
        guard let registry = self else { return try body() }
        return try registry.create(path, kind, body)
    }

    func finish<T>(_ path: String, _ body: () throws -> T) throws -> T {
        guard let registry = self else { return try body() }
        return try registry.finish(path, body)
    }

    func forget(_ path: String) { self?.forget(path) }
}

/// Leftovers of writers that were killed (SIGKILL, power loss) before they could clean up: hidden
/// siblings `.NAME.<marker>-PID…` of a destination whose PID no longer runs. The next write to the
/// same destination removes them.
enum StaleTemporaries {
    /// Names in `folder` that start with `.NAME.<marker>-PID` for a `marker` of `markers`, with the
    /// PID of a process that no longer exists (kill(pid, 0) fails with ESRCH; never this process).
    static func find(in folder: String, destinationName name: String, markers: [String]) -> [String] {
        guard let directory = opendir(folder) else { return [] }
        defer { closedir(directory) }
        var stale: [String] = []
        let prefixes = markers.map { "." + name + "." + $0 + "-" }
        while let entry = readdir(directory) {
            let entryName = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            guard let prefix = prefixes.first(where: { entryName.hasPrefix($0) }) else { continue }
            let digits = entryName.dropFirst(prefix.count).prefix { $0.isASCII && $0.isNumber }
            guard let pid = Int32(digits), pid > 0, pid != getpid() else { continue }
            if kill(pid, 0) != 0, errno == ESRCH { stale.append(folder + "/" + entryName) }
        }
        return stale
    }
}
