import Foundation
import XCTest
@testable import WeightsIO

/// The hostile corpora of other scanners (picklescan, modelscan) in ../shared/real-peer/: every file
/// must do what MANIFEST.tsv says (refuse: a WeightsError; accept: read and pack every tensor;
/// either: a clean outcome), quickly. Bare pickles (not weights files, so refused by format) are also
/// run through the pickle VM, every stacked pickle of them, where each `refuse` one must be refused
/// on its own merits.
final class RealPeerCorpusTests: XCTestCase {
    static let folder = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("shared/real-peer")

    struct Entry {
        let path: String
        let expectation: String
        let note: String
    }

    static func manifest() throws -> [Entry] {
        let manifest = folder.appendingPathComponent("MANIFEST.tsv")
        guard FileManager.default.fileExists(atPath: manifest.path) else {
            throw XCTSkip("no peer corpus at \(folder.path) (clones without ../shared skip this test)")
        }
        return try String(contentsOf: manifest, encoding: .utf8).split(separator: "\n").compactMap { line in
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            guard fields.count >= 2, !fields[0].hasPrefix("#") else { return nil }
            return Entry(path: fields[0], expectation: fields[1], note: fields.count > 2 ? fields[2] : "")
        }
    }

    func testEveryPeerFileDoesWhatTheManifestSays() throws {
        let entries = try Self.manifest()
        XCTAssertGreaterThan(entries.count, 100)
        var tally: [String: Int] = [:]
        for entry in entries {
            let path = Self.folder.appendingPathComponent(entry.path).path
            let outcome = ConformanceTests.run(entry.path) { () throws -> String? in
                let store = try WeightsReader.open(path)
                for record in store.orderedRecords { _ = try StridedGather.packedBytes(of: record, file: path) }
                return "read \(store.count) tensors"
            }
            switch (entry.expectation, outcome) {
            case ("refuse", .threw(let error, _)), ("either", .threw(let error, _)):
                XCTAssertTrue(error is WeightsError, "\(entry.path): threw a non-WeightsError \(error)")
            case ("accept", .finished), ("either", .finished):
                break
            case ("refuse", .finished(let result, _)):
                XCTFail("\(entry.path) (\(entry.note)): must be refused, but \(result ?? "it was read")")
            case ("accept", .threw(let error, _)):
                XCTFail("\(entry.path) (\(entry.note)): must be read, but \(error)")
            case (_, .abandoned):
                XCTFail("\(entry.path): still running after \(ConformanceTests.abandonAfter) s (hang)")
            default:
                XCTFail("\(entry.path): unknown expectation '\(entry.expectation)'")
            }
            if case .threw(_, let seconds) = outcome { XCTAssertLessThan(seconds, ConformanceTests.timeLimit, entry.path) }
            if case .finished(_, let seconds) = outcome { XCTAssertLessThan(seconds, ConformanceTests.timeLimit, entry.path) }
            tally[entry.expectation, default: 0] += 1
        }
        print("real-peer corpus: \(entries.count) files checked \(tally.sorted { $0.key < $1.key })")
    }

    /// A `refuse` bare pickle must fail in the VM itself (dangerous global, refused opcode, broken
    /// stream), not merely for not being a weights file.
    func testRefusedBarePicklesAreRefusedByTheVM() throws {
        let entries = try Self.manifest().filter { [".pkl", ".pickle"].contains(where: $0.path.hasSuffix) }
        XCTAssertGreaterThan(entries.count, 50)
        var refusedAsUnsafe = 0
        for entry in entries {
            let path = Self.folder.appendingPathComponent(entry.path).path
            let outcome = ConformanceTests.run(entry.path) { () throws -> String? in
                let owner = try MappedFile.map(path)
                let limits = PickleLimits()
                let interpreter = TorchPickleInterpreter(form: .legacy, limits: limits, resolveRecord: nil)
                let machine = PickleMachine(bytes: owner.bytes, file: path, record: "pickle", limits: limits, interpreter: interpreter,
                                            globals: PickleGlobalLedger())
                // Files may stack several pickles (picklescan's malicious6: a list, then requests.get).
                return try withExtendedLifetime(owner) {
                    var start = 0, kinds: [String] = []
                    while start < owner.bytes.count, kinds.count < 64 {
                        start = try machine.run(from: start, requireEnd: false) { value, end in
                            kinds.append(value.kindName)
                            return end
                        }
                    }
                    return "unpickled \(kinds)"
                }
            }
            switch (entry.expectation, outcome) {
            case ("refuse", .finished(let result, _)):
                XCTFail("\(entry.path): the VM accepted it (\(result ?? ""))")
            case (_, .threw(let error, _)):
                guard let error = error as? WeightsError else { XCTFail("\(entry.path): \(error)"); continue }
                if error.kind == .unsafe { refusedAsUnsafe += 1 }
            case (_, .abandoned):
                XCTFail("\(entry.path): the VM hangs")
            default:
                break
            }
        }
        print("real-peer bare pickles: \(entries.count), \(refusedAsUnsafe) refused as unsafe")
    }
}
