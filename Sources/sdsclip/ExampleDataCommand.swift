import ArgumentParser
import Foundation
import SDSTraining

struct ExampleDataCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "example-data",
        abstract: "Write the synthetic example world (coloured shapes in spatial relations) in every training data layout.",
        discussion: """
        Writes OUT/images/NNNNN.png; OUT/train.jsonl ({"image", "caption"} per line, paths relative to OUT); \
        OUT/train.csv (open_clip columns filepath,title, comma-separated); webdataset shards OUT/shards/train-NNN.tar \
        (NNNNN.png + NNNNN.txt); COCO captions OUT/coco/annotations/captions_train2017.json with OUT/coco/train2017 a \
        symlink to ../images; and Winoground-style test pairs OUT/test-swaps.jsonl (image_0, image_1, caption_0, \
        caption_1: the same words in another order) with their images in OUT/test-images/. The output depends only \
        on the options, byte for byte.
        """
    )

    @Argument(help: "The output folder (created; must be empty unless --overwrite).")
    var output: String

    @Option(help: "Side of the square images in pixels (16 to 1024).")
    var size = 64

    @Option(help: "Number of training samples.")
    var count = 64

    @Option(help: "Seed of the scenes and their placement.")
    var seed: UInt64 = 0

    @Option(name: .customLong("shard-size"), help: "Samples per webdataset shard.")
    var shardSize = 16

    @Option(name: .customLong("test-pairs"), help: "Number of Winoground-style test pairs.")
    var testPairs = 16

    @Flag(help: "Write into a non-empty folder, replacing the entries example-data makes (other files are kept).")
    var overwrite = false

    func run() throws {
        try reportingErrors {
            var options = ExampleDataWriter.Options()
            options.size = size
            options.count = count
            options.seed = seed
            options.shardSize = shardSize
            options.testPairs = testPairs
            options.overwrite = overwrite
            let started = Date()
            let summary = try ExampleDataWriter.write(to: output, options: options)
            let seconds = Date().timeIntervalSince(started)
            print("wrote \(summary.images) samples (\(size)x\(size) PNG) as JSONL, CSV, COCO and \(summary.shards) webdataset shards, "
                  + "and \(summary.testPairs) test pairs, to \(output) in \(String(format: "%.2f", seconds)) s")
        }
    }
}
