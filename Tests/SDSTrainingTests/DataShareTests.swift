import Foundation
import XCTest

@testable import SDSTraining

/// `BatchLoader.Configuration.share`: how ranks split the data without talking to each other.
final class DataShareTests: XCTestCase {
    private func drain(_ loader: BatchLoader) throws -> [TrainingBatch] {
        var batches: [TrainingBatch] = []
        while let batch = try loader.next() { batches.append(batch) }
        return batches
    }

    private func loader(_ dataset: TrainingDataset, share: DataShare, epochs: Int = 2) throws -> BatchLoader {
        var configuration = BatchLoader.Configuration(batchSize: 3, resolution: 8, order: DataOrder(seed: 11))
        configuration.epochs = epochs
        configuration.maximumBadFraction = 0.5
        configuration.share = share
        return try BatchLoader(dataset: dataset, configuration: configuration)
    }

    /// Indexed data with a malformed record, a missing file and an undecodable image: every rank sees the
    /// same batch boundaries and positions; owned batches together are exactly the one-rank batches,
    /// the undecodable image shrinking its batch for every rank count alike; bad samples are counted once.
    func testRanksShareTheGlobalBatchSequence() throws {
        let folder = try TemporaryFolder()
        var lines: [String] = []
        for index in 0..<20 {
            try folder.write("img/\(index).png", try TestData.png(index))
            lines.append(#"{"image": "img/\#(index).png", "caption": "caption \#(index)"}"#)
        }
        try folder.write("img/broken.png", Array("not a png".utf8))
        lines += [#"{"image": "img/broken.png", "caption": "broken"}"#, #"{"image": "img/gone.png", "caption": "gone"}"#, #"{"caption": "no image"}"#]
        let dataset = try TrainingDataset.open(try folder.write("m.jsonl", text: lines.joined(separator: "\n")))

        let alone = try loader(dataset, share: DataShare(rank: 0, ranks: 1))
        let reference = try drain(alone)
        XCTAssertEqual(reference.count, 14, "21 items an epoch pass the checks that need no decoding: 7 batches of 3")
        XCTAssertTrue(reference.allSatisfy { !$0.isPlaceholder })
        XCTAssertEqual(reference.filter { $0.keys.count == 2 }.count, 2, "the undecodable image shrinks its batch once an epoch")
        for ranks in [2, 3] {
            var owned: [Int: TrainingBatch] = [:]
            var bad = 0
            for rank in 0..<ranks {
                let shared = try loader(dataset, share: DataShare(rank: rank, ranks: ranks))
                let batches = try drain(shared)
                XCTAssertEqual(batches.map(\.positionAfter), reference.map(\.positionAfter), "rank \(rank) of \(ranks)")
                XCTAssertEqual(batches.map(\.epoch), reference.map(\.epoch))
                for (index, batch) in batches.enumerated() {
                    XCTAssertEqual(batch.isPlaceholder, index % ranks != rank, "batch \(index)")
                    if !batch.isPlaceholder { owned[index] = batch }
                }
                bad += shared.badSamples.total
            }
            XCTAssertEqual(owned.keys.sorted(), Array(reference.indices))
            XCTAssertEqual(reference.indices.map { owned[$0]?.keys ?? [] }, reference.map(\.keys), "\(ranks) ranks")
            XCTAssertEqual(reference.indices.map { owned[$0]?.pixels ?? [] }, reference.map(\.pixels))
            XCTAssertEqual(bad, alone.badSamples.total, "each bad sample counted by one rank")
        }
        XCTAssertEqual(alone.badSamples.byKind, [.malformedRecord: 2, .missingImage: 2, .undecodableImage: 2])
    }

    /// Webdataset: each epoch's shard order is dealt by place, so the ranks read disjoint shards that
    /// together are all of them, and the deal changes with the epoch.
    func testWebdatasetShardsAreDealtByPlaceEachEpoch() throws {
        let folder = try TemporaryFolder()
        for shard in 0..<5 {
            var members: [(String, [UInt8])] = []
            for index in 0..<2 { members += [("\(index).png", try TestData.png(index)), ("\(index).txt", Array("shard \(shard)".utf8))] }
            try folder.write("shards/s\(shard).tar", try TestData.tar(members))
        }
        let dataset = try TrainingDataset.open(folder.path("shards"))
        func keys(epoch: Int, share: DataShare?) -> Set<String> {
            Set(SampleStream(dataset: dataset, order: DataOrder(seed: 3), epoch: epoch, share: share).compactMap { $0.sample?.key })
        }
        var firstShares: Set<Set<String>> = []
        for epoch in 0..<4 {
            let all = keys(epoch: epoch, share: nil)
            let shares = (0..<2).map { keys(epoch: epoch, share: DataShare(rank: $0, ranks: 2)) }
            XCTAssertEqual(all.count, 10)
            XCTAssertTrue(shares[0].isDisjoint(with: shares[1]))
            XCTAssertEqual(shares[0].union(shares[1]), all)
            XCTAssertEqual(shares.map(\.count), [6, 4], "3 and 2 whole shards")
            firstShares.insert(shares[0])
        }
        XCTAssertGreaterThan(firstShares.count, 1, "re-dealt across epochs")
    }
}
