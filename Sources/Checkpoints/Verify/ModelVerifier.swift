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

    public typealias Runner = (_ model: String, _ bundle: ReferenceBundle, _ configuration: String?) throws -> (outputs: [String: Tensor], notes: [String])

    /// Component name → how to load its model and run the bundle. Other model families register here.
    nonisolated(unsafe) public static var runners: [String: Runner] = [
        "clip": runCLIP, "clip-text": CLIPTextRunner.run,
        "unet": StableDiffusionRunners.unet, "vae-encoder": StableDiffusionRunners.vaeEncoder,
        "vae-decoder": StableDiffusionRunners.vaeDecoder, "text-encoder": StableDiffusionRunners.textEncoder,
    ]

    public static func verify(model: String, bundlePath: String, configuration: String? = nil,
                              tolerance: Tolerance = Tolerance()) throws -> Report {
        let bundle = try ReferenceBundle(path: bundlePath)
        guard let runner = runners[bundle.component] else {
            throw CheckpointError(file: bundlePath, "unknown component '\(bundle.component)' (known: \(runners.keys.sorted().joined(separator: ", ")))")
        }
        let (outputs, notes) = try withNoGrad { try runner(model, bundle, configuration) }
        var comparisons: [OutputComparison] = []
        for name in bundle.outputNames {
            guard let computed = outputs[name] else {
                throw CheckpointError(file: bundlePath, "the \(bundle.component) runner does not produce output '\(name)'")
            }
            comparisons.append(tolerance.compare(name: name, computed: computed, expected: try bundle.expected(name)))
        }
        return Report(component: bundle.component, computed: outputs, comparisons: comparisons, notes: notes)
    }

    static func runCLIP(model path: String, bundle: ReferenceBundle, configuration: String?) throws -> (outputs: [String: Tensor], notes: [String]) {
        let loaded = try CLIPLoader.load(path, configuration: configuration)
        let pixels = try bundle.floatInput("pixel_values")
        let ids = try bundle.idRows("input_ids")
        let image = try loaded.model.encodeImage(pixels)
        let text = try loaded.model.encodeText(ids)
        let logits = try loaded.model.logits(imageEmbeddings: image, textEmbeddings: text)
        let notes = ["layout \(loaded.layout.rawValue), \(loaded.format.rawValue), configuration from \(loaded.configurationSource)"] + loaded.notes
        return (["image_embeds": image, "text_embeds": text, "logits_per_image": logits], notes)
    }
}
