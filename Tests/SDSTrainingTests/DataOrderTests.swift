import Foundation
import XCTest

@testable import SDSTraining

final class DataOrderTests: XCTestCase {
    private func indexed(_ count: Int) -> TrainingDataset {
        .indexed(IndexedDataset(source: "test", items: (0..<count).map {
            .sample(TrainingSample(key: "k\($0)", caption: "c\($0)", image: .file("/\($0).png")))
        }))
    }

    /// Shards of uneven sizes, one holding a bad sample.
    private func sharded(_ folder: TemporaryFolder) throws -> TrainingDataset {
        let png = try TestData.png(3)
        var paths: [String] = []
        for (shard, size) in [7, 3, 9, 1, 6].enumerated() {
            var members: [(String, [UInt8])] = []
            for index in 0..<size {
                members.append(("\(index).png", png))
                if !(shard == 2 && index == 4) { members.append(("\(index).txt", Array("s\(shard) i\(index)".utf8))) }
            }
            paths.append(try folder.write("shard-\(shard).tar", try TestData.tar(members)))
        }
        return .sharded(ShardedDataset(shards: paths))
    }

    private func keys(_ stream: SampleStream) -> [String] {
        stream.map { item in
            switch item {
            case .sample(let sample): return sample.key
            case .bad(let bad): return "bad " + bad.key
            }
        }
    }

    func testGeneratorSequenceIsPinned() {
        // Pinned values: a change here changes every data order and example image.
        var random = SeededGenerator(seed: 0)
        XCTAssertEqual((0..<3).map { _ in random.next() }, Self.pinned)
        XCTAssertEqual(SeedMixer.derive(1, 0), SeedMixer.derive(1, 0))
        XCTAssertNotEqual(SeedMixer.derive(1, 0), SeedMixer.derive(0, 1))
        var bounded = SeededGenerator(seed: 5)
        XCTAssertTrue((0..<1000).allSatisfy { _ in (0..<7).contains(bounded.below(7)) })
    }

    static let pinned: [UInt64] = [0x99EC_5F36_CB75_F2B4, 0xBF6E_1F78_4956_452A, 0x1A5F_849D_4933_E6E0]

    func testIndexedOrderIsASeededPermutationAndResumesExactly() {
        let dataset = indexed(50)
        let order = DataOrder(seed: 42)
        let full = keys(SampleStream(dataset: dataset, order: order, epoch: 3))
        XCTAssertEqual(Set(full).count, 50)
        XCTAssertNotEqual(full, (0..<50).map { "k\($0)" })
        XCTAssertEqual(full, keys(SampleStream(dataset: dataset, order: order, epoch: 3)), "same seed and epoch, same order")
        XCTAssertNotEqual(full, keys(SampleStream(dataset: dataset, order: order, epoch: 4)), "each epoch its own order")
        XCTAssertNotEqual(full, keys(SampleStream(dataset: dataset, order: DataOrder(seed: 43), epoch: 3)))
        for position in [0, 1, 17, 49, 50, 80] {
            let resumed = SampleStream(dataset: dataset, order: order, epoch: 3, position: position)
            XCTAssertEqual(keys(resumed), Array(full.dropFirst(position)), "resume at \(position)")
        }
        XCTAssertEqual(keys(SampleStream(dataset: dataset, order: DataOrder(seed: 1, shuffle: false), epoch: 0)), (0..<50).map { "k\($0)" })
    }

    func testWebDatasetOrderResumesExactly() throws {
        let folder = try TemporaryFolder()
        let dataset = try sharded(folder)
        let order = DataOrder(seed: 9, shuffleBuffer: 4)
        let full = keys(SampleStream(dataset: dataset, order: order, epoch: 1))
        XCTAssertEqual(full.count, 26)
        XCTAssertEqual(Set(full).count, 26)
        XCTAssertTrue(full.contains("bad shard-2.tar:4"))
        XCTAssertEqual(full, keys(SampleStream(dataset: dataset, order: order, epoch: 1)))
        XCTAssertNotEqual(full, keys(SampleStream(dataset: dataset, order: order, epoch: 2)))
        for position in [0, 1, 5, 7, 13, 25, 26, 30] {
            let resumed = SampleStream(dataset: dataset, order: order, epoch: 1, position: position)
            XCTAssertEqual(resumed.position, min(position, 26))
            XCTAssertEqual(keys(resumed), Array(full.dropFirst(position)), "resume at \(position)")
        }
        // Shards are read whole, one after another: each shard's samples are contiguous.
        let shardOfEach = full.map { $0.replacingOccurrences(of: "bad ", with: "").split(separator: ":")[0] }
        var runs = 1
        for index in 1..<shardOfEach.count where shardOfEach[index] != shardOfEach[index - 1] { runs += 1 }
        XCTAssertEqual(runs, 5)
        let plain = keys(SampleStream(dataset: dataset, order: DataOrder(seed: 9, shuffle: false), epoch: 1))
        XCTAssertEqual(plain.prefix(3), ["shard-0.tar:0", "shard-0.tar:1", "shard-0.tar:2"])
    }
}
