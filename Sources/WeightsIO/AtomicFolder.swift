import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Writes a folder so that its destination holds either the old folder or the complete new one:
/// files go into a hidden sibling `.NAME.partial-PID` (same file system, so the final rename is
/// atomic), which is renamed into place only once complete; an existing destination is first renamed
/// aside to `.NAME.old-PID` and removed after. A failure removes the partial folder and leaves the
/// destination untouched. (A kill between the two renames leaves the complete old folder under its
/// `.old-PID` name; the names carry the PID so a later run can tell a dead writer's leftovers.)
/// The next write to the same destination removes a dead writer's `.partial-PID` folder; an `.old-PID`
/// one (the previous folder, from a kill between the two renames) is never removed automatically.
/// A folder holding one of `options.protected` (the inputs) is never replaced; with
/// `options.temporaries` the partial folder is booked so a signal handler can remove it.
public enum AtomicFolder {
    /// What to do when the destination already exists.
    public enum ExistingDestination: Sendable {
        /// Fail before anything is written (and again at the swap, should one have appeared since).
        case refuse
        /// Swap the new folder in once it is complete. Only folders are replaced, never a file.
        case replace
        /// Take the place of an empty folder (one made for the output), never of anything holding files:
        /// rename(2) itself refuses to replace a folder that is not empty, so nothing is ever deleted.
        case replaceIfEmpty
    }

    /// The hidden sibling a folder for `destination` is built in.
    public static func stagingPath(for destination: String) -> String {
        sibling(of: destination, marker: "partial")
    }

    /// Runs `body` with an empty staging folder, then moves it to `destination`. Returns `destination`.
    @discardableResult
    public static func write(to destination: String, existing: ExistingDestination, options: WriteOptions = WriteOptions(),
                             _ body: (_ staging: String) throws -> Void) throws -> String {
        try checkDestination(destination, existing: existing, protected: options.protected)
        removeStaleLeftovers(of: destination)
        let manager = FileManager.default
        let staging = stagingPath(for: destination)
        do {
            if exists(staging) { try manager.removeItem(atPath: staging) }   // this process's own leftover
            _ = try options.temporaries.create(staging, .folder) {
                try manager.createDirectory(atPath: staging, withIntermediateDirectories: true)
            }
        } catch let error as WeightsError {
            throw error
        } catch {
            throw WeightsError(.io, file: staging, "cannot create the folder to build the output in: \(error.localizedDescription)")
        }
        do {
            try body(staging)
            try options.temporaries.finish(staging) {
                try checkDestination(destination, existing: existing, protected: options.protected)
                if existing == .replaceIfEmpty {
                    try rename(staging, to: destination)
                } else {
                    try move(staging, to: destination)
                }
            }
            options.temporaries.forget(staging)
        } catch {
            try? manager.removeItem(atPath: staging)
            options.temporaries.forget(staging)
            throw error
        }
        return destination
    }

    /// Puts the completely written folder `built` at `destination`, replacing a folder there. (`write`
    /// runs it under the temp registry's lock, so a signal's cleanup waits until the swap is over.)
    public static func move(_ built: String, to destination: String) throws {
        guard exists(destination) else { return try rename(built, to: destination) }
        let old = sibling(of: destination, marker: "old")
        if exists(old) {
            do { try FileManager.default.removeItem(atPath: old) } catch {
                throw WeightsError(.io, file: old, "cannot remove an earlier replaced folder: \(error.localizedDescription)")
            }
        }
        try rename(destination, to: old)
        do {
            try rename(built, to: destination)
        } catch {
            try? rename(old, to: destination)
            throw error
        }
        try? FileManager.default.removeItem(atPath: old)
    }

    /// Removes a dead writer's `.NAME.partial-PID` folder. Its `.NAME.old-PID` folder is left alone: a
    /// kill between the swap's two renames leaves the user's previous folder under that name.
    static func removeStaleLeftovers(of destination: String) {
        let url = URL(fileURLWithPath: destination).standardizedFileURL
        for stale in StaleTemporaries.find(in: url.deletingLastPathComponent().path, destinationName: url.lastPathComponent,
                                           markers: ["partial"]) {
            try? FileManager.default.removeItem(atPath: stale)
        }
    }

    static func checkDestination(_ destination: String, existing: ExistingDestination, protected: ProtectedFiles = .none) throws {
        var info = stat()
        guard lstat(destination, &info) == 0 else { return }
        switch existing {
        case .refuse:
            throw WeightsError(.io, file: destination, "the output exists; choose another path or allow replacing it (--overwrite)")
        case .replace:
            guard (info.st_mode & S_IFMT) == S_IFDIR else {
                throw WeightsError(.io, file: destination, "the output exists and is not a folder; only a folder is replaced (a symlink neither)")
            }
            if let input = protected.input(inside: destination) {
                throw WeightsError(.io, file: destination, "the output folder holds the input \(input); write the output to another folder")
            }
        case .replaceIfEmpty:
            let entries = (info.st_mode & S_IFMT) == S_IFDIR ? try? FileManager.default.contentsOfDirectory(atPath: destination) : nil
            guard entries?.isEmpty == true else {
                throw WeightsError(.io, file: destination, "the output exists and is not an empty folder; choose a new folder")
            }
        }
    }

    static func sibling(of destination: String, marker: String) -> String {
        let url = URL(fileURLWithPath: destination).standardizedFileURL
        return url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).\(marker)-\(getpid())").path
    }

    static func exists(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0
    }

    static func rename(_ from: String, to: String) throws {
        guard Glibc.rename(from, to) == 0 else {
            throw WeightsError(.io, file: to, "cannot rename \(from) into place: \(String(cString: strerror(errno)))")
        }
    }
}
