import Foundation
import Models
import Tensors

/// `ModelVerifier` runners for the SD components of reference bundles (fixtures/sd/README.md):
/// `unet`, `vae-encoder`, `vae-decoder` and `text-encoder`, whatever the checkpoint's storage.
public enum StableDiffusionRunners {
    /// The UNet comes from a single file's `model_ema.*` copy when the options say so (`--ema`) or the
    /// bundle asks for it with `__metadata__["extract_ema"] = "true"`.
    public static func unet(model path: String, bundle: ReferenceBundle, options: ModelVerifier.Options) throws -> (outputs: [String: Tensor], notes: [String]) {
        let ema = options.extractEMA || bundle.metadata["extract_ema"] == "true"
        let loaded = try StableDiffusionLoader.loadUNet(path, configuration: options.configuration, extractEMA: ema)
        let precision = try loaded.model.registry.apply(options.precision, model: "UNet")
        let sample = try bundle.floatInput("sample")
        let timesteps = try bundle.integers(bundle.input("timestep")).map(Float.init)
        let context = try bundle.floatInput("encoder_hidden_states")
        let output = try loaded.model(sample, timesteps: timesteps, context: context)
        return (["sample": output], loaded.notes + (ema ? ["UNet weights from the model_ema.* copy"] : []) + [precision])
    }

    public static func vaeEncoder(model path: String, bundle: ReferenceBundle, options: ModelVerifier.Options) throws -> (outputs: [String: Tensor], notes: [String]) {
        let loaded = try StableDiffusionLoader.loadVAE(path, configuration: options.configuration, parts: .encoder)
        let precision = try loaded.model.registry.apply(options.precision, model: "VAE encoder")
        let mean = try loaded.model.latentMean(bundle.floatInput("sample"))
        return (["latent_mean": mean], loaded.notes + [precision])
    }

    public static func vaeDecoder(model path: String, bundle: ReferenceBundle, options: ModelVerifier.Options) throws -> (outputs: [String: Tensor], notes: [String]) {
        let loaded = try StableDiffusionLoader.loadVAE(path, configuration: options.configuration, parts: .decoder)
        let precision = try loaded.model.registry.apply(options.precision, model: "VAE decoder")
        let image = try loaded.model.decode(bundle.floatInput("latent"))
        return (["sample": image], loaded.notes + [precision])
    }

    public static func textEncoder(model path: String, bundle: ReferenceBundle, options: ModelVerifier.Options) throws -> (outputs: [String: Tensor], notes: [String]) {
        let loaded = try StableDiffusionLoader.loadTextEncoder(path, configuration: options.configuration)
        let precision = try loaded.model.registry.apply(options.precision, model: "text encoder")
        let states = try loaded.model.hiddenStates(bundle.idRows("input_ids"))
        return (["last_hidden_state": states], loaded.notes + [precision])
    }
}
