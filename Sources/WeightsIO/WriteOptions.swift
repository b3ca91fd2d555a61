import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What an atomic file write may do with a file already at its destination.
public enum ExistingFile: Sendable {
    /// Replace a regular file (keeping its permission bits). The library default.
    case replace
    /// Fail before anything is written, and again at the rename should one have appeared since
    /// (`convert` without `--overwrite`).
    case refuse
}

/// Input files a write must never replace or delete: a file that is one of them under any name
/// (the same device and inode: the path itself, a hard link, a path through a symlink), or a folder
/// holding one of them.
public struct ProtectedFiles: Sendable {
    struct Identity: Hashable, Sendable {
        let device: UInt64
        let inode: UInt64
    }

    let identities: [Identity: String]
    /// The inputs' real paths (symlinks resolved), to tell whether a folder to be replaced holds one.
    let realPaths: [String]

    public static let none = ProtectedFiles(paths: [])

    /// Existing files among `paths` (following symlinks); absent ones are skipped.
    public init(paths: [String]) {
        var identities: [Identity: String] = [:]
        var realPaths: [String] = []
        for path in paths {
            if let identity = Self.identity(of: path, followingLinks: true) { identities[identity] = path }
            if let real = Self.realPath(path) { realPaths.append(real) }
        }
        self.identities = identities
        self.realPaths = realPaths
    }

    /// The protected input that `path` is (same inode), if any.
    func input(sameAs path: String) -> String? {
        guard !identities.isEmpty, let identity = Self.identity(of: path, followingLinks: true) else { return nil }
        return identities[identity]
    }

    /// A protected input inside the folder `path` (or the folder itself), if any.
    func input(inside folder: String) -> String? {
        guard let real = Self.realPath(folder) else { return nil }
        return realPaths.first { $0 == real || $0.hasPrefix(real.hasSuffix("/") ? real : real + "/") }
    }

    static func identity(of path: String, followingLinks: Bool) -> Identity? {
        var info = stat()
        guard (followingLinks ? stat(path, &info) : lstat(path, &info)) == 0 else { return nil }
        return Identity(device: UInt64(info.st_dev), inode: UInt64(info.st_ino))
    }

    static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}

/// How an atomic write treats its destination and where it books its temp files.
public struct WriteOptions: Sendable {
    public var durability: WriteDurability
    public var existing: ExistingFile
    public var protected: ProtectedFiles
    /// Where the write registers its live temp files, so an interrupted process removes them; nil: none.
    public var temporaries: TemporaryFiles?

    public init(durability: WriteDurability = .atomic, existing: ExistingFile = .replace,
                protected: ProtectedFiles = .none, temporaries: TemporaryFiles? = nil) {
        (self.durability, self.existing, self.protected, self.temporaries) = (durability, existing, protected, temporaries)
    }
}

/// The checks every atomic write makes on its destination path, before writing and again just
/// before the rename. Only regular files are ever replaced: a symlink is refused (never written
/// through, never replaced by a file: give the path of its target), as are folders, devices,
/// FIFOs and sockets.
public enum WriteDestination {
    /// Checks `path` against `options`; returns the permission bits of the regular file there (to keep
    /// them on the replacement), nil when there is none.
    @discardableResult
    public static func check(_ path: String, options: WriteOptions) throws -> mode_t? {
        var info = stat()
        guard lstat(path, &info) == 0 else { return nil }  // absent (or unreachable: creating the temp file says why)
        let type = info.st_mode & S_IFMT
        switch type {
        case S_IFREG:
            break
        case S_IFLNK:
            let target = (try? FileManager.default.destinationOfSymbolicLink(atPath: path)).map { " (to \($0))" } ?? ""
            throw WeightsError(.io, file: path, "the output is a symbolic link\(target); sdsclip neither writes through nor replaces a link: give the path of the file itself")
        case S_IFDIR:
            throw WeightsError(.io, file: path, "the output is a folder, not a file")
        default:
            throw WeightsError(.io, file: path, "the output is a \(describe(type)), not a regular file; only regular files are written or replaced")
        }
        if let input = options.protected.input(sameAs: path) {
            throw WeightsError(.io, file: path, "the output is the input \(input) (the same file); write the output to another path")
        }
        if options.existing == .refuse {
            throw WeightsError(.io, file: path, "the output exists; choose another path or allow replacing it (--overwrite)")
        }
        return info.st_mode & 0o7777
    }

    static func describe(_ type: mode_t) -> String {
        switch type {
        case S_IFCHR: return "character device"
        case S_IFBLK: return "block device"
        case S_IFIFO: return "FIFO"
        case S_IFSOCK: return "socket"
        default: return "special file"
        }
    }
}
