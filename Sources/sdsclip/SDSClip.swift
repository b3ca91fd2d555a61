import ArgumentParser
import Foundation
import Tensors
import WeightsIO

@main
struct SDSClip: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sdsclip",
        abstract: "Model weights, CLIP and Stable Diffusion in Swift, and the SDS-CLIP fine-tune.",
        discussion: """
        Reads safetensors (single or sharded), torch.save checkpoints (.pt/.bin/.ckpt/.pth), TorchScript \
        archives and model folders without running any pickle code.

        Exit status: 0 on success; 1 on an error (a bad or missing input, a refused file, a failed write), \
        and with `diff --exit-code` when the two sides differ; 2 when `verify` finds an output beyond \
        tolerance; 64 (EX_USAGE) on a command-line usage error (an unknown option, a missing or invalid \
        argument, options that do not go together); 128 + N when signal N ended it (SIGINT: 130).

        Shell completion: sdsclip --generate-completion-script bash|zsh|fish prints a script to install, \
        e.g. `sdsclip --generate-completion-script bash > ~/.local/share/bash-completion/completions/sdsclip`.
        """,
        version: SDSClipVersion.current,
        subcommands: [InspectCommand.self, ConvertCommand.self, DiffCommand.self, VerifyCommand.self, EmbedCommand.self, TokenizeCommand.self,
                      FinetuneCommand.self, ExampleDataCommand.self, EvalCommand.self, ExportCommand.self, DemoCommand.self]
    )

    static func main() {
        // Before anything else (and before any thread starts): keep OpenBLAS off its generic kernels and
        // libgomp's idle threads from spinning (settings read only while the libraries load).
        ProcessSetup.reexecIfNeeded()
        HeapMemoryReuse.apply(environment: ProcessInfo.processInfo.environment)
        main(nil)
    }
}

/// The one place the tool's version is written (`sdsclip --version`).
enum SDSClipVersion {
    static let current = "0.12.0"
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
