import Foundation
import Models
import Tensors

// Stable Diffusion cases; tools/bench/bench_sd.py runs them next to diffusers on PyTorch CPU.
//
// Models are the SD1.5 configs (UNetConfiguration.sd1, AutoencoderConfiguration.stableDiffusion) with
// seeded random weights at real size (frozen). Inputs: a random latent [1, 4, S, S] (S = 64 by default),
// timestep 981, random text states [1, 77, 768]; the VAE encoder gets random pixels [1, 3, S, S]
// (S = 512). Timed: best of REPEATS after one warm-up. Threads: SDSCLIP_THREADS. PRECISION (fp32, the
// default, bf16 or auto) is `--precision`: under bf16 the frozen weights compute from bf16 copies and their
// float32 values are released, as the SDS teacher does; the precision notes go to stderr.
// sd-unet-backward is the SDS teacher path: forward with the graph recorded, then backward from
// out.sum() (an all-ones output gradient) to the latent only; the weights stay frozen.
enum StableDiffusionBench {
    static let cases: [BenchCase] = [
        BenchCase(name: "sd-unet-forward", summary: "[REPEATS] [LATENT_SIDE] [PRECISION]: SD1.5 UNet forward, no grad; seconds") { arguments in
            let (repeats, side, precision) = try parse(arguments, defaultSide: 64, usage: "sd-unet-forward [REPEATS] [LATENT_SIDE] [fp32|bf16|auto]")
            let (unet, latent, context) = try unetInputs(side: side, precision: precision)
            var checksum: Float = 0
            let seconds = try withNoGrad {
                try bestTime(repeats: repeats) {
                    checksum = try unet(latent, timesteps: [981], context: context).withUnsafeBufferPointer(sumOfMagnitudes)
                }
            }
            report(["case": "sd-unet-forward", "latent": [1, 4, side, side], "seconds": seconds, "repeats": repeats,
                    "checksum": Double(checksum), "peak_rss_bytes": peakResidentBytes(), "threads": Threading.threadCount,
                    "precision": precision.requested.rawValue, "bf16": precision.usesBFloat16])
        },
        BenchCase(name: "sd-unet-backward", summary: "[REPEATS] [LATENT_SIDE] [PRECISION]: SD1.5 UNet forward + backward to the latent; seconds") { arguments in
            let (repeats, side, precision) = try parse(arguments, defaultSide: 64, usage: "sd-unet-backward [REPEATS] [LATENT_SIDE] [fp32|bf16|auto]")
            let (unet, latentValue, context) = try unetInputs(side: side, precision: precision)
            let latent = Parameter(latentValue, requiresGrad: true, name: "latent")
            var checksum: Float = 0
            let seconds = try bestTime(repeats: repeats) {
                latent.zeroGrad()
                let output = try unet(latent.tensor, timesteps: [981], context: context)
                try output.backward(gradient: Tensor(shape: output.shape, fill: 1))
                guard let grad = latent.grad else { throw BenchUsage("sd-unet-backward: the latent got no gradient") }
                checksum = grad.withUnsafeBufferPointer(sumOfMagnitudes)
            }
            report(["case": "sd-unet-backward", "latent": [1, 4, side, side], "seconds": seconds, "repeats": repeats,
                    "checksum": Double(checksum), "peak_rss_bytes": peakResidentBytes(), "threads": Threading.threadCount,
                    "precision": precision.requested.rawValue, "bf16": precision.usesBFloat16])
        },
        BenchCase(name: "sd-vae-encode", summary: "[REPEATS] [IMAGE_SIDE] [PRECISION]: SD VAE encoder → latent mean, no grad; seconds") { arguments in
            let (repeats, side, precision) = try parse(arguments, defaultSide: 512, usage: "sd-vae-encode [REPEATS] [IMAGE_SIDE] [fp32|bf16|auto]")
            let vae = try AutoencoderKL(RandomParameterSource(seed: 3), configuration: .stableDiffusion, parts: .encoder)
            announce(try vae.registry.apply(precision, model: "VAE encoder", releasingFloat32: true), precision)
            let pixels = Tensor.randn(shape: [1, 3, side, side], seed: 4)
            var checksum: Float = 0
            let seconds = try withNoGrad {
                try bestTime(repeats: repeats) {
                    checksum = try vae.latentMean(pixels).withUnsafeBufferPointer(sumOfMagnitudes)
                }
            }
            report(["case": "sd-vae-encode", "image": [1, 3, side, side], "seconds": seconds, "repeats": repeats,
                    "checksum": Double(checksum), "peak_rss_bytes": peakResidentBytes(), "threads": Threading.threadCount,
                    "precision": precision.requested.rawValue, "bf16": precision.usesBFloat16])
        },
    ]

    static func parse(_ arguments: [String], defaultSide: Int, usage: String) throws -> (repeats: Int, side: Int, precision: PrecisionChoice) {
        let repeats = try arguments.first.map { text in
            guard let value = Int(text), value > 0 else { throw BenchUsage(usage) }
            return value
        } ?? 2
        let side = try arguments.dropFirst().first.map { text in
            guard let value = Int(text), value > 0, value % 8 == 0 else { throw BenchUsage(usage + " (the side must be a positive multiple of 8)") }
            return value
        } ?? defaultSide
        let precision = try arguments.dropFirst(2).first.map { text in
            guard let value = Precision(rawValue: text) else { throw BenchUsage(usage) }
            return value
        } ?? .fp32
        guard arguments.count <= 3 else { throw BenchUsage(usage) }
        return (repeats, side, precision.resolved())
    }

    /// The precision summary and the model's conversion note, on stderr (stdout carries the JSON line).
    static func announce(_ note: String, _ precision: PrecisionChoice) {
        FileHandle.standardError.write(Data("\(precision.summary)\n\(note)\n".utf8))
    }

    static func unetInputs(side: Int, precision: PrecisionChoice = Precision.fp32.resolved()) throws -> (UNet2DConditionModel, Tensor, Tensor) {
        let unet = try UNet2DConditionModel(RandomParameterSource(seed: 1), configuration: .sd1)
        announce(try unet.registry.apply(precision, model: "UNet", releasingFloat32: true), precision)
        let latent = Tensor.randn(shape: [1, unet.configuration.inChannels, side, side], seed: 2)
        let context = Tensor.randn(shape: [1, 77, 768], seed: 5)
        return (unet, latent, context)
    }

    /// Σ|x|: printed so the work cannot be skipped and a NaN would show.
    static func sumOfMagnitudes(_ values: UnsafeBufferPointer<Float>) -> Float {
        var total: Double = 0
        for value in values { total += Double(abs(value)) }
        return Float(total)
    }
}
