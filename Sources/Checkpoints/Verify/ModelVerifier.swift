import Foundation
import Models
import Tensors

/// Runs a reference bundle's inputs through the model its `component` names and compares the outputs.
public enum ModelVerifier {
    public struct Report {
        public let component: String
        public let computed: [String: Tensor]
        public let comparisons: [OutputComparison]
        public let notes: [String]
        public var passed: Bool { comparisons.allSatisfy(\.passed) }
    }

    /// How to load and run the models a bundle names; passed by value to every runner.
    public struct Options: Sendable {
        /// A configuration file or folder (`--config`).
        public var configuration: String?
        /// Stable Diffusion single files: take the UNet from the `model_ema.*` copy (`--ema`).
        public var extractEMA: Bool
        /// The frozen SD teacher for training-step bundles (`--teacher`).
        public var teacher: String?
        public var tolerance: Tolerance
        /// What the models compute in (`--precision`); runners convert after loading and freezing.
        public var precision: PrecisionChoice

        public init(configuration: String? = nil, extractEMA: Bool = false, teacher: String? = nil, tolerance: Tolerance = Tolerance(),
                    precision: PrecisionChoice = .fp32) {
            (self.configuration, self.extractEMA, self.teacher, self.tolerance, self.precision) = (configuration, extractEMA, teacher, tolerance, precision)
        }
    }

    /// What a runner computed, with notes for the report, and the bundle outputs it deliberately does not
    /// compare (name → why), which the report lists instead of failing on them.
    public struct RunResult {
        public var outputs: [String: Tensor]
        public var notes: [String]
        public var uncompared: [String: String]

        public init(outputs: [String: Tensor], notes: [String], uncompared: [String: String] = [:]) {
            (self.outputs, self.notes, self.uncompared) = (outputs, notes, uncompared)
        }
    }

    public typealias Runner = @Sendable (_ model: String, _ bundle: ReferenceBundle, _ options: Options) throws -> RunResult
    typealias ForwardRunner = @Sendable (_ model: String, _ bundle: ReferenceBundle, _ options: Options) throws -> (outputs: [String: Tensor], notes: [String])

    /// The forward-pass components this module knows; they run without recording gradients. Other
    /// modules (training steps) pass their own runners beside these.
    public static let standardRunners: [String: Runner] = [
        "clip": inference(runCLIP), "clip-text": inference(CLIPTextRunner.run),
        "unet": inference(StableDiffusionRunners.unet), "vae-encoder": inference(StableDiffusionRunners.vaeEncoder),
        "vae-decoder": inference(StableDiffusionRunners.vaeDecoder), "text-encoder": inference(StableDiffusionRunners.textEncoder),
    ]

    static func inference(_ runner: @escaping ForwardRunner) -> Runner {
        { model, bundle, options in
            let (outputs, notes) = try withNoGrad { try runner(model, bundle, options) }
            return RunResult(outputs: outputs, notes: notes)
        }
    }

    public static func verify(model: String, bundlePath: String, options: Options = Options(),
                              runners: [String: Runner] = standardRunners) throws -> Report {
        let bundle = try ReferenceBundle(path: bundlePath)
        guard let runner = runners[bundle.component] else {
            throw CheckpointError(file: bundlePath, "unknown component '\(bundle.component)' (known: \(runners.keys.sorted().joined(separator: ", ")))")
        }
        guard !bundle.outputNames.isEmpty else {
            throw CheckpointError(file: bundlePath, "the bundle has no outputs.* tensors: there is nothing to compare")
        }
        let result = try runner(model, bundle, options)
        let outputs = result.outputs
        var notes = result.notes
        if options.precision.requested != .fp32 { notes.insert(options.precision.summary, at: 0) }
        var comparisons: [OutputComparison] = []
        let skipped = bundle.outputNames.filter { result.uncompared[$0] != nil }
        for reason in Set(skipped.compactMap { result.uncompared[$0] }).sorted() {
            notes.append("not compared (\(skipped.filter { result.uncompared[$0] == reason }.count) outputs): \(reason)")
        }
        for name in bundle.outputNames where result.uncompared[name] == nil {
            guard let computed = outputs[name] else {
                throw CheckpointError(file: bundlePath, "the \(bundle.component) runner does not produce output '\(name)'")
            }
            comparisons.append(options.tolerance.compare(name: name, computed: computed, expected: try bundle.expected(name)))
        }
        return Report(component: bundle.component, computed: outputs, comparisons: comparisons, notes: notes)
    }

    /// `verify` with only a configuration and a tolerance (forward-pass bundles).
    public static func verify(model: String, bundlePath: String, configuration: String?, tolerance: Tolerance = Tolerance()) throws -> Report {
        try verify(model: model, bundlePath: bundlePath, options: Options(configuration: configuration, tolerance: tolerance))
    }

    public static func verify(model: String, bundlePath: String, tolerance: Tolerance) throws -> Report {
        try verify(model: model, bundlePath: bundlePath, options: Options(tolerance: tolerance))
    }

    static func runCLIP(model path: String, bundle: ReferenceBundle, options: Options) throws -> (outputs: [String: Tensor], notes: [String]) {
        let loaded = try CLIPLoader.load(path, configuration: options.configuration)
        let precision = try loaded.model.registry.apply(options.precision, model: "CLIP")
        let pixels = try bundle.floatInput("pixel_values")
        let ids = try bundle.idRows("input_ids")
        let image = try loaded.model.encodeImage(pixels)
        let text = try loaded.model.encodeText(ids)
        let logits = try loaded.model.logits(imageEmbeddings: image, textEmbeddings: text)
        let notes = ["layout \(loaded.layout.rawValue), \(loaded.format.rawValue), configuration from \(loaded.configurationSource)"] + loaded.notes + [precision]
        return (["image_embeds": image, "text_embeds": text, "logits_per_image": logits], notes)
    }
}
