import ArgumentParser
import Checkpoints
import Foundation
import WeightsIO

struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write a CLIP as a folder that transformers or open_clip loads.",
        discussion: """
        MODEL is any CLIP sdsclip loads: a transformers folder, an OpenCLIP or OpenAI file or folder, an OpenAI \
        TorchScript archive, or a fine-tune's OUT/final. OUT is a folder:

          --layout hf        config.json, model.safetensors, preprocessor_config.json (CLIPImageProcessor), and the \
        tokenizer files vocab.json, merges.txt, tokenizer_config.json, special_tokens_map.json (CLIP's BPE \
        vocabulary, padding with <|endoftext|>): CLIPModel.from_pretrained(OUT) and CLIPProcessor.from_pretrained(OUT).
          --layout openclip  open_clip_model.safetensors (OpenAI/OpenCLIP names: fused in_proj, c_fc/c_proj, \
        visual.proj) and open_clip_config.json (model_cfg, preprocess_cfg): \
        open_clip.create_model_and_transforms('local-dir:OUT').

        The weight file's __metadata__ records the source weight files and their SHA-256, and for a fine-tune's \
        output (a folder with training.json) its step and settings; its latent map (latent_map/) is copied to \
        OUT/latent_map/latent_map.safetensors, never into the CLIP weights. OUT is built beside its final path \
        under a hidden name and renamed into place when complete: a failure leaves nothing behind. An existing \
        OUT is refused unless --overwrite, which replaces it only once the new folder is complete.
        """
    )

    enum Layout: String, ExpressibleByArgument, CaseIterable {
        case hf, openclip
        var layout: CLIPExportLayout { self == .hf ? .huggingFace : .openCLIP }
    }

    @Argument(help: "The CLIP: a file or folder in any layout sdsclip reads.")
    var model: String

    @Argument(help: "The folder to write.")
    var out: String

    @Option(help: "The folder layout: \(Layout.allCases.map(\.rawValue).joined(separator: " or ")).")
    var layout: Layout

    @Option(help: "Floating dtype of the weights: \(FloatDTypeArgument.allCases.map(\.rawValue).joined(separator: ", ")).")
    var dtype: FloatDTypeArgument = .f32

    @Flag(help: "Replace an existing OUT folder (only after the new one is complete).")
    var overwrite = false

    @Option(help: "A configuration file for MODEL (transformers config.json or OpenCLIP config), when none is beside it.")
    var config: String?

    @OptionGroup var safety: WeightSafetyOptions

    func run() throws {
        try reportingErrors {
            try safety.admit([model])
            let summary = try InterruptCleanup.during { temporaries in
                let options = CLIPExporter.Options(layout: layout.layout, dtype: dtype.dtype, existing: overwrite ? .replace : .refuse,
                                                   writing: WriteOptions(temporaries: temporaries))
                return try CLIPExporter.export(modelAt: model, configuration: config, to: out, options: options)
            }
            for note in summary.notes { printError("note: \(note)") }
            printError("wrote \(out): \(layout.rawValue) layout, \(summary.tensorCount) tensors (\(Formatting.count(summary.parameterCount)) parameters, \(dtype.rawValue))")
            for file in summary.files { printError("  \(file)") }
        }
    }
}

