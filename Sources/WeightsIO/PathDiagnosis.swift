import Foundation

/// Says why a path cannot be used, in terms of what is really there: `FileManager.fileExists`
/// answers false for a symbolic link loop or a link to nothing, which is not "no such file".
public enum PathDiagnosis {
    /// Why `path` does not resolve to anything (call when an existence check failed).
    public static func whyMissing(_ path: String) -> String {
        var info = stat()
        if stat(path, &info) == 0 { return "exists but could not be examined" }
        let error = errno
        switch error {
        case ELOOP:
            return "a symbolic link loop (too many levels of symbolic links)"
        case EACCES:
            return "permission denied on a folder on the way to it"
        case ENOTDIR:
            return "a part of the path before the last is not a folder"
        case ENAMETOOLONG:
            return "the path is too long"
        case ENOENT:
            var link = stat()
            if lstat(path, &link) == 0, (link.st_mode & S_IFMT) == S_IFLNK {
                let target = (try? FileManager.default.destinationOfSymbolicLink(atPath: path)) ?? "?"
                return "a symbolic link to '\(target)', which does not exist"
            }
            return "no such file or folder"
        default:
            return String(cString: strerror(error))
        }
    }

    /// Nil when `path` is a regular file (after following links); otherwise what it is instead,
    /// so callers can refuse folders, FIFOs and devices before opening them.
    public static func notARegularFile(_ path: String) -> String? {
        var info = stat()
        guard stat(path, &info) == 0 else { return whyMissing(path) }
        return kindProblem(mode: info.st_mode)
    }

    /// What a non-regular file type is, as a reason to refuse it; nil for a regular file.
    public static func kindProblem(mode: mode_t) -> String? {
        switch mode & S_IFMT {
        case S_IFREG: return nil
        case S_IFDIR: return "is a folder, not a file"
        case S_IFIFO: return "is a FIFO (named pipe), not a regular file"
        case S_IFCHR: return "is a character device, not a regular file"
        case S_IFBLK: return "is a block device, not a regular file"
        case S_IFSOCK: return "is a socket, not a regular file"
        default: return "is not a regular file"
        }
    }
}
