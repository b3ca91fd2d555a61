import Foundation
import Imaging
import XCTest

@testable import SDSTraining

final class ExampleDataTests: XCTestCase {
    private func writeExample(_ folder: TemporaryFolder, count: Int = 20, overwrite: Bool = false) throws -> ExampleDataWriter.Summary {
        var options = ExampleDataWriter.Options()
        options.size = 32
        options.count = count
        options.shardSize = 8
        options.testPairs = 9
        options.seed = 7
        options.overwrite = overwrite
        return try ExampleDataWriter.write(to: folder.url.path, options: options)
    }

    /// JSONL, CSV, COCO and webdataset (folder, brace pattern) give the same captions and image bytes in the same order.
    func testEveryLayoutReadsTheSameSamples() throws {
        let folder = try TemporaryFolder()
        let summary = try writeExample(folder)
        XCTAssertEqual(summary.shards, 3)
        let sources: [(String, DatasetLayout)] = [
            (folder.path("train.jsonl"), .jsonl), (folder.path("train.csv"), .csv), (folder.path("coco"), .coco),
            (folder.path("coco/annotations/captions_train2017.json"), .coco), (folder.path("shards"), .webdataset),
            (folder.path("shards/train-{000..002}.tar"), .webdataset),
        ]
        var reference: [(String, Data)]?
        for (path, layout) in sources {
            XCTAssertEqual(try DatasetLayout.detect(path), layout, path)
            let items = try TrainingDataset.open(path).allItems()
            XCTAssertEqual(TestData.bad(items), [], path)
            let content = try TestData.samples(items).map(TestData.content)
            XCTAssertEqual(content.count, 20, path)
            if let reference {
                XCTAssertEqual(content.map(\.0), reference.map(\.0), "captions of \(path)")
                XCTAssertEqual(content.map(\.1), reference.map(\.1), "images of \(path)")
            } else {
                reference = content
            }
        }
        let jsonl = try JSONLManifest.read(path: folder.path("train.jsonl")).samples
        XCTAssertEqual(jsonl[3].key, "train.jsonl:4")
        XCTAssertEqual(jsonl[3].image, .file(folder.path("images/00003.png")))
        let shards = try ShardedDataset(source: folder.path("shards")).allItems()
        XCTAssertEqual(shards.first?.sample?.key, "train-000.tar:00000")
        XCTAssertEqual(try TrainingDataset.open(folder.path("coco")).allItems().first?.sample?.key, "captions_train2017.json:ann 0")
    }

    func testOutputIsByteIdenticalAndANonEmptyFolderIsRefused() throws {
        let first = try TemporaryFolder(), second = try TemporaryFolder()
        _ = try writeExample(first)
        _ = try writeExample(second)
        XCTAssertEqual(try snapshot(first.url), try snapshot(second.url))

        XCTAssertThrowsError(try writeExample(first)) { error in
            XCTAssertTrue("\(error)".contains("--overwrite"), "\(error)")
        }
        try first.write("notes.txt", text: "mine")
        _ = try writeExample(first, count: 20, overwrite: true)
        var expected = try snapshot(second.url)
        expected["notes.txt"] = Data("mine".utf8)
        XCTAssertEqual(try snapshot(first.url), expected, "overwrite replaces only its own entries")
    }

    /// Each test pair's captions use the same words in another order, and each image shows its
    /// own caption: the first-named colour sits on the side the relation says.
    func testSwapPairsAndImagesMatchTheirCaptions() throws {
        let folder = try TemporaryFolder()
        _ = try writeExample(folder)
        let lines = try String(contentsOfFile: folder.path("test-swaps.jsonl"), encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.count, 9)
        let world = try ExampleWorld(size: 32, seed: 7)
        for (index, line) in lines.enumerated() {
            let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: String])
            let captions = [object["caption_0"] ?? "", object["caption_1"] ?? ""]
            XCTAssertNotEqual(captions[0], captions[1])
            XCTAssertEqual(captions[0].split(separator: " ").sorted(), captions[1].split(separator: " ").sorted(), "\(captions)")
            let (first, second, swap) = world.swapPair(index)
            XCTAssertEqual([first.caption, second.caption], captions)
            XCTAssertEqual(swap, ExampleWorld.Swap.allCases[index % 3])
            let images = try [object["image_0"], object["image_1"]].map { try ImageDecoder.decode(path: folder.path($0 ?? "")) }
            XCTAssertNotEqual(images[0].pixels, images[1].pixels)
            try assertDepicts(images[0], first)
            try assertDepicts(images[1], second)
        }
        for index in 0..<20 {
            try assertDepicts(try ImageDecoder.decode(path: folder.path("images/\(ExampleDataWriter.number(index, width: 5)).png")),
                              world.scene(index))
        }
    }

    func testBadOptionsAreRefused() throws {
        let folder = try TemporaryFolder()
        var options = ExampleDataWriter.Options()
        options.size = 8
        XCTAssertThrowsError(try ExampleDataWriter.write(to: folder.path("a"), options: options))
        options = ExampleDataWriter.Options()
        options.count = 0
        XCTAssertThrowsError(try ExampleDataWriter.write(to: folder.path("b"), options: options))
        try folder.write("file", text: "x")
        XCTAssertThrowsError(try ExampleDataWriter.write(to: folder.path("file"), options: ExampleDataWriter.Options()))
    }

    /// The centroid of each object's colour lies on the side its relation says.
    private func assertDepicts(_ image: RGBImage, _ scene: ExampleWorld.Scene, file: StaticString = #filePath, line: UInt = #line) throws {
        func centroid(_ colour: RGBColor) throws -> (Double, Double) {
            var sx = 0.0, sy = 0.0, n = 0.0
            for y in 0..<image.height {
                for x in 0..<image.width {
                    let i = (y * image.width + x) * 3
                    if image.pixels[i] == colour.red && image.pixels[i + 1] == colour.green && image.pixels[i + 2] == colour.blue {
                        sx += Double(x); sy += Double(y); n += 1
                    }
                }
            }
            XCTAssertGreaterThan(n, 3, "\(scene.caption): colour present", file: file, line: line)
            return (sx / max(n, 1), sy / max(n, 1))
        }
        let a = try centroid(scene.first.colour.rgb), b = try centroid(scene.second.colour.rgb)
        let holds: Bool
        switch scene.relation {
        case .leftOf: holds = a.0 < b.0 && abs(a.0 - b.0) > abs(a.1 - b.1)
        case .rightOf: holds = a.0 > b.0 && abs(a.0 - b.0) > abs(a.1 - b.1)
        case .above: holds = a.1 < b.1 && abs(a.1 - b.1) > abs(a.0 - b.0)
        case .below: holds = a.1 > b.1 && abs(a.1 - b.1) > abs(a.0 - b.0)
        }
        XCTAssertTrue(holds, "\(scene.caption): centroids \(a) \(b)", file: file, line: line)
    }

    /// Relative path → bytes of every file (symlinks as their target text).
    private func snapshot(_ root: URL) throws -> [String: Data] {
        var result: [String: Data] = [:]
        let manager = FileManager.default
        for relative in try manager.subpathsOfDirectory(atPath: root.path) {
            let path = root.appendingPathComponent(relative).path
            if let target = try? manager.destinationOfSymbolicLink(atPath: path) {
                result[relative] = Data(("-> " + target).utf8)
                continue
            }
            var isFolder: ObjCBool = false
            if manager.fileExists(atPath: path, isDirectory: &isFolder), !isFolder.boolValue {
                result[relative] = try Data(contentsOf: URL(fileURLWithPath: path))
            }
        }
        return result
    }
}
