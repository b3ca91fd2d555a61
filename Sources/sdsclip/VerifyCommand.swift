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

    @Option(help: "Absolute tolerance (default 1e-6; with bf16 compute \(Tolerance.bfloat16.absolute)).")
    var atol: Float?

    @Option(help: "Tolerance relative to the largest reference magnitude of each output (default 1e-4; with bf16 compute \(Tolerance.bfloat16.relative), or \(Tolerance.bfloat16Autocast.relative) against a torch autocast bundle; README \"bf16 compute\").")
    var rtol: Float?

    @Option(help: PrecisionHelp.text)
    var precision: Precision = .fp32

    @Flag(help: "Stable Diffusion single files: take the UNet from the model_ema.* copy.")
    var ema = false

    @Option(help: "The frozen Stable Diffusion teacher (diffusers folder or single file) for sds-step bundles.")
    var teacher: String?

    @Option(name: .customLong("save-outputs"), help: "Write the computed outputs (outputs.* names) to this safetensors file.")
    var saveOutputs: String?

    @Flag(help: "Print one JSON object (schema docs/schemas/verify.schema.json) instead of the report; the exit status is the same.")
    var json = false

    @OptionGroup var safety: WeightSafetyOptions

    func run() throws {
        var passed = false
        try reportingErrors {
            try safety.admit([model, reference, teacher])
            let choice = precision.resolved()
            let autocastReference = try ReferenceBundle(path: reference).metadata["precision"] == "bf16-autocast"
            let defaults = !choice.usesBFloat16 ? Tolerance() : (autocastReference ? Tolerance.bfloat16Autocast : Tolerance.bfloat16)
            let options = ModelVerifier.Options(configuration: config, extractEMA: ema, teacher: teacher,
                                                tolerance: Tolerance(absolute: atol ?? defaults.absolute, relative: rtol ?? defaults.relative),
                                                precision: choice)
            let report = try ModelVerifier.verify(model: model, bundlePath: reference, options: options,
                                                  runners: ModelVerifier.standardRunners.merging(SDSStepRunner.runners) { $1 })
            if json {
                print(try VerifyReport.json(report, model: model, reference: reference, teacher: teacher,
                                            tolerance: options.tolerance))
            } else {
                print(VerifyReport.text(report))
            }
            if let saveOutputs {
                let tensors = report.computed.sorted { $0.key < $1.key }.map { name, tensor in
                    SafetensorsWriter.Tensor(name: "outputs.\(name)", shape: tensor.shape, floats: tensor.scalars)
                }
                try InterruptCleanup.during { temporaries in
                    try SafetensorsWriter.write(tensors, metadata: ["component": report.component], to: saveOutputs,
                                                options: WriteOptions(protected: ProtectedFiles(paths: [model, reference]),
                                                                      temporaries: temporaries))
                }
            }
            passed = report.passed
            if !json { print(passed ? "verify: passed" : "verify: FAILED (tolerance atol \(options.tolerance.absolute), rtol \(options.tolerance.relative))") }
        }
        if !passed { throw ExitCode(2) }
    }
}

/// The text and JSON forms of a verify report.
enum VerifyReport {
    static func text(_ report: ModelVerifier.Report) -> String {
        var lines = ["component: \(report.component)"]
        for note in report.notes { lines.append("note:      \(note)") }
        for c in report.comparisons {
            let status = c.passed ? "ok  " : "FAIL"
            let line = String(format: "%@ %-20@ %-18@", status, c.name as NSString, "\(c.shape)" as NSString)
            if let problem = c.problem {
                lines.append(line + " " + problem)
            } else {
                lines.append(line + String(format: " max-abs %.3e  relative %.3e", c.maxAbsoluteError, c.relativeError))
            }
        }
        return lines.joined(separator: "\n")
    }

    static func json(_ report: ModelVerifier.Report, model: String, reference: String, teacher: String?,
                     tolerance: Tolerance) throws -> String {
        // An output that could not be compared (shapes differ, a value is not finite) has null errors and a problem.
        let outputs: [[String: Any]] = report.comparisons.map { c in
            ["name": c.name, "shape": c.shape, "passed": c.passed,
             "maxAbs": c.problem == nil ? JSONOutput.number(c.maxAbsoluteError) : NSNull(),
             "relative": c.problem == nil ? JSONOutput.number(c.relativeError) : NSNull(),
             "problem": JSONOutput.orNull(c.problem)]
        }
        let value: [String: Any] = [
            "schema": "sdsclip.verify/1", "model": JSONOutput.absolute(model), "reference": JSONOutput.absolute(reference),
            "teacher": JSONOutput.orNull(teacher.map(JSONOutput.absolute)), "component": report.component,
            "tolerance": ["absolute": JSONOutput.number(tolerance.absolute), "relative": JSONOutput.number(tolerance.relative)],
            "notes": report.notes, "outputs": outputs, "passed": report.passed,
        ]
        return try JSONOutput.render(value)
    }
}
