import Foundation

/// CSV/TSV manifest as open_clip reads it (`pandas.read_csv`): a header row, then one record a
/// line, image path and caption in the columns named `filepath` and `title` by default. Fields
/// may be quoted RFC 4180 style (doubled quotes inside, separators and newlines allowed) with
/// either separator. Paths are relative to the manifest's folder (open_clip takes them relative
/// to the working directory). Keys are `NAME:LINE`, the line a record starts on.
public enum DelimitedManifest {
    public static func read(path: String, separator: UInt8? = nil,
                            imageColumn: String = "filepath", captionColumn: String = "title") throws -> IndexedDataset {
        let separator = separator ?? defaultSeparator(for: path)
        var data = try ManifestPaths.read(path, what: "\(separator == 9 ? "TSV" : "CSV") manifest")
        if data.starts(with: [0xEF, 0xBB, 0xBF]) { data = data.dropFirst(3) }
        let records = DelimitedRecords.parse([UInt8](data), separator: separator)
        guard let header = records.first(where: { !$0.isBlank }) else {
            throw DataError(file: path, "empty manifest: expected a header row naming the columns \(imageColumn) and \(captionColumn)")
        }
        if let problem = header.problem { throw DataError(file: path, at: "line \(header.line)", "header: \(problem)") }
        let names = header.fields.map { String(decoding: $0, as: UTF8.self) }
        guard let imageIndex = names.firstIndex(of: imageColumn), let captionIndex = names.firstIndex(of: captionColumn) else {
            throw DataError(file: path, at: "line \(header.line)",
                            "header has columns \(names) but not both \(imageColumn) (image path) and \(captionColumn) (caption); "
                            + "name the columns to use")
        }
        let folder = ManifestPaths.folder(of: path)
        let name = ManifestPaths.fileName(path)
        var items: [DataItem] = []
        for record in records where record.line > header.line && !record.isBlank {
            let key = "\(name):\(record.line)"
            if let problem = record.problem {
                items.append(.bad(BadSample(key: key, kind: .malformedRecord, detail: problem)))
            } else if record.fields.count != names.count {
                items.append(.bad(BadSample(key: key, kind: .malformedRecord,
                                            detail: "expected \(names.count) fields as in the header, got \(record.fields.count)")))
            } else {
                items.append(sample(record, key: key, imageIndex: imageIndex, captionIndex: captionIndex, folder: folder))
            }
        }
        return IndexedDataset(source: path, items: items)
    }

    /// Tab for `.tsv`, comma otherwise.
    public static func defaultSeparator(for path: String) -> UInt8 {
        path.lowercased().hasSuffix(".tsv") ? UInt8(ascii: "\t") : UInt8(ascii: ",")
    }

    private static func sample(_ record: DelimitedRecords.Record, key: String, imageIndex: Int, captionIndex: Int,
                               folder: String) -> DataItem {
        guard let image = String(validating: record.fields[imageIndex], as: UTF8.self) else {
            return .bad(BadSample(key: key, kind: .invalidText, detail: "the image path is not valid UTF-8"))
        }
        guard !image.isEmpty else {
            return .bad(BadSample(key: key, kind: .malformedRecord, detail: "the image path is empty"))
        }
        switch CaptionCheck.clean(bytes: record.fields[captionIndex], key: key, what: "the caption") {
        case .failure(let bad): return .bad(bad)
        case .success(let caption):
            return .sample(TrainingSample(key: key, caption: caption, image: .file(ManifestPaths.resolve(image, in: folder))))
        }
    }
}

/// RFC 4180 record splitting over bytes. Lenient where pandas is: a quote inside an unquoted
/// field is literal, text after a closing quote is appended.
enum DelimitedRecords {
    struct Record {
        /// 1-based line the record starts on.
        let line: Int
        let fields: [[UInt8]]
        /// Set when the record cannot be read (an unterminated quote).
        let problem: String?

        var isBlank: Bool { problem == nil && fields.count == 1 && fields[0].isEmpty }
    }

    static func parse(_ bytes: [UInt8], separator: UInt8) -> [Record] {
        let quote = UInt8(ascii: "\""), newline = UInt8(ascii: "\n"), carriageReturn = UInt8(ascii: "\r")
        var records: [Record] = []
        var fields: [[UInt8]] = []
        var field: [UInt8] = []
        var line = 1
        var recordLine = 1
        var inQuotes = false
        var fieldWasQuoted = false
        var index = 0
        func endRecord() {
            fields.append(field)
            records.append(Record(line: recordLine, fields: fields, problem: nil))
            fields = []
            field = []
            fieldWasQuoted = false
            recordLine = line
        }
        while index < bytes.count {
            let byte = bytes[index]
            index += 1
            if inQuotes {
                if byte == quote {
                    if index < bytes.count, bytes[index] == quote {
                        field.append(quote)
                        index += 1
                    } else {
                        inQuotes = false
                    }
                } else {
                    if byte == newline { line += 1 }
                    field.append(byte)
                }
            } else if byte == separator {
                fields.append(field)
                field = []
                fieldWasQuoted = false
            } else if byte == newline {
                line += 1
                endRecord()
            } else if byte == carriageReturn, index < bytes.count, bytes[index] == newline {
                continue  // CRLF: the LF ends the record
            } else if byte == quote, field.isEmpty, !fieldWasQuoted {
                inQuotes = true
                fieldWasQuoted = true
            } else {
                field.append(byte)
            }
        }
        if inQuotes {
            records.append(Record(line: recordLine, fields: [], problem: "a quoted field is not closed before the end of the file"))
        } else if !field.isEmpty || !fields.isEmpty {
            endRecord()
        }
        return records
    }
}
