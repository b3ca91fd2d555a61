import ArgumentParser
import Foundation
import Checkpoints
import Models

struct TokenizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenize",
        abstract: "Print CLIP token ids (as OpenAI/open_clip compute them), one JSON array per input text.",
        discussion: """
        Texts come from the arguments, or with --file from a file or standard input (--file -), one text per \
        line (a final newline and a CR before each newline are dropped; an empty line is an empty text).

        A text that begins with '-' would be read as an option: put `--` before the texts \
        (sdsclip tokenize -- "-1 points"), or read them with --file.

        --json prints one object described by docs/schemas/tokenize.schema.json ("schema": "sdsclip.tokenize/1").
        """
    )

    @Argument(help: "The texts to tokenize (after `--` when one begins with '-').")
    var texts: [String] = []

    @Option(help: ArgumentHelp("Read texts from this file, one per line; '-' reads standard input.", valueName: "PATH"))
    var file: String?

    @Option(name: .customLong("context-length"), help: "Tokens per row, including start and end tokens.")
    var contextLength = 77

    @Option(name: .customLong("pad-id"), help: "Padding id: 0 (OpenAI/open_clip, SD2) or 49407 (transformers, SD1).")
    var padID = 0

    @Option(help: ArgumentHelp("A model folder whose own vocab.json + merges.txt to use (a CLIP folder, or a diffusers pipeline with tokenizer/); default: the built-in vocabulary.", valueName: "DIR"))
    var model: String?

    @Flag(help: "Print one JSON object (schema docs/schemas/tokenize.schema.json) instead of one array per line.")
    var json = false

    func validate() throws {
        guard contextLength >= 2 else { throw ValidationError("--context-length must be at least 2 (start and end tokens)") }
        guard texts.isEmpty != (file == nil) else {
            throw ValidationError(file == nil ? "give at least one text, or --file PATH (- for standard input)"
                                              : "give texts either as arguments or with --file, not both")
        }
    }

    /// The lines of `data`, as Python's `str.splitlines` would give them for \n and \r\n endings.
    static func lines(_ data: Data) -> [String] {
        // Split on the byte, not on Character: Swift reads "\r\n" as one Character.
        var lines = data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).map { line in
            String(decoding: line.last == UInt8(ascii: "\r") ? line.dropLast() : line, as: UTF8.self)
        }
        if lines.last == "" { lines.removeLast() }
        return lines
    }

    func readTexts() throws -> [String] {
        guard let file else { return texts }
        if file == "-" { return Self.lines(FileHandle.standardInput.readDataToEndOfFile()) }
        do {
            return Self.lines(try Data(contentsOf: URL(fileURLWithPath: file)))
        } catch {
            throw ValidationError("cannot read --file \(file): \(error.localizedDescription)")
        }
    }

    func run() throws {
        try reportingErrors {
            let tokenizer = try model.map { try ModelTokenizer.forTextEncoder(at: $0) } ?? CLIPTokenizer()
            let inputs = try readTexts()
            let rows = try inputs.map { try tokenizer.tokenize($0, contextLength: contextLength, padID: padID) }
            if json {
                let report: [String: Any] = [
                    "schema": "sdsclip.tokenize/1",
                    "contextLength": contextLength,
                    "padID": padID,
                    "model": JSONOutput.orNull(model.map(JSONOutput.absolute)),
                    "file": JSONOutput.orNull(file.map { $0 == "-" ? "-" : JSONOutput.absolute($0) }),
                    "rows": zip(inputs, rows).map { ["text": $0, "ids": $1] as [String: Any] },
                ]
                print(try JSONOutput.render(report))
                return
            }
            var out = ""
            out.reserveCapacity(rows.count * contextLength * 4)
            for ids in rows { out += "[" + ids.map(String.init).joined(separator: ", ") + "]\n" }
            FileHandle.standardOutput.write(Data(out.utf8))
        }
    }
}
