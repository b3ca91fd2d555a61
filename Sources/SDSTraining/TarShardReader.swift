import CArchive
import Foundation

/// Streams the regular-file members of one tar shard (plain or gzip-compressed) through
/// libarchive, one member in memory at a time. Only the tar format and the gzip filter are
/// enabled, so libarchive never runs an external decompressor. Not thread-safe.
final class TarShardReader {
    struct Member {
        let path: String
        /// nil when the member was skipped (not wanted, or over `maximumMemberBytes`).
        let bytes: Data?
        let size: Int64
    }

    enum Failure: Error {
        /// The shard cannot be read further; libarchive's message.
        case corrupt(String)
    }

    let path: String
    private let archive: OpaquePointer
    private var opened = false

    /// Members larger than this are skipped unread (reported by the caller).
    static let maximumMemberBytes: Int64 = 256 << 20

    init(path: String) throws(Failure) {
        guard let archive = archive_read_new() else { throw .corrupt("libarchive could not allocate a reader") }
        self.path = path
        self.archive = archive
        archive_read_support_format_tar(archive)
        archive_read_support_filter_gzip(archive)
        guard archive_read_open_filename(archive, path, 1 << 16) == ARCHIVE_OK else {
            throw .corrupt(message(default: "cannot open"))
        }
        opened = true
    }

    deinit {
        if opened { archive_read_close(archive) }
        archive_read_free(archive)
    }

    /// The next regular file; `wanted` decides from the path whether its bytes are read.
    /// nil at the end of the archive.
    func next(wanted: (String) -> Bool) throws(Failure) -> Member? {
        while true {
            var entry: OpaquePointer?
            let status = archive_read_next_header(archive, &entry)
            if status == ARCHIVE_EOF { return nil }
            // ARCHIVE_WARN is informational (odd header fields); RETRY and FATAL mean damage.
            guard status == ARCHIVE_OK || status == ARCHIVE_WARN, let entry else {
                throw .corrupt(message(default: "unreadable tar header"))
            }
            guard archive_entry_filetype(entry) == 0o100000 else { continue }  // AE_IFREG: directories, links… are not data
            let name = archive_entry_pathname(entry).map { String(cString: $0) } ?? ""
            let size = archive_entry_size_is_set(entry) != 0 ? archive_entry_size(entry) : -1
            guard wanted(name), size >= 0, size <= Self.maximumMemberBytes else {
                // Skipping still moves through the data, so truncation is noticed here too.
                guard archive_read_data_skip(archive) == ARCHIVE_OK else {
                    throw .corrupt(message(default: "cannot skip over \(name)"))
                }
                return Member(path: name, bytes: nil, size: size)
            }
            return Member(path: name, bytes: try readData(count: Int(size), name: name), size: size)
        }
    }

    private func readData(count: Int, name: String) throws(Failure) -> Data {
        var data = Data(count: count)
        var filled = 0
        while filled < count {
            let read = data.withUnsafeMutableBytes { raw in
                archive_read_data(archive, raw.baseAddress.map { $0 + filled }, count - filled)
            }
            if read < 0 { throw .corrupt(message(default: "cannot read \(name)")) }
            if read == 0 { throw .corrupt("\(name) ends after \(filled) of its \(count) bytes") }
            filled += read
        }
        return data
    }

    private func message(default text: String) -> String {
        archive_error_string(archive).map { String(cString: $0) } ?? text
    }
}
