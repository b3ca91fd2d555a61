import Foundation
import WeightsIO

/// Reading a benchmark's files: whole-file JSON (SugarCrepe, ARO) and JSON Lines (Winoground,
/// multiple choice). JSON goes through WeightsIO's strict parser: exact integers, no duplicate keys,
/// a nesting limit, and byte offsets in its messages.
enum BenchmarkFile {
    static func bytes(_ path: String, what: String) throws -> [UInt8] {
        do {
            return [UInt8](try Data(contentsOf: URL(fileURLWithPath: path), options: .mappedIfSafe))
        } catch {
            let exists = FileManager.default.fileExists(atPath: path)
            throw EvaluationError(file: path, exists ? "cannot read the \(what): \(error.localizedDescription)" : "the \(what) does not exist")
        }
    }

    static func json(_ bytes: [UInt8], file: String) throws -> JSONValue {
        do {
            return try JSONParser.parse(bytes)
        } catch {
            throw EvaluationError(file: file, "not valid JSON: \(error)")
        }
    }

    /// The non-blank lines with their 1-based numbers (a trailing CR is dropped).
    static func lines(_ bytes: [UInt8]) -> [(number: Int, text: ArraySlice<UInt8>)] {
        var result: [(Int, ArraySlice<UInt8>)] = []
        var number = 0
        for raw in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            number += 1
            let line = raw.last == UInt8(ascii: "\r") ? raw.dropLast() : raw
            if line.contains(where: { !($0 == 0x20 || $0 == 0x09 || $0 == 0x0D) }) { result.append((number, line)) }
        }
        return result
    }

    /// One JSON Lines record as an object, or why not.
    static func record(_ line: ArraySlice<UInt8>) -> Result<JSONObject, RowProblem> {
        do {
            guard let object = try JSONParser.parse(Array(line)).objectValue else {
                return .failure(RowProblem("expected a JSON object"))
            }
            return .success(object)
        } catch {
            return .failure(RowProblem("not valid JSON (\(error))"))
        }
    }

    /// Each non-blank line of a JSON Lines file made an item by `read`, which throws a `RowProblem` for a
    /// row that cannot be one (the row is then skipped). Ids are `NAME:LINE`, plus ` (id X)` when the row
    /// has an `id`.
    static func jsonLines<Item>(_ file: String, what: String,
                                _ read: (_ fields: RowFields, _ id: String) throws(RowProblem) -> Item) throws -> Rows<Item> {
        let name = fileName(file)
        var rows = Rows<Item>()
        for (number, line) in lines(try bytes(file, what: what)) {
            let parsed = record(line).map(RowFields.init(object:))
            let label = (try? parsed.get())?.label("id")
            let id = "\(name):\(number)" + (label.map { " (id \($0))" } ?? "")
            rows.add(id: id) { () throws(RowProblem) in try read(try parsed.get(), id) }
        }
        return rows
    }

    /// The folder of a benchmark's images: `given` (`--images`), else `name` beside `file`. A missing
    /// folder is an error that says what to pass, rather than every item skipped.
    static func imageFolder(given: String?, beside file: String, named name: String, what: String) throws -> String {
        let folder = given ?? join(self.folder(of: file), name)
        guard isFolder(folder) else {
            throw EvaluationError(file: folder, given == nil ? "no \(what) image folder (\(name)/ beside \(fileName(file))): pass --images DIR"
                                                              : "the image folder given by --images does not exist")
        }
        return folder
    }

    static func isFolder(_ path: String) -> Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue
    }

    static func exists(_ path: String) -> Bool { FileManager.default.fileExists(atPath: path) }

    static func join(_ folder: String, _ name: String) -> String {
        name.hasPrefix("/") ? name : (folder.hasSuffix("/") ? folder + name : folder + "/" + name)
    }

    static func folder(of file: String) -> String { URL(fileURLWithPath: file).deletingLastPathComponent().path }

    static func fileName(_ path: String) -> String { URL(fileURLWithPath: path).lastPathComponent }

    /// The file name without its extension (`add_att.json` → `add_att`).
    static func stem(_ path: String) -> String { URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent }
}

/// A benchmark's items and the rows that are not items, gathered row by row.
typealias RowCollector = Rows<BenchmarkItem>

/// Rows read as `Item`s, and the rows that could not be, with the reason.
struct Rows<Item> {
    var items: [Item] = []
    var skipped: [SkippedItem] = []

    mutating func add(id: String, _ read: () throws(RowProblem) -> Item) {
        do {
            items.append(try read())
        } catch {
            skipped.append(SkippedItem(id: id, reason: error.reason))
        }
    }
}

/// Why one row cannot be an item; it becomes a `SkippedItem`.
struct RowProblem: Error {
    let reason: String
    init(_ reason: String) { self.reason = reason }
}

/// Typed access to a record's fields, each failure saying which field and what was expected.
struct RowFields {
    let object: JSONObject

    init(object: JSONObject) { self.object = object }

    /// A record that must be an object.
    init(_ value: JSONValue) throws(RowProblem) {
        guard let object = value.objectValue else { throw RowProblem("expected an object, found \(value.kindName)") }
        self.object = object
    }

    func value(_ key: String) throws(RowProblem) -> JSONValue {
        guard let value = object[key] else { throw RowProblem("no \"\(key)\" field") }
        return value
    }

    func string(_ key: String) throws(RowProblem) -> String {
        let value = try value(key)
        guard let text = value.stringValue else { throw RowProblem("\"\(key)\" must be a string, found \(value.kindName)") }
        return text
    }

    func integer(_ key: String) throws(RowProblem) -> Int {
        let value = try value(key)
        guard let number = value.numberValue?.int64Value, let integer = Int(exactly: number) else {
            throw RowProblem("\"\(key)\" must be an integer, found \(value.kindName)")
        }
        return integer
    }

    func number(_ key: String) throws(RowProblem) -> Double {
        let value = try value(key)
        guard let number = value.numberValue?.doubleValue, number.isFinite else {
            throw RowProblem("\"\(key)\" must be a finite number, found \(value.kindName)")
        }
        return number
    }

    func strings(_ key: String) throws(RowProblem) -> [String] {
        let value = try value(key)
        guard let array = value.arrayValue else { throw RowProblem("\"\(key)\" must be an array of strings, found \(value.kindName)") }
        var texts: [String] = []
        for (index, element) in array.enumerated() {
            guard let text = element.stringValue else {
                throw RowProblem("\"\(key)\"[\(index)] must be a string, found \(element.kindName)")
            }
            texts.append(text)
        }
        return texts
    }

    /// A string or a number as text (ids are either), nil when absent or of another kind.
    func label(_ key: String) -> String? {
        switch object[key] {
        case .string(let text): return text
        case .number(let number): return number.literal
        default: return nil
        }
    }
}
