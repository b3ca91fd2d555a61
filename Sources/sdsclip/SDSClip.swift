import ArgumentParser
import Foundation
import WeightsIO

@main
struct SDSClip: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sdsclip",
        abstract: "Model weights, CLIP and Stable Diffusion in Swift, and the SDS-CLIP fine-tune.",
        discussion: """
        Reads safetensors (single or sharded), torch.save checkpoints (.pt/.bin/.ckpt/.pth), TorchScript \
        archives and model folders without running any pickle code.
        """,
        subcommands: [InspectCommand.self, ConvertCommand.self, DiffCommand.self, VerifyCommand.self, EmbedCommand.self, TokenizeCommand.self,
                      FinetuneCommand.self, ExampleDataCommand.self, EvalCommand.self, ExportCommand.self, DemoCommand.self]
    )
}

/// Runs `body`, turning the toolkit's typed errors into one clear line on stderr and exit status 1.
func reportingErrors(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let error as WeightsError {
        printError("error: \(error.description)")
        throw ExitCode(1)
    } catch let error as ExitCode {
        throw error
    } catch let error as CleanExit {
        throw error
    } catch {
        printError("error: \(error)")
        throw ExitCode(1)
    }
}

func printError(_ message: String) {
    StandardError.write(message + "\n")
}
