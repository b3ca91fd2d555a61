import Foundation
import Imaging
import XCTest

@testable import SDSTraining

/// Collects log lines from the loader's thread.
final class LogBox: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: [BadSample] = []

    func append(_ bad: BadSample) {
        lock.lock()
        stored.append(bad)
        lock.unlock()
    }

    var all: [BadSample] {
        lock.lock()
        defer { lock.unlock() }
        return stored
    }
}

final class BatchLoaderTests: XCTestCase {
    private func goodManifest(_ folder: TemporaryFolder, count: Int) throws -> String {
        var lines: [String] = []
        for index in 0..<count {
            try folder.write("img/\(index).png", try TestData.png(index, size: 12 + index % 5))
            lines.append(#"{"image": "img/\#(index).png", "caption": "caption \#(index)"}"#)
        }
        return try folder.write("good.jsonl", text: lines.joined(separator: "\n"))
    }

    private func settings(batch: Int, resolution: Int = 8, seed: UInt64, epochs: Int?) -> BatchLoader.Configuration {
        var configuration = BatchLoader.Configuration(batchSize: batch, resolution: resolution, order: DataOrder(seed: seed))
        configuration.epochs = epochs
        return configuration
    }

    private func drain(_ loader: BatchLoader) throws -> [TrainingBatch] {
        var batches: [TrainingBatch] = []
        while let batch = try loader.next() { batches.append(batch) }
        return batches
    }

    func testBatchesStayInTheirEpochAndDropTheLastPartialOne() throws {
        let folder = try TemporaryFolder()
        let dataset = try TrainingDataset.open(try goodManifest(folder, count: 20))
        var configuration = settings(batch: 6, resolution: 16, seed: 1, epochs: 2)
        let batches = try drain(try BatchLoader(dataset: dataset, configuration: configuration))
        XCTAssertEqual(batches.map(\.epoch), [0, 0, 0, 1, 1, 1])
        XCTAssertEqual(batches.map(\.positionAfter), [6, 12, 18, 6, 12, 18])
        XCTAssertTrue(batches.allSatisfy { $0.shape == [6, 3, 16, 16] && $0.pixels.count == 6 * 3 * 16 * 16 && $0.keys.count == 6 })
        // The pixels are CLIPPreprocessor's for each key's image, in batch order.
        let preprocessor = try CLIPPreprocessor(resolution: 16)
        let first = batches[0]
        for (slot, key) in first.keys.enumerated() {
            let line = Int(key.split(separator: ":")[1]) ?? -1
            let expected = try preprocessor.process(path: folder.path("img/\(line - 1).png"))
            XCTAssertEqual(Array(first.pixels[(slot * 768)..<((slot + 1) * 768)]), expected, key)
            XCTAssertEqual(first.captions[slot], "caption \(line - 1)")
        }
        XCTAssertEqual(Set(batches[0...2].flatMap(\.keys)).count, 18)

        configuration.dropLast = false
        configuration.epochs = 1
        let kept = try drain(try BatchLoader(dataset: dataset, configuration: configuration))
        XCTAssertEqual(kept.map(\.keys.count), [6, 6, 6, 2])
        XCTAssertEqual(kept.last?.positionAfter, 20)
    }

    func testResumingFromABatchPositionContinuesTheSameRun() throws {
        let folder = try TemporaryFolder()
        let dataset = try TrainingDataset.open(try goodManifest(folder, count: 14))
        let configuration = settings(batch: 4, seed: 5, epochs: 3)
        let full = try drain(try BatchLoader(dataset: dataset, configuration: configuration))
        XCTAssertEqual(full.count, 9)
        for stop in [0, 2, 4] {
            var resumed = configuration
            resumed.startEpoch = full[stop].epoch
            resumed.startPosition = full[stop].positionAfter
            resumed.epochs = 3 - full[stop].epoch
            let rest = try drain(try BatchLoader(dataset: dataset, configuration: resumed))
            XCTAssertEqual(rest.map(\.keys), full.dropFirst(stop + 1).map(\.keys), "resumed after batch \(stop)")
            XCTAssertEqual(rest.map(\.pixels), full.dropFirst(stop + 1).map(\.pixels))
        }
    }

    /// One bad sample of each kind, among good ones: each is skipped, counted and logged by name.
    func testBadSampleCorpusIsSkippedAndCounted() throws {
        let folder = try TemporaryFolder()
        var lines: [[UInt8]] = []
        for index in 0..<30 {
            try folder.write("img/\(index).png", try TestData.png(index))
            lines.append(Array(#"{"image": "img/\#(index).png", "caption": "good \#(index)"}"#.utf8))
        }
        let png = try TestData.png(99, size: 30)
        try folder.write("truncated.png", Array(png.prefix(png.count - 20)))
        try folder.write("random.jpg", (0..<200).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) })
        try folder.write("cmyk.jpg", [UInt8](try Data(contentsOf: TestData.fixtures.appendingPathComponent("cmyk_16x16.jpg"))))
        try folder.write("photo.webp", Array("RIFF".utf8) + [26, 0, 0, 0] + Array("WEBPVP8 ".utf8) + [UInt8](repeating: 0, count: 18))
        try folder.write("rgb16.png", [UInt8](try Data(contentsOf: TestData.fixtures.appendingPathComponent("rgb16_90x70.png"))))
        lines += [
            Array(#"{"image": "missing.png", "caption": "missing file"}"#.utf8),
            Array(#"{"image": "truncated.png", "caption": "truncated png"}"#.utf8),
            Array(#"{"image": "random.jpg", "caption": "random bytes"}"#.utf8),
            Array(#"{"image": "cmyk.jpg", "caption": "cmyk jpeg decodes as Pillow's"}"#.utf8),
            Array(#"{"image": "photo.webp", "caption": "webp"}"#.utf8),
            Array(#"{"image": "rgb16.png", "caption": "16-bit png decodes"}"#.utf8),
            Array(#"{"image": "img/0.png", "caption": "  "}"#.utf8),
            Array(#"{"image": "img/1.png", "caption": "bad "#.utf8) + [0xC3, 0x28] + Array(#""}"#.utf8),
            Array(#"{"image": "img", "caption": "a folder"}"#.utf8),
        ]
        let manifest = try folder.write("corpus.jsonl", Array(lines.joined(separator: [0x0A])))

        let log = LogBox()
        var configuration = settings(batch: 5, seed: 3, epochs: 1)
        configuration.maximumBadFraction = 0.5
        let loader = try BatchLoader(dataset: try TrainingDataset.open(manifest), configuration: configuration) { log.append($0) }
        let batches = try drain(loader)
        let expected: [BadSampleKind: Int] = [.missingImage: 1, .undecodableImage: 2, .unsupportedImage: 1, .emptyCaption: 1,
                                              .invalidText: 1, .unreadableImage: 1]
        XCTAssertEqual(loader.badSamples.byKind, expected)
        XCTAssertEqual(loader.badSamples.total, 7)
        XCTAssertEqual(loader.itemsSeen, 39)
        XCTAssertLessThanOrEqual(batches.last?.badSamples.total ?? 99, 7)
        XCTAssertEqual(batches.flatMap(\.keys).count, 30, "32 good samples (CMYK and 16-bit images convert), the last partial batch dropped")
        XCTAssertTrue(batches.flatMap(\.captions).allSatisfy { !$0.isEmpty })
        XCTAssertEqual(Set(log.all.map(\.key)), Set((31...39).filter { $0 != 34 && $0 != 36 }.map { "corpus.jsonl:\($0)" }))
        XCTAssertTrue(log.all.contains { $0.kind == .unsupportedImage && $0.detail.contains("photo.webp") }, "\(log.all)")
    }

    /// Webdataset: invalid UTF-8 in a .txt is one bad sample; a shard truncated mid-member is
    /// counted once, named, and the other shards are still read.
    func testBadShardsAreSkippedAndCountedOnce() throws {
        let folder = try TemporaryFolder()
        var good: [(String, [UInt8])] = []
        for index in 0..<24 { good += [("\(index).png", try TestData.png(index)), ("\(index).txt", Array("caption \(index)".utf8))] }
        good += [("bad.png", try TestData.png(1)), ("bad.txt", [0x66, 0xFF, 0x66])]
        try folder.write("shards/a.tar", try TestData.tar(good))
        var big: [(String, [UInt8])] = []
        for index in 0..<4 { big += [("\(index).png", try TestData.png(index, size: 64)), ("\(index).txt", Array("big \(index)".utf8))] }
        let whole = try TestData.tar(big)
        try folder.write("shards/b.tar", Array(whole.prefix(whole.count - 1500)))

        let log = LogBox()
        var configuration = settings(batch: 4, seed: 3, epochs: 1)
        configuration.maximumBadFraction = 0.2
        let loader = try BatchLoader(dataset: try TrainingDataset.open(folder.path("shards")), configuration: configuration) { log.append($0) }
        let batches = try drain(loader)
        XCTAssertEqual(loader.badSamples.byKind, [.invalidText: 1, .corruptShard: 1])
        XCTAssertEqual(loader.itemsSeen, 29)
        XCTAssertEqual(log.all.filter { $0.kind == .corruptShard }.map(\.key), ["b.tar"])
        XCTAssertTrue(log.all.contains { $0.key == "a.tar:bad" && $0.kind == .invalidText })
        XCTAssertGreaterThanOrEqual(batches.flatMap(\.keys).filter { $0.hasPrefix("a.tar:") }.count, 24)
    }

    func testTooManyBadSamplesStopTheRunWithExamples() throws {
        let folder = try TemporaryFolder()
        var lines: [String] = []
        for index in 0..<40 {
            if index % 5 == 0 {
                lines.append(#"{"image": "nowhere/\#(index).png", "caption": "missing"}"#)
            } else {
                try folder.write("\(index).png", try TestData.png(index))
                lines.append(#"{"image": "\#(index).png", "caption": "ok"}"#)
            }
        }
        let manifest = try folder.write("m.jsonl", text: lines.joined(separator: "\n"))
        var configuration = BatchLoader.Configuration(batchSize: 2, resolution: 8, order: DataOrder(seed: 0, shuffle: false))
        let loader = try BatchLoader(dataset: try TrainingDataset.open(manifest), configuration: configuration)
        var delivered = 0
        XCTAssertThrowsError(try { while try loader.next() != nil { delivered += 1 } }()) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("too many bad samples") && text.contains("m.jsonl:1") && text.contains("missing image"), text)
        }
        XCTAssertGreaterThan(delivered, 0, "batches before the limit are delivered")
        XCTAssertThrowsError(try loader.next(), "the error sticks")

        // Below the minimum the share is not judged until the epoch ends.
        configuration.minimumItemsForBadCheck = 1000
        configuration.epochs = 1
        let late = try BatchLoader(dataset: try TrainingDataset.open(manifest), configuration: configuration)
        delivered = 0
        XCTAssertThrowsError(try { while try late.next() != nil { delivered += 1 } }())
        XCTAssertEqual(delivered, 16)
    }

    func testAnEpochWithoutABatchStopsInsteadOfSpinning() throws {
        let folder = try TemporaryFolder()
        let dataset = try TrainingDataset.open(try goodManifest(folder, count: 3))
        let loader = try BatchLoader(dataset: dataset, configuration: BatchLoader.Configuration(batchSize: 4, resolution: 8, order: DataOrder(seed: 0)))
        XCTAssertThrowsError(try loader.next()) { error in
            XCTAssertTrue("\(error)".contains("batch size 4"), "\(error)")
        }
        let empty = TrainingDataset.indexed(IndexedDataset(source: "empty.jsonl", items: []))
        XCTAssertThrowsError(try BatchLoader(dataset: empty, configuration: BatchLoader.Configuration(batchSize: 1, resolution: 8, order: DataOrder(seed: 0))).next())
        XCTAssertThrowsError(try BatchLoader(dataset: empty, configuration: BatchLoader.Configuration(batchSize: 0, resolution: 8, order: DataOrder(seed: 0))))
    }

    func testDroppingTheLoaderEarlyStopsItsThread() throws {
        let folder = try TemporaryFolder()
        let dataset = try TrainingDataset.open(try goodManifest(folder, count: 10))
        for _ in 0..<5 {
            let loader = try BatchLoader(dataset: dataset, configuration: BatchLoader.Configuration(batchSize: 2, resolution: 8, order: DataOrder(seed: 0)))
            XCTAssertNotNil(try loader.next())
        }
    }
}
