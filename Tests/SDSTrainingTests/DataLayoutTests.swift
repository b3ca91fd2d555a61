import Foundation
import XCTest

@testable import SDSTraining

final class DelimitedManifestTests: XCTestCase {
    func testRFC4180QuotingLineNumbersAndCustomColumns() throws {
        let folder = try TemporaryFolder()
        let csv = "\u{FEFF}id,filepath,title\r\n"
            + "1,a.png,plain caption\r\n"
            + "2,sub/b.png,\"with, comma and \"\"quotes\"\"\"\r\n"
            + "\n"
            + "3,/abs/c.png,\"two\nlines\"\n"
            + "4,d.png\n"
            + "5,e.png,\"  padded  \"\n"
            + "6,f.png,\"never closed\n"
        let path = try folder.write("m.csv", text: csv)
        let items = try DelimitedManifest.read(path: path).items
        XCTAssertEqual(TestData.samples(items), [
            TrainingSample(key: "m.csv:2", caption: "plain caption", image: .file(folder.path("a.png"))),
            TrainingSample(key: "m.csv:3", caption: "with, comma and \"quotes\"", image: .file(folder.path("sub/b.png"))),
            TrainingSample(key: "m.csv:5", caption: "two\nlines", image: .file("/abs/c.png")),
            TrainingSample(key: "m.csv:8", caption: "padded", image: .file(folder.path("e.png"))),
        ])
        XCTAssertEqual(TestData.bad(items).map(\.key), ["m.csv:7", "m.csv:9"])
        XCTAssertEqual(TestData.bad(items).map(\.kind), [.malformedRecord, .malformedRecord])
        XCTAssertTrue(TestData.bad(items)[0].detail.contains("expected 3 fields"), TestData.bad(items)[0].detail)

        let tsv = try folder.write("m.tsv", text: "image\ttext\nx.png\tcaption, with comma\n")
        XCTAssertEqual(DelimitedManifest.defaultSeparator(for: tsv), 9)
        var options = DatasetOptions()
        options.csvImageColumn = "image"
        options.csvCaptionColumn = "text"
        XCTAssertEqual(try TrainingDataset.open(tsv, options: options).allItems().first?.sample?.caption, "caption, with comma")
        XCTAssertThrowsError(try TrainingDataset.open(tsv)) { error in
            XCTAssertTrue("\(error)".contains("filepath") && "\(error)".contains("line 1"), "\(error)")
        }
        XCTAssertThrowsError(try DelimitedManifest.read(path: try folder.write("empty.csv", text: "")))
    }

    func testInvalidUTF8AndEmptyCaptionsAreBadSamples() throws {
        let folder = try TemporaryFolder()
        let path = try folder.write("m.csv", Array("filepath,title\na.png,\nb.png,ok\nc.png,".utf8) + [0xFF, 0xFE] + Array("\n".utf8))
        let bad = TestData.bad(try DelimitedManifest.read(path: path).items)
        XCTAssertEqual(bad.map(\.kind), [.emptyCaption, .invalidText])
        XCTAssertEqual(bad.map(\.key), ["m.csv:2", "m.csv:4"])
    }
}

final class JSONLManifestTests: XCTestCase {
    func testPathsBlankLinesAndMalformedLines() throws {
        let folder = try TemporaryFolder()
        let lines = [
            #"{"image": "images/a.png", "caption": " a caption "}"#, "", "   ",
            #"{"image": "/abs/b.png", "caption": "b"}"#,
            #"{"image": "c.png"}"#, "not json", #"["image", "caption"]"#, #"{"image": "", "caption": "x"}"#,
        ]
        let path = try folder.write("data/m.jsonl", text: lines.joined(separator: "\r\n"))
        let items = try JSONLManifest.read(path: path).items
        XCTAssertEqual(TestData.samples(items), [
            TrainingSample(key: "m.jsonl:1", caption: "a caption", image: .file(folder.path("data/images/a.png"))),
            TrainingSample(key: "m.jsonl:4", caption: "b", image: .file("/abs/b.png")),
        ])
        XCTAssertEqual(TestData.bad(items).map(\.key), ["m.jsonl:5", "m.jsonl:6", "m.jsonl:7", "m.jsonl:8"])
        XCTAssertTrue(TestData.bad(items).allSatisfy { $0.kind == .malformedRecord })
        XCTAssertThrowsError(try JSONLManifest.read(path: folder.path("missing.jsonl"))) { error in
            XCTAssertTrue("\(error)".contains("missing.jsonl") && "\(error)".contains("does not exist"), "\(error)")
        }
    }
}

final class COCOCaptionsTests: XCTestCase {
    func testSplitFolderOneSamplePerCaptionAndOverride() throws {
        let folder = try TemporaryFolder()
        let json = """
        {"images": [{"id": 1, "file_name": "one.jpg"}, {"id": 2, "file_name": "two.jpg"}],
         "annotations": [{"id": 10, "image_id": 1, "caption": "first"}, {"id": 11, "image_id": 1, "caption": "again"},
                         {"id": 12, "image_id": 3, "caption": "orphan"}, {"image_id": 2}]}
        """
        let annotations = try folder.write("coco/annotations/captions_val2014.json", text: json)
        XCTAssertEqual(try DatasetLayout.detect(folder.path("coco")), .coco)
        let items = try TrainingDataset.open(folder.path("coco")).allItems()
        XCTAssertEqual(TestData.samples(items), [
            TrainingSample(key: "captions_val2014.json:ann 10", caption: "first", image: .file(folder.path("coco/val2014/one.jpg"))),
            TrainingSample(key: "captions_val2014.json:ann 11", caption: "again", image: .file(folder.path("coco/val2014/one.jpg"))),
        ])
        XCTAssertEqual(TestData.bad(items).map(\.key), ["captions_val2014.json:ann 12", "captions_val2014.json:#3"])
        let other = try COCOCaptions.read(annotations: annotations, imageFolder: "/images")
        XCTAssertEqual(other.samples.first?.image, .file("/images/one.jpg"))

        _ = try folder.write("coco/annotations/captions_train2014.json", text: json)
        XCTAssertThrowsError(try TrainingDataset.open(folder.path("coco"))) { error in
            XCTAssertTrue("\(error)".contains("captions_train2014.json, captions_val2014.json"), "\(error)")
        }
        let bad = try folder.write("bad/annotations/captions_x.json", text: #"{"images": 3}"#)
        XCTAssertThrowsError(try COCOCaptions.read(annotations: bad))
    }
}

final class ShardListTests: XCTestCase {
    func testBraceExpansion() throws {
        XCTAssertEqual(try ShardList.expandBraces("s-{000..003}.tar"), ["s-000.tar", "s-001.tar", "s-002.tar", "s-003.tar"])
        XCTAssertEqual(try ShardList.expandBraces("{8..11}"), ["8", "9", "10", "11"])
        XCTAssertEqual(try ShardList.expandBraces("{3..1}"), ["3", "2", "1"])
        XCTAssertEqual(try ShardList.expandBraces("{a,b}-{0..1}"), ["a-0", "a-1", "b-0", "b-1"])
        XCTAssertEqual(try ShardList.expandBraces("x{a,{b,c}0}y"), ["xay", "xb0y", "xc0y"])
        XCTAssertEqual(try ShardList.expandBraces("plain.tar"), ["plain.tar"])
        let deep = String(repeating: "{a,", count: 3000) + String(repeating: "}", count: 3000)
        for bad in ["s-{000..003.tar", "{a}", "{1..x}", "{0..99999999}", "{}", deep] {
            XCTAssertThrowsError(try ShardList.expandBraces(bad), bad)
        }
    }

    func testResolveFilesFoldersAndPatterns() throws {
        let folder = try TemporaryFolder()
        let tar = try TestData.tar([])
        for name in ["b.tar", "a.tar.gz", "c.tgz", ".hidden.tar", "notes.txt"] { try folder.write("s/\(name)", tar) }
        XCTAssertEqual(try ShardList.resolve(folder.path("s")), ["a.tar.gz", "b.tar", "c.tgz"].map { folder.path("s/\($0)") })
        XCTAssertEqual(try ShardList.resolve(folder.path("s/b.tar")), [folder.path("s/b.tar")])
        XCTAssertThrowsError(try ShardList.resolve(folder.path("s/{a,b,z}.tar"))) { error in
            XCTAssertTrue("\(error)".contains("z.tar"), "\(error)")
        }
        XCTAssertThrowsError(try ShardList.resolve(folder.path("nothing")))
        try FileManager.default.createDirectory(atPath: folder.path("empty"), withIntermediateDirectories: true)
        XCTAssertThrowsError(try ShardList.resolve(folder.path("empty")))
    }
}

final class WebDatasetTests: XCTestCase {
    func testGroupingKeysAndCaptionSources() throws {
        let folder = try TemporaryFolder()
        let png = try TestData.png(1), jpg = try Data(contentsOf: TestData.fixtures.appendingPathComponent("baseline_q90_240x160.jpg"))
        let members: [(String, [UInt8])] = [
            ("d/001.png", png), ("d/001.txt", Array("  from txt \n".utf8)), ("d/001.json", Array(#"{"caption": "ignored"}"#.utf8)),
            ("002.PNG", png), ("002.jpg", [UInt8](jpg)), ("002.json", Array(#"{"caption": "from json"}"#.utf8)),
            ("README", Array("no extension".utf8)),
            ("003.seg.png", png), ("003.txt", Array("no image".utf8)),
            ("004.png", png),
            ("005.png", png), ("005.json", Array(#"{"text": "x"}"#.utf8)),
            ("006.png", png), ("006.txt", Array("a".utf8)), ("006.txt", Array("b".utf8)),
        ]
        let path = try folder.write("shard.tar", try TestData.tar(members))
        let items = Array(ShardedDataset(shards: [path]).items(ofShard: 0))
        XCTAssertEqual(items.count, 6)
        XCTAssertEqual(items[0].sample, TrainingSample(key: "shard.tar:d/001", caption: "from txt", image: .bytes(Data(png), name: "shard.tar:d/001.png")))
        XCTAssertEqual(items[1].sample, TrainingSample(key: "shard.tar:002", caption: "from json", image: .bytes(jpg, name: "shard.tar:002.jpg")),
                       "jpg is preferred, extensions are lower-cased")
        XCTAssertEqual(TestData.bad(items).map(\.key), ["shard.tar:003", "shard.tar:004", "shard.tar:005", "shard.tar:006"])
        XCTAssertEqual(TestData.bad(items).map(\.kind), [.incompleteSample, .incompleteSample, .malformedRecord, .malformedRecord])

        // The same shard gzip-compressed reads the same.
        let gz = try folder.write("shard.tar.gz", try TestData.gzip(try TestData.tar(members)))
        XCTAssertEqual(try TrainingDataset.open(gz).allItems().map { $0.sample?.caption }, items.map { $0.sample?.caption })
    }

    func testDamagedShardsKeepTheSamplesBeforeTheDamage() throws {
        let folder = try TemporaryFolder()
        var members: [(String, [UInt8])] = []
        for index in 0..<4 { members += [("\(index).png", try TestData.png(index, size: 40)), ("\(index).txt", Array("caption \(index)".utf8))] }
        let whole = try TestData.tar(members)
        // Cut in the middle of member 2.png's data (each member: 512 header + data padded to 512).
        let cut = try folder.write("cut.tar", Array(whole.prefix(whole.count / 2 + 100)))
        let items = Array(ShardedDataset(shards: [cut]).items(ofShard: 0))
        let good = TestData.samples(items).map(\.caption)
        XCTAssertTrue(["caption 0"] == good || ["caption 0", "caption 1"] == good, "\(good)")
        XCTAssertEqual(TestData.bad(items).map(\.kind), [.corruptShard])
        XCTAssertEqual(TestData.bad(items).first?.key, "cut.tar")
        XCTAssertTrue(TestData.bad(items).first?.detail.contains(cut) ?? false)

        for (name, bytes) in [("random.tar", (0..<3000).map { UInt8(truncatingIfNeeded: $0 &* 7919 >> 3) }), ("empty.tar", [])] {
            let path = try folder.write(name, bytes)
            let items = Array(ShardedDataset(shards: [path]).items(ofShard: 0))
            XCTAssertTrue(TestData.samples(items).isEmpty, name)
            XCTAssertLessThanOrEqual(items.count, 1, name)
        }
        // A shard deleted after listing is a corrupt shard, not a crash.
        let listed = ShardedDataset(shards: [folder.path("gone.tar")])
        XCTAssertEqual(TestData.bad(listed.allItems()).map(\.kind), [.corruptShard])
    }
}
