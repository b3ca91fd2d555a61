import Foundation
import XCTest

/// `inspect`, `tokenize` and `embed --json` against their published schemas (docs/schemas/), on every
/// relevant fixture, and the behaviour behind them: --filter, the chosen file, the similarity matrix,
/// reading texts from a file or stdin, --version, exit statuses and completion.
final class JSONReportsCLITests: XCTestCase {
    private func sdsclip(_ arguments: [String]) throws -> CLITests.Run { try CLITests.sdsclip(arguments) }

    private func schema(_ name: String) throws -> JSONSchemaValidator {
        try JSONSchemaValidator(schemaFile: CLITests.root.appendingPathComponent("docs/schemas/\(name).schema.json").path)
    }

    private func object(_ run: CLITests.Run, _ context: String) throws -> [String: Any] {
        XCTAssertEqual(run.status, 0, "\(context): \(run.stderr)")
        return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any], context)
    }

    private func temporaryFolder() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("sdsclip-json-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    /// Every weight file and folder directly under the fixture folders `inspect` is meant for.
    private func inspectFixtures() throws -> [String] {
        var paths: [String] = []
        for folder in ["fixtures/clip", "fixtures/sd", "fixtures/torch", "formats/valid"] {
            let names = try FileManager.default.contentsOfDirectory(atPath: CLITests.root.appendingPathComponent(folder).path).sorted()
            paths += names.filter { !$0.hasSuffix(".json") && !$0.hasSuffix(".md") || $0.hasSuffix(".safetensors.index.json") }
                .map { "\(folder)/\($0)" }
        }
        return paths
    }

    func testInspectJSONMatchesItsSchemaOnEveryFixture() throws {
        let validator = try schema("inspect")
        var validated = 0, sawCLIP = false, sawSD = false, sawPickle = false
        for path in try inspectFixtures() {
            let run = try sdsclip(["inspect", path, "--json"])
            if run.status != 0 {
                // Only folders that hold two equally good weight files may refuse, and they say so.
                XCTAssertTrue(run.stderr.contains("several weight files could be meant"), "\(path): \(run.stderr)")
                continue
            }
            let report = try object(run, path)
            XCTAssertEqual(validator.violations(of: report), [], path)
            XCTAssertEqual(report["path"] as? String, CLITests.root.appendingPathComponent(path).standardizedFileURL.path, path)
            XCTAssertTrue((report["files"] as? [String] ?? []).allSatisfy { $0.hasPrefix("/") }, path)
            sawCLIP = sawCLIP || report["clip"] is [String: Any]
            sawSD = sawSD || report["stableDiffusion"] is [String: Any]
            sawPickle = sawPickle || report["pickle"] is [String: Any]
            validated += 1
        }
        XCTAssertGreaterThan(validated, 40)
        XCTAssertTrue(sawCLIP && sawSD && sawPickle, "the fixtures exercise every optional section")

        // The section the text report shows is in the JSON too; what does not apply is null, not absent.
        let sd = try object(try sdsclip(["inspect", "fixtures/sd/sd1_tiny.safetensors", "--json"]), "sd1")
        let section = try XCTUnwrap(sd["stableDiffusion"] as? [String: Any])
        XCTAssertEqual(section["version"] as? String, "SD 1.x")
        XCTAssertEqual((section["components"] as? [[String: Any]])?.compactMap { $0["component"] as? String }, ["unet", "vae", "text_encoder"])
        XCTAssertTrue(sd["clip"] is NSNull)
        XCTAssertTrue(sd["chosen"] is NSNull)
        let text = try sdsclip(["inspect", "fixtures/sd/sd1_tiny.safetensors"])
        XCTAssertTrue(text.stdout.contains("stable diffusion: SD 1.x"), text.stdout)
        XCTAssertTrue(text.stdout.contains("  total         \(Self.grouped(section["totalParameters"] as? Int ?? -1)) parameters"), text.stdout)
        let clip = try object(try sdsclip(["inspect", "fixtures/clip/hf", "--json"]), "clip")
        XCTAssertTrue(clip["stableDiffusion"] is NSNull)
        XCTAssertTrue(clip["pickle"] is NSNull)
        XCTAssertTrue((clip["clip"] as? [String: Any])?["embedDimension"] is Int)
    }

    private static func grouped(_ value: Int) -> String {
        let formatter = NumberFormatter()
        formatter.numberStyle = .decimal
        formatter.groupingSeparator = ","
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.usesGroupingSeparator = true
        return formatter.string(from: NSNumber(value: value)) ?? "\(value)"
    }

    func testInspectFilterLimitsTheListingAndAFolderNamesItsChosenFile() throws {
        let report = try object(try sdsclip(["inspect", "fixtures/clip/hf", "--filter", "*layer_norm*", "--json"]), "filter")
        XCTAssertEqual(try schema("inspect").violations(of: report), [])
        let names = try XCTUnwrap(report["tensors"] as? [[String: Any]]).compactMap { $0["name"] as? String }
        XCTAssertFalse(names.isEmpty)
        XCTAssertTrue(names.allSatisfy { $0.contains("layer_norm") }, "\(names)")
        XCTAssertEqual(report["matchedCount"] as? Int, names.count)
        XCTAssertEqual(report["tensorCount"] as? Int, 78, "the totals still count every tensor")
        XCTAssertEqual(report["filter"] as? String, "*layer_norm*")
        let chosen = try XCTUnwrap(report["chosen"] as? [[String: Any]])
        XCTAssertEqual(chosen.first?["file"] as? String, CLITests.root.appendingPathComponent("fixtures/clip/hf/model.safetensors").path)
        XCTAssertTrue(chosen.first?["component"] is NSNull)

        let text = try sdsclip(["inspect", "fixtures/clip/hf", "--filter", "*layer_norm*"])
        XCTAssertEqual(text.status, 0, text.stderr)
        XCTAssertTrue(text.stdout.contains("chosen:   \(CLITests.root.path)/fixtures/clip/hf/model.safetensors"), text.stdout)
        XCTAssertTrue(text.stdout.contains("matched:  \(names.count) of 78 tensors"), text.stdout)
        XCTAssertFalse(text.stdout.contains("mlp.fc1.weight"), "unmatched tensors are not listed")

        let pipeline = try object(try sdsclip(["inspect", "fixtures/sd/sd1_diffusers", "--json"]), "pipeline")
        let components = try XCTUnwrap(pipeline["chosen"] as? [[String: Any]])
        XCTAssertEqual(components.compactMap { $0["component"] as? String }, ["text_encoder", "unet", "vae"].filter { name in
            components.contains { $0["component"] as? String == name } })
        XCTAssertTrue(components.allSatisfy { ($0["file"] as? String)?.hasPrefix(CLITests.root.path + "/fixtures/sd/sd1_diffusers/") == true })
        XCTAssertEqual(components.count, 3)
    }

    /// Runs sdsclip with `input` on stdin and extra environment variables.
    static func sdsclip(_ arguments: [String], input: Data? = nil, environment: [String: String] = [:]) throws -> CLITests.Run {
        let binary = Bundle.main.bundleURL.appendingPathComponent("sdsclip")
        guard FileManager.default.isExecutableFile(atPath: binary.path) else { throw XCTSkip("sdsclip is not built at \(binary.path)") }
        let process = Process()
        process.executableURL = binary
        process.arguments = arguments
        process.currentDirectoryURL = CLITests.root
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let out = Pipe(), err = Pipe(), inPipe = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = inPipe
        try process.run()
        // stdin is fed and stderr drained on their own threads, so a large input or output cannot deadlock.
        let group = DispatchGroup()
        let stderrBox = DataBox()
        DispatchQueue.global().async(group: group) {
            if let input { inPipe.fileHandleForWriting.write(input) }
            try? inPipe.fileHandleForWriting.close()
        }
        DispatchQueue.global().async(group: group) { stderrBox.data = err.fileHandleForReading.readDataToEndOfFile() }
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        process.waitUntilExit()
        let stderrData = stderrBox.data
        return CLITests.Run(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                            stderr: String(decoding: stderrData, as: UTF8.self))
    }

    private final class DataBox: @unchecked Sendable { var data = Data() }

    func testTokenizeReadsFilesAndStdinAndTextsThatBeginWithADash() throws {
        let folder = try temporaryFolder()
        let file = folder.appendingPathComponent("texts.txt")
        try Data("a photo of a cat\r\n-1 points\n\n".utf8).write(to: file)
        let validator = try schema("tokenize")

        let fromFile = try object(try sdsclip(["tokenize", "--file", file.path, "--context-length", "8", "--json"]), "file")
        XCTAssertEqual(validator.violations(of: fromFile), [])
        let rows = try XCTUnwrap(fromFile["rows"] as? [[String: Any]])
        XCTAssertEqual(rows.compactMap { $0["text"] as? String }, ["a photo of a cat", "-1 points", ""], "CRLF and a final newline dropped; an empty line is an empty text")
        XCTAssertEqual(rows.first?["ids"] as? [Int], [49406, 320, 1125, 539, 320, 2368, 49407, 0])
        XCTAssertEqual(rows.last?["ids"] as? [Int], [49406, 49407, 0, 0, 0, 0, 0, 0])
        XCTAssertEqual(fromFile["file"] as? String, file.standardizedFileURL.path)
        XCTAssertTrue(fromFile["model"] is NSNull)

        // `--` lets a text that begins with '-' be an argument; it tokenizes as the file's line did.
        let dashed = try sdsclip(["tokenize", "--context-length", "8", "--", "-1 points"])
        XCTAssertEqual(dashed.status, 0, dashed.stderr)
        XCTAssertEqual(dashed.stdout, "[" + (rows[1]["ids"] as? [Int] ?? []).map(String.init).joined(separator: ", ") + "]\n")
        let asOption = try sdsclip(["tokenize", "-1 points"])
        XCTAssertEqual(asOption.status, 64, "without `--` it is a usage error, and --help says what to do")
        XCTAssertTrue(try sdsclip(["tokenize", "--help"]).stdout.contains("put `--` before the"))

        let stdin = try Self.sdsclip(["tokenize", "--file", "-", "--context-length", "8"], input: try Data(contentsOf: file))
        XCTAssertEqual(stdin.status, 0, stdin.stderr)
        XCTAssertEqual(stdin.stdout.split(separator: "\n").count, 3)
        XCTAssertTrue(stdin.stdout.hasPrefix("[49406, 320, 1125, 539, 320, 2368, 49407, 0]\n"), stdin.stdout)

        let stdinJSON = try object(try Self.sdsclip(["tokenize", "--file", "-", "--json"], input: Data("x\n".utf8)), "stdin json")
        XCTAssertEqual(validator.violations(of: stdinJSON), [])
        XCTAssertEqual(stdinJSON["file"] as? String, "-")
        let args = try object(try sdsclip(["tokenize", "a", "b", "--json", "--model", "fixtures/demo/trained/clip"]), "args")
        XCTAssertEqual(validator.violations(of: args), [])
        XCTAssertTrue(args["file"] is NSNull)
        XCTAssertEqual(args["model"] as? String, CLITests.root.appendingPathComponent("fixtures/demo/trained/clip").path)

        let both = try sdsclip(["tokenize", "a", "--file", file.path])
        XCTAssertEqual(both.status, 64)
        XCTAssertTrue(both.stderr.contains("not both"), both.stderr)
    }

    func testTokenizeOneMegabyteFromStdinQuickly() throws {
        var text = ""
        var line = 0
        let words = ["a", "photo", "of", "the", "cat", "riding", "horse", "-dash", "café", "it's", "123"]
        while text.utf8.count < 1 << 20 {
            text += (0..<(5 + line % 17)).map { words[($0 * 7 + line) % words.count] }.joined(separator: " ") + "\n"
            line += 1
        }
        let start = Date()
        let run = try Self.sdsclip(["tokenize", "--file", "-"], input: Data(text.utf8))
        let seconds = Date().timeIntervalSince(start)
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertEqual(run.stdout.split(separator: "\n").count, line)
        XCTAssertLessThan(seconds, 60, "1 MiB of text took \(seconds) s")
    }

    func testEmbedImagesAndTextsGiveOpenCLIPsZeroShotProbabilitiesAndSkipABadImage() throws {
        let folder = try temporaryFolder()
        let output = folder.appendingPathComponent("embeds.safetensors")
        let images = ["fixtures/images/rgb_224x224.png", "fixtures/images/cmyk_16x16.jpg", folder.path, "fixtures/images/rgb16_90x70.png"]
        let texts = ["a red circle", "a blue square"]
        let run = try sdsclip(["embed", "fixtures/demo/clip", "--image"] + images + ["--text"] + texts + ["--json", "--output", output.path])
        let report = try object(run, "embed")
        XCTAssertEqual(try schema("embed").violations(of: report), [])
        XCTAssertTrue(run.stderr.contains("skipped \(folder.path): cannot read image file '\(folder.path)': is a folder, not a file"), run.stderr)
        let embedded = try XCTUnwrap(report["images"] as? [[String: Any]])
        XCTAssertEqual(embedded.compactMap { $0["path"] as? String },
                       [images[0], images[1], images[3]].map { CLITests.root.appendingPathComponent($0).path }, "CMYK and 16-bit images embed")
        XCTAssertEqual((report["skipped"] as? [[String: Any]])?.compactMap { $0["path"] as? String }, [folder.path])
        let similarity = try XCTUnwrap(report["similarity"] as? [String: Any])
        let cosine = try XCTUnwrap(similarity["cosine"] as? [[Double]])
        let logits = try XCTUnwrap(similarity["logits"] as? [[Double]])
        let probabilities = try XCTUnwrap(similarity["probabilities"] as? [[Double]])
        XCTAssertEqual(cosine.count, 3)
        for row in 0..<3 {
            XCTAssertEqual(cosine[row].count, 2)
            // The same numbers from the normalised embeddings, as open_clip's example computes them.
            let image = try XCTUnwrap(embedded[row]["normalised"] as? [Double])
            let textRows = try XCTUnwrap(report["texts"] as? [[String: Any]]).map { $0["normalised"] as? [Double] ?? [] }
            let expectedLogits = textRows.map { 100 * zip(image, $0).reduce(0) { $0 + $1.0 * $1.1 } }
            let top = expectedLogits.max() ?? 0
            let exps = expectedLogits.map { exp($0 - top) }
            for column in 0..<2 {
                XCTAssertEqual(logits[row][column], 100 * cosine[row][column], accuracy: 1e-3)
                XCTAssertEqual(logits[row][column], expectedLogits[column], accuracy: 1e-3)
                XCTAssertEqual(probabilities[row][column], exps[column] / exps.reduce(0, +), accuracy: 1e-4)
            }
            XCTAssertEqual(probabilities[row].reduce(0, +), 1, accuracy: 1e-5)
        }

        // --output records which row is which input in __metadata__.
        let back = try object(try sdsclip(["inspect", output.path, "--json"]), "output")
        let metadata = try XCTUnwrap(back["metadata"] as? [String: String])
        let imageNames = try JSONSerialization.jsonObject(with: Data((metadata["images"] ?? "").utf8)) as? [String]
        XCTAssertEqual(imageNames, embedded.compactMap { $0["path"] as? String })
        XCTAssertEqual(try JSONSerialization.jsonObject(with: Data((metadata["texts"] ?? "").utf8)) as? [String], texts)
        let shapes = try XCTUnwrap(back["tensors"] as? [[String: Any]]).map { "\($0["name"] ?? "") \($0["shape"] ?? "")" }
        XCTAssertEqual(shapes.count, 2)

        let table = try sdsclip(["embed", "fixtures/demo/clip", "--image", images[0], "--text"] + texts)
        XCTAssertEqual(table.status, 0, table.stderr)
        XCTAssertTrue(table.stdout.hasPrefix("probabilities (softmax over the texts of 100 × cosine similarity"), table.stdout)
        XCTAssertTrue(table.stdout.contains(String(format: "  %.4f  a red circle", probabilities[0][0])), table.stdout)

        // Nothing embeddable: status 1, each image named.
        let none = try sdsclip(["embed", "fixtures/demo/clip", "--image", folder.path, "no/such.png"])
        XCTAssertEqual(none.status, 1)
        XCTAssertTrue(none.stderr.contains("skipped no/such.png") && none.stderr.contains("nothing to embed"), none.stderr)
    }

    func testEmbedJSONMatchesItsSchemaOnEveryCLIPFixture() throws {
        let validator = try schema("embed")
        let models = ["fixtures/clip/hf", "fixtures/clip/hf_gelu_fp16mix", "fixtures/clip/openai_jit/ViT-tiny.pt",
                      "fixtures/clip/openai_jit/ViT-tiny-state-dict.pt", "fixtures/clip/openclip_gelu", "fixtures/clip/openclip_quickgelu"]
        for model in models {
            let report = try object(try sdsclip(["embed", model, "--image", "fixtures/images/rgb_37x23.png", "fixtures/images/gray_100x140.jpg", "--json"]), model)
            XCTAssertEqual(validator.violations(of: report), [], model)
            XCTAssertTrue(report["similarity"] is NSNull && report["textEmbeddingName"] is NSNull && report["output"] is NSNull, model)
            XCTAssertEqual((report["images"] as? [Any])?.count, 2, model)
        }
        for model in ["fixtures/demo/clip", "fixtures/demo/trained/clip"] {
            let report = try object(try sdsclip(["embed", model, "--text", "a red circle", "--json"]), model)
            XCTAssertEqual(validator.violations(of: report), [], model)
            XCTAssertEqual(report["textEmbeddingName"] as? String, "text_embeds")
        }
    }

    func testVersionExitStatusesAndCompletionAreDocumented() throws {
        let version = try sdsclip(["--version"])
        XCTAssertEqual(version.status, 0)
        let source = try String(contentsOf: CLITests.root.appendingPathComponent("Sources/sdsclip/SDSClip.swift"), encoding: .utf8)
        XCTAssertTrue(source.contains("static let current = \"\(version.stdout.trimmingCharacters(in: .whitespacesAndNewlines))\""), version.stdout)
        XCTAssertEqual(try sdsclip(["inspect"]).status, 64, "a missing argument is a usage error")
        XCTAssertEqual(try sdsclip(["inspect", "fixtures/clip/hf", "--no-such-flag"]).status, 64)
        XCTAssertEqual(try sdsclip(["inspect", "no/such/file"]).status, 1)
        let help = try sdsclip(["--help"])
        XCTAssertTrue(help.stdout.contains("64 (EX_USAGE)") && help.stdout.contains("--generate-completion-script"), help.stdout)
        let readme = try String(contentsOf: CLITests.root.appendingPathComponent("README.md"), encoding: .utf8)
        XCTAssertTrue(readme.contains("(`EX_USAGE`, from ArgumentParser) on a usage error") && readme.contains("--generate-completion-script"))
        let completion = try sdsclip(["--generate-completion-script", "bash"])
        XCTAssertEqual(completion.status, 0)
        XCTAssertTrue(completion.stdout.contains("tokenize") && completion.stdout.contains("--filter"))
    }
}
