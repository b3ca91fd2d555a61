import ArgumentParser
import Foundation
import Checkpoints
import Models

struct TokenizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenize",
        abstract: "Print CLIP token ids (as OpenAI/open_clip compute them), one JSON array per input string."
    )

    @Argument(help: "The texts to tokenize.")
    var texts: [String]

    @Option(name: .customLong("context-length"), help: "Tokens per row, including start and end tokens.")
    var contextLength = 77

    @Option(name: .customLong("pad-id"), help: "Padding id: 0 (OpenAI/open_clip, SD2) or 49407 (transformers, SD1).")
    var padID = 0

    @Option(help: ArgumentHelp("A model folder whose own vocab.json + merges.txt to use (a CLIP folder, or a diffusers pipeline with tokenizer/); default: the built-in vocabulary.", valueName: "DIR"))
    var model: String?

    func validate() throws {
        guard contextLength >= 2 else { throw ValidationError("--context-length must be at least 2 (start and end tokens)") }
        guard texts.isEmpty == false else { throw ValidationError("give at least one text") }
    }

    func run() throws {
        try reportingErrors {
            let tokenizer = try model.map { try ModelTokenizer.forTextEncoder(at: $0) } ?? CLIPTokenizer()
            for text in texts {
                let ids = try tokenizer.tokenize(text, contextLength: contextLength, padID: padID)
                print("[" + ids.map(String.init).joined(separator: ", ") + "]")
            }
        }
    }
}
