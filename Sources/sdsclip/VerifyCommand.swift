import ArgumentParser
import Checkpoints
import SDSTraining
import Foundation
import Tensors
import WeightsIO

struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check a model against a reference bundle made by the PyTorch libraries.",
        discussion: """
        REFERENCE is a safetensors file of inputs.* and outputs.* tensors whose metadata names the component \
        (clip, clip-text, unet, vae-encoder, vae-decoder, text-encoder, sds-step). The model is loaded from MODEL (a file or folder \
        in any supported layout), run on the inputs, and each output compared: it passes when \
        max|computed − expected| ≤ atol + rtol · max|expected|. An sds-step bundle checks one SDS-CLIP training \
        step (losses, gradients, one AdamW update): MODEL is the CLIP, --teacher the Stable Diffusion model. Exit status 0 when every output passes, 2 otherwise.
        """
    )

    @Argument(help: "The model: a weights file or folder in any supported layout.")
    var model: String

    @Argument(help: "The reference bundle (.safetensors).")
    var reference: String

    @Option(help: "A configuration file (transformers config.json, OpenCLIP config, or a diffusers folder).")
    var config: String?

    @Option(help: "Absolute tolerance.")
    var atol: Float = 1e-6

    @Option(help: "Tolerance relative to the largest reference magnitude of each output.")
    var rtol: Float = 1e-4

    @Flag(help: "Stable Diffusion single files: take the UNet from the model_ema.* copy.")
    var ema = false

    @Option(help: "The frozen Stable Diffusion teacher (diffusers folder or single file) for sds-step bundles.")
    var teacher: String?

    @Option(name: .customLong("save-outputs"), help: "Write the computed outputs (outputs.* names) to this safetensors file.")
    var saveOutputs: String?

    @OptionGroup var safety: WeightSafetyOptions

    func run() throws {
        var passed = false
        try reportingErrors {
            try safety.admit([model, reference, teacher])
            let options = ModelVerifier.Options(configuration: config, extractEMA: ema, teacher: teacher,
                                                tolerance: Tolerance(absolute: atol, relative: rtol))
            let report = try ModelVerifier.verify(model: model, bundlePath: reference, options: options,
                                                  runners: ModelVerifier.standardRunners.merging(SDSStepRunner.runners) { $1 })
            print("component: \(report.component)")
            for note in report.notes { print("note:      \(note)") }
            for c in report.comparisons {
                let status = c.passed ? "ok  " : "FAIL"
                let line = String(format: "%@ %-20@ %-18@", status, c.name as NSString, "\(c.shape)" as NSString)
                if let problem = c.problem {
                    print(line + " " + problem)
                } else {
                    print(line + String(format: " max-abs %.3e  relative %.3e", c.maxAbsoluteError, c.relativeError))
                }
            }
            if let saveOutputs {
                let tensors = report.computed.keys.sorted().map { name in
                    SafetensorsWriter.Tensor(name: "outputs.\(name)", shape: report.computed[name]!.shape,
                                             floats: report.computed[name]!.scalars)
                }
                try SafetensorsWriter.write(tensors, metadata: ["component": report.component], to: saveOutputs,
                                            options: WriteOptions(protected: ProtectedFiles(paths: [model, reference])))
            }
            passed = report.passed
            print(passed ? "verify: passed" : "verify: FAILED (tolerance atol \(atol), rtol \(rtol))")
        }
        if !passed { throw ExitCode(2) }
    }
}
