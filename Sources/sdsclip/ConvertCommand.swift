import ArgumentParser
import Foundation
import WeightsIO

struct ConvertCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert",
        abstract: "Convert any readable weights (file, sharded index, folder) to one safetensors file with the same names.",
        discussion: """
        The output is written to a temporary file beside OUTPUT and renamed into place only when complete, \
        so a failure never leaves a partial file or damages an existing one (--fsync also makes it survive \
        a power loss). An existing OUTPUT is refused unless --overwrite (the replacement keeps its \
        permissions), and never replaced when it is the input under any name; only regular files are \
        replaced: a symlink, device or FIFO as OUTPUT is refused (a link is not written through: give its \
        target). SIGINT, SIGTERM, SIGHUP and SIGPIPE remove the temp file before the process ends; a \
        killed run's temp file is removed by the next write to the same OUTPUT. Tensor views are packed; \
        non-float tensors keep their dtype whatever --dtype says.

        --layout diffusers writes a single-file SD 1.x/2.x checkpoint as a complete diffusers pipeline folder \
        (unet, vae, text_encoder, tokenizer, scheduler, feature_extractor, model_index.json) that \
        StableDiffusionPipeline.from_pretrained loads as it is; --dtype applies to its weights (keep: each \
        tensor's stored dtype). No safety checker is included (model_index.json says null).
        """
    )

    enum OutputDType: String, ExpressibleByArgument, CaseIterable {
        case keep, f32, f16, bf16
        /// nil keeps each tensor's dtype.
        var dtype: DType? { FloatDTypeArgument(rawValue: rawValue)?.dtype }
    }

    @Argument(help: "The input: a weights file, a sharded index, or a folder.")
    var input: String

    @Argument(help: "The safetensors file to write.")
    var output: String

    @Option(help: "Floating-point dtype of the output: \(OutputDType.allCases.map(\.rawValue).joined(separator: ", ")).")
    var dtype: OutputDType = .keep

    @Flag(help: "Replace an existing OUTPUT file (not the input itself, and only once the new file is complete).")
    var overwrite = false

    @Flag(help: "Do not print progress.")
    var quiet = false

    @Flag(help: "Make the output survive a power loss too: fsync the file and its folder (slower; the write is atomic either way).")
    var fsync = false

    @Option(help: "Write another layout instead: 'diffusers' turns a single-file SD checkpoint into a diffusers pipeline folder OUTPUT.")
    var layout: ConvertLayout?

    @Option(help: "With --layout diffusers: a diffusers-layout folder of component config.json files (needed when the sizes are not standard SD 1.x/2.x).")
    var config: String?

    @Flag(help: "With --layout diffusers: take the UNet from the checkpoint's model_ema.* copy.")
    var ema = false

    @Option(name: .customLong("prediction-type"),
            help: "With --layout diffusers: the scheduler's prediction type, epsilon or v_prediction (SD 2.x 768-v); default: the --config folder's scheduler, else epsilon.")
    var predictionType: PredictionArgument?

    @OptionGroup var safety: WeightSafetyOptions

    func validate() throws {
        if layout == nil, predictionType != nil || ema || config != nil {
            throw ValidationError("--config, --ema and --prediction-type apply to --layout diffusers only")
        }
        if layout != nil, overwrite {
            throw ValidationError("--overwrite applies to a safetensors OUTPUT; --layout diffusers writes only a new or empty folder")
        }
    }

    func run() throws {
        try reportingErrors {
            try InterruptCleanup.during { temporaries in
                if let layout { return try convertToLayout(layout, temporaries: temporaries) }
                try convertToSafetensors(temporaries: temporaries)
            }
        }
    }

    func convertToSafetensors(temporaries: TemporaryFiles) throws {
        let quiet = self.quiet
        let writing = WriteOptions(durability: fsync ? .durable : .atomic, existing: overwrite ? .replace : .refuse,
                                   temporaries: temporaries)
        let summary = try WeightsConverter.convert(input: input, output: output, dtype: dtype.dtype, options: safety.readOptions,
                                                   writing: writing) { store in
            guard !quiet, store.totalBytes >= 64 << 20 else { return nil }
            let line = ProgressLine(label: "convert")
            return { done, total in line.update(done: done, total: total) }
        }
        if !quiet {
            printError("wrote \(output): \(summary.tensorCount) tensors, \(Formatting.bytes(summary.bytesRead)) read from \(summary.format.rawValue)")
        }
    }
}
