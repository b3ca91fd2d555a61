import Foundation
import XCTest
import WeightsIO

/// Runs the file-format conformance corpus (formats/manifest.json, made by tools/make_formats.py with
/// the real torch and safetensors libraries).
///
/// - valid cases must read back to exactly the names, dtypes, shapes and packed bytes that
///   torch/safetensors reported (stored in formats/expected/<case>.safetensors), and survive a
///   round trip through the safetensors writer (what `sdsclip convert` does);
/// - invalid cases must be refused with a `WeightsError` of the expected kind whose text names the
///   expected thing (a tensor, a record, an opcode, ...), quickly and never by crashing.
final class ConformanceTests: XCTestCase {
    /// A case that takes longer than this counts as a hang.
    static let timeLimit: TimeInterval = 2
    /// A case still running after this is abandoned so one hang cannot stall the whole suite.
    static let abandonAfter: TimeInterval = 20

    func testManifestCoversTheRequiredCases() throws {
        let manifest = try ConformanceCorpus.load()
        let valid = manifest.cases.filter { $0.kind == "valid" }
        let invalid = manifest.cases.filter { $0.kind == "invalid" }
        XCTAssertGreaterThanOrEqual(valid.count, 15)
        XCTAssertGreaterThanOrEqual(invalid.count, 30)
        XCTAssertEqual(Set(manifest.cases.map(\.name)).count, manifest.cases.count, "case names are unique")
        let formats = Set(valid.compactMap(\.format))
        for needed in ["safetensors", "sharded-safetensors", "torch-zip", "torchscript", "torch-legacy"] {
            XCTAssertTrue(formats.contains(needed), "no valid \(needed) case")
        }
        let kinds = Set(invalid.compactMap(\.errorKind))
        for needed in ["format", "unsupported", "unsafe", "limit", "corrupt", "io"] {
            XCTAssertTrue(kinds.contains(needed), "no invalid case expecting .\(needed)")
        }
        for entry in manifest.cases {
            let path = ConformanceCorpus.path(entry.path)
            XCTAssertTrue(FileManager.default.fileExists(atPath: path), "\(entry.name): \(entry.path) is missing")
            if let size = (try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int {
                XCTAssertLessThan(size, 1 << 20, "\(entry.name): corpus files stay under 1 MiB")
            }
            if entry.kind == "valid" {
                XCTAssertNotNil(entry.expected, "\(entry.name): valid cases name their expected tensors")
                XCTAssertFalse(entry.tensors?.isEmpty ?? true, "\(entry.name): valid cases list their tensors")
            } else {
                XCTAssertNotNil(entry.errorKind.flatMap(WeightsError.Kind.init(rawValue:)),
                                "\(entry.name): error_kind must be a WeightsError kind")
                XCTAssertFalse(entry.substrings.isEmpty, "\(entry.name): invalid cases name a message substring")
            }
        }
    }

    func testValidCasesReadBackExactly() throws {
        let manifest = try ConformanceCorpus.load()
        var passed = 0
        let cases = manifest.cases.filter { $0.kind == "valid" }
        for entry in cases {
            let outcome = Self.run(entry.name) { () throws -> String? in try Self.checkValid(entry) }
            switch outcome {
            case .finished(nil, let seconds):
                XCTAssertLessThan(seconds, Self.timeLimit, "\(entry.name): took \(seconds) s")
                if seconds < Self.timeLimit { passed += 1 }
            case .finished(let problem?, _):
                XCTFail("\(entry.name) [\(entry.path)]: \(problem)")
            case .threw(let error, _):
                XCTFail("\(entry.name) [\(entry.path)]: refused a valid file: \(error)")
            case .abandoned:
                XCTFail("\(entry.name): still running after \(Self.abandonAfter) s (hang)")
            }
        }
        print("conformance valid: \(passed)/\(cases.count) passed")
    }

    func testInvalidCasesAreRefusedWithSpecificErrors() throws {
        let manifest = try ConformanceCorpus.load()
        var passed = 0
        let cases = manifest.cases.filter { $0.kind == "invalid" }
        for entry in cases {
            let path = ConformanceCorpus.path(entry.path)
            let outcome = Self.run(entry.name) { () throws -> String? in
                let store = try WeightsReader.open(path)
                // Accepted: say whether the defect would at least surface when the data is used.
                for record in store.orderedRecords {
                    do { _ = try StridedGather.packedBytes(of: record, file: path) } catch {
                        return "open accepted it (\(store.count) tensors); only packing '\(record.name)' failed: \(error)"
                    }
                }
                return "accepted: \(store.count) tensors (\(store.names.prefix(4).joined(separator: ", ")))"
            }
            switch outcome {
            case .finished(let problem, _):
                XCTFail("\(entry.name) [\(entry.path)]: expected .\(entry.errorKind ?? "?") error; \(problem ?? "accepted")")
            case .threw(let error, let seconds):
                if let problem = Self.mismatch(error, entry) {
                    XCTFail("\(entry.name) [\(entry.path)]: \(problem)")
                } else if seconds >= Self.timeLimit {
                    XCTFail("\(entry.name): refused correctly but took \(seconds) s")
                } else {
                    passed += 1
                }
            case .abandoned:
                XCTFail("\(entry.name): still running after \(Self.abandonAfter) s (hang)")
            }
        }
        print("conformance invalid: \(passed)/\(cases.count) passed")
    }

    // MARK: - Checks

    /// nil when the case reads back exactly; otherwise what differs.
    static func checkValid(_ entry: ConformanceCase) throws -> String? {
        guard let expectedPath = entry.expected, let listed = entry.tensors else { return "manifest entry incomplete" }
        let store = try WeightsReader.open(ConformanceCorpus.path(entry.path))
        let expected = try WeightsReader.open(ConformanceCorpus.path(expectedPath))

        // The expected file itself must agree with the manifest's list (guards the reference data).
        for spec in listed {
            guard let record = expected[spec.name], record.dtype.rawValue == spec.dtype, record.shape == spec.shape else {
                return "expected file disagrees with the manifest about '\(spec.name)'"
            }
        }
        guard expected.count == listed.count else { return "expected file has \(expected.count) tensors, manifest \(listed.count)" }

        if let format = entry.format, store.format.rawValue != format {
            return "format \(store.format.rawValue), expected \(format)"
        }
        if let prefix = entry.prefix, store.metadata["prefix"] != prefix {
            return "metadata[\"prefix\"] is \(store.metadata["prefix"] ?? "nil"), expected '\(prefix)'"
        }
        for (key, value) in entry.metadata ?? [:] where store.metadata[key] != value {
            return "metadata[\"\(key)\"] is \(store.metadata[key] ?? "nil"), expected '\(value)'"
        }
        if let problem = try compare(store, with: expected, file: entry.path) { return problem }
        if let problem = checkGlobals(store, entry) { return problem }

        // What `convert` does: write every record (views packed) and read the file back.
        let output = FileManager.default.temporaryDirectory
            .appendingPathComponent("conformance-\(entry.name)-\(UUID().uuidString).safetensors").path
        defer { try? FileManager.default.removeItem(atPath: output) }
        let tensors = try store.orderedRecords.map { try SafetensorsWriter.Tensor(record: $0) }
        try SafetensorsWriter.write(tensors, metadata: ["format": "pt"], to: output)
        let converted = try WeightsReader.open(output)
        guard converted.format == .safetensors else { return "converted file read as \(converted.format.rawValue)" }
        if let problem = try compare(converted, with: expected, file: "converted " + entry.path) { return problem }
        return nil
    }

    /// The unknown globals are listed exactly, and `strictGlobals` refuses the file by naming them.
    static func checkGlobals(_ store: WeightStore, _ entry: ConformanceCase) -> String? {
        guard let wanted = entry.unknownGlobals else { return nil }
        guard store.unknownGlobals == wanted else { return "unknown globals \(store.unknownGlobals), expected \(wanted)" }
        let path = ConformanceCorpus.path(entry.path)
        do {
            _ = try WeightsReader.open(path, options: ReadOptions(strictGlobals: true))
            return wanted.isEmpty ? nil : "strictGlobals read a file with unknown globals \(wanted)"
        } catch let error as WeightsError {
            if wanted.isEmpty { return "strictGlobals refused a file whose globals are all allowlisted: \(error)" }
            guard error.kind == .unsafe, wanted.allSatisfy(error.message.contains) else {
                return "strictGlobals refused it without naming \(wanted): \(error)"
            }
            return nil
        } catch {
            return "strictGlobals threw \(error)"
        }
    }

    /// Same names, dtypes, shapes and row-major bytes.
    static func compare(_ store: WeightStore, with expected: WeightStore, file: String) throws -> String? {
        let names = Set(store.names), wanted = Set(expected.names)
        guard names == wanted else {
            let missing = wanted.subtracting(names).sorted(), extra = names.subtracting(wanted).sorted()
            return "names differ: missing \(missing), unexpected \(extra)"
        }
        for name in expected.names {
            guard let got = store[name], let want = expected[name] else { return "'\(name)' not found" }
            guard got.dtype == want.dtype else { return "'\(name)': dtype \(got.dtype.rawValue), expected \(want.dtype.rawValue)" }
            guard got.shape == want.shape else { return "'\(name)': shape \(got.shape), expected \(want.shape)" }
            let gotBytes = try StridedGather.packedBytes(of: got, file: file)
            let wantBytes = try StridedGather.packedBytes(of: want, file: file)
            if gotBytes != wantBytes {
                let first = zip(gotBytes, wantBytes).enumerated().first { $0.element.0 != $0.element.1 }?.offset
                return "'\(name)': bytes differ (first at byte \(first.map(String.init) ?? "end"), \(gotBytes.count) vs \(wantBytes.count))"
            }
        }
        return nil
    }

    /// nil when `error` is what the case expects.
    static func mismatch(_ error: Error, _ entry: ConformanceCase) -> String? {
        guard let error = error as? WeightsError else { return "threw a non-WeightsError: \(error)" }
        var problems: [String] = []
        if error.kind.rawValue != entry.errorKind { problems.append("kind .\(error.kind.rawValue), expected .\(entry.errorKind ?? "?")") }
        if error.file.isEmpty { problems.append("the error names no file") }
        if error.message.isEmpty { problems.append("empty message") }
        // Case-insensitive, and "end-of-central-directory" matches "end of central directory".
        func normalized(_ text: String) -> String { text.lowercased().replacingOccurrences(of: "-", with: " ") }
        let text = normalized(error.description)
        if let all = entry.messageContains {
            let missing = all.filter { !text.contains(normalized($0)) }
            if !missing.isEmpty { problems.append("text lacks \(missing)") }
        }
        if let any = entry.messageContainsAny, !any.contains(where: { text.contains(normalized($0)) }) {
            problems.append("text lacks any of \(any)")
        }
        return problems.isEmpty ? nil : problems.joined(separator: "; ") + " — got: \(error)"
    }

    // MARK: - Running a case with a deadline

    enum Outcome {
        case finished(String?, TimeInterval)
        case threw(Error, TimeInterval)
        case abandoned
    }

    /// Runs `body` on its own thread so a hang is reported instead of stalling the suite.
    static func run(_ name: String, _ body: @escaping @Sendable () throws -> String?) -> Outcome {
        let box = OutcomeBox()
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            let start = Date()
            do {
                let result = try body()
                box.set(.finished(result, Date().timeIntervalSince(start)))
            } catch {
                box.set(.threw(error, Date().timeIntervalSince(start)))
            }
            done.signal()
        }
        thread.stackSize = 8 << 20
        thread.name = "conformance \(name)"
        thread.start()
        guard done.wait(timeout: .now() + abandonAfter) == .success else { return .abandoned }
        return box.get() ?? .abandoned
    }
}

/// The result of a case, handed from its thread to the test.
private final class OutcomeBox: @unchecked Sendable {
    private let lock = NSLock()
    private var outcome: ConformanceTests.Outcome?
    func set(_ value: ConformanceTests.Outcome) { lock.lock(); outcome = value; lock.unlock() }
    func get() -> ConformanceTests.Outcome? { lock.lock(); defer { lock.unlock() }; return outcome }
}

// MARK: - The manifest

struct ConformanceManifest: Decodable {
    let cases: [ConformanceCase]
}

struct ConformanceCase: Decodable, Sendable {
    struct TensorSpec: Decodable, Sendable {
        let name: String
        let dtype: String
        let shape: [Int]
    }

    let name: String
    let kind: String
    let path: String
    let description: String
    // valid
    let expected: String?
    let format: String?
    let prefix: String?
    let metadata: [String: String]?
    let tensors: [TensorSpec]?
    /// Pickle globals the reader must list as unknown (and `strictGlobals` refuse); nil = not asserted.
    let unknownGlobals: [String]?
    // invalid
    let errorKind: String?
    let messageContains: [String]?
    let messageContainsAny: [String]?

    var substrings: [String] { (messageContains ?? []) + (messageContainsAny ?? []) }

    enum CodingKeys: String, CodingKey {
        case name, kind, path, description, expected, format, prefix, metadata, tensors
        case errorKind = "error_kind"
        case unknownGlobals = "unknown_globals"
        case messageContains = "message_contains"
        case messageContainsAny = "message_contains_any"
    }
}

enum ConformanceCorpus {
    /// formats/ at the repository root, found from this file's location.
    static let root: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("formats")

    static func path(_ relative: String) -> String { root.appendingPathComponent(relative).path }

    static func load() throws -> ConformanceManifest {
        let data = try Data(contentsOf: root.appendingPathComponent("manifest.json"))
        return try JSONDecoder().decode(ConformanceManifest.self, from: data)
    }
}
