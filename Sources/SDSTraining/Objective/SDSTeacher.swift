import Checkpoints
import Foundation
import Models
import Tensors

/// What the teacher's UNet predicts (diffusers' `prediction_type`).
public enum PredictionType: String, Sendable, Codable, CaseIterable {
    case epsilon
    case vPrediction = "v_prediction"
}

/// The training noise schedule of a teacher: ᾱ_t as diffusers' schedulers build it (float32 throughout)
/// and what the UNet predicts.
public struct TeacherSchedule: Sendable {
    public let alphasCumprod: [Float]
    public let prediction: PredictionType
    /// Where the values came from (a scheduler_config.json, or SD's defaults).
    public let source: String

    public var stepCount: Int { alphasCumprod.count }

    /// SD 1.x/2.x training schedule: scaled_linear betas 0.00085…0.012 over 1000 steps.
    public static func standard(prediction: PredictionType = .epsilon) throws -> TeacherSchedule {
        let schedule = try NoiseSchedule(betaStart: 0.00085, betaEnd: 0.012, steps: 1000, precision: .float32)
        return TeacherSchedule(alphasCumprod: schedule.alphasCumprod.map { Float($0) }, prediction: prediction,
                               source: "SD's training schedule (scaled_linear 0.00085–0.012, 1000 steps)")
    }

    /// From a diffusers `scheduler_config.json` (`beta_start`, `beta_end`, `beta_schedule`
    /// scaled_linear or linear, `num_train_timesteps`, `prediction_type`, optional `trained_betas`).
    public static func read(_ path: String) throws -> TeacherSchedule {
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            throw CheckpointError(file: path, "cannot read the scheduler configuration: \(error.localizedDescription)")
        }
        guard let config = object as? [String: Any] else { throw CheckpointError(file: path, "a scheduler configuration is a JSON object") }
        func number(_ key: String, _ fallback: Double) throws -> Double {
            guard let value = config[key], !(value is NSNull) else { return fallback }
            guard let number = value as? NSNumber else { throw CheckpointError(file: path, "'\(key)' must be a number") }
            return number.doubleValue
        }
        let predictionName = (config["prediction_type"] as? String) ?? "epsilon"
        guard let prediction = PredictionType(rawValue: predictionName) else {
            throw CheckpointError(file: path, "prediction_type '\(predictionName)' is not supported (epsilon, v_prediction)")
        }
        if let trained = config["trained_betas"] as? [NSNumber], !trained.isEmpty {
            var product: Float = 1
            let alphas = trained.map { beta -> Float in product *= 1 - beta.floatValue; return product }
            return TeacherSchedule(alphasCumprod: alphas, prediction: prediction, source: path)
        }
        let steps = Int(try number("num_train_timesteps", 1000))
        let (start, end) = (try number("beta_start", 0.00085), try number("beta_end", 0.012))
        let kind = (config["beta_schedule"] as? String) ?? "linear"
        guard steps >= 2, steps <= 100_000, start > 0, end >= start, end < 1 else {
            throw CheckpointError(file: path, "num_train_timesteps \(steps), beta_start \(start), beta_end \(end): expected 2…100000 steps and 0 < start ≤ end < 1")
        }
        let betas: [Float]
        switch kind {
        case "scaled_linear":
            betas = float32Linspace(Float(start.squareRoot()), Float(end.squareRoot()), steps).map { $0 * $0 }
        case "linear":
            betas = float32Linspace(Float(start), Float(end), steps)
        default:
            throw CheckpointError(file: path, "beta_schedule '\(kind)' is not supported (scaled_linear, linear)")
        }
        var product: Float = 1
        return TeacherSchedule(alphasCumprod: betas.map { product *= 1 - $0; return product }, prediction: prediction, source: path)
    }

    /// torch.linspace in float32: start + i·step for the first half, end − (n−1−i)·step after.
    static func float32Linspace(_ a: Float, _ b: Float, _ n: Int) -> [Float] {
        let step = (b - a) / Float(n - 1)
        return (0..<n).map { $0 < n / 2 ? a + step * Float($0) : b - step * Float(n - 1 - $0) }
    }

    func alphaBar(_ t: Int) throws -> Float {
        guard alphasCumprod.indices.contains(t) else {
            throw ModelError.invalidInput("timestep \(t) is outside the teacher's schedule 0..<\(stepCount)")
        }
        return alphasCumprod[t]
    }
}

/// The frozen Stable Diffusion teacher of SDS: its UNet, its text encoder (conditioning c) and its
/// schedule. No VAE: L_SDS works on latents made by h_w.
public struct SDSTeacher {
    public let unet: UNet2DConditionModel
    public let textEncoder: CLIPTextTransformer
    public let schedule: TeacherSchedule
    public let version: StableDiffusionVersion
    public let notes: [String]

    /// A teacher from models already in memory (benchmarks); `load` is the checked route from a checkpoint.
    public init(unet: UNet2DConditionModel, textEncoder: CLIPTextTransformer, schedule: TeacherSchedule,
                version: StableDiffusionVersion, notes: [String] = []) {
        (self.unet, self.textEncoder, self.schedule, self.version, self.notes) = (unet, textEncoder, schedule, version, notes)
    }

    /// Loads the UNet and text encoder from any SD checkpoint `verify` reads. The schedule comes from
    /// the folder's `scheduler/scheduler_config.json`, else SD's standard one; `prediction` overrides
    /// its prediction type (single files say nothing about it).
    public static func load(_ path: String, configuration: String? = nil, prediction: PredictionType? = nil) throws -> SDSTeacher {
        let unet = try StableDiffusionLoader.loadUNet(path, configuration: configuration)
        let text = try StableDiffusionLoader.loadTextEncoder(path, configuration: configuration)
        var schedule = try TeacherSchedule.standard()
        for folder in [configuration, path].compactMap({ $0 }) {
            let file = URL(fileURLWithPath: folder).appendingPathComponent("scheduler/scheduler_config.json").path
            if FileManager.default.fileExists(atPath: file) {
                schedule = try TeacherSchedule.read(file)
                break
            }
        }
        if let prediction {
            schedule = TeacherSchedule(alphasCumprod: schedule.alphasCumprod, prediction: prediction, source: schedule.source + " (prediction type set explicitly)")
        }
        let widths = try unet.model.configuration.crossAttentionDims()
        let textWidth = text.model.configuration.width
        guard widths.allSatisfy({ $0 == textWidth }) else {
            throw CheckpointError(file: path, "the teacher's UNet attends to \(widths.first ?? 0)-wide text states (cross_attention_dim) but its text encoder is \(textWidth) wide")
        }
        guard unet.model.registry.trainable.isEmpty, text.model.registry.trainable.isEmpty else {
            throw CheckpointError(file: path, "internal: the teacher's weights must be frozen")
        }
        return SDSTeacher(unet: unet.model, textEncoder: text.model, schedule: schedule, version: unet.version,
                          notes: unet.notes + ["schedule from \(schedule.source), prediction \(schedule.prediction.rawValue)"])
    }

    /// Converts the frozen UNet's and text encoder's matrices for `choice` (bf16 copies made once, their
    /// float32 values freed: the teacher never trains and is never saved); returns the log line.
    public func apply(_ choice: PrecisionChoice) throws -> String {
        let unetLine = try unet.registry.apply(choice, model: "teacher UNet", releasingFloat32: true)
        guard choice.usesBFloat16 else { return "teacher: \(choice.summary)" }
        let textLine = try textEncoder.registry.apply(choice, model: "teacher text encoder", releasingFloat32: true)
        return unetLine + "; " + textLine
    }

    /// The id `tokenizer` (the teacher's own) pads caption rows with: SD1's (CLIP ViT-L/14's) pads with
    /// end of text, SD2's (OpenCLIP's) with "!" (id 0).
    public func padID(with tokenizer: CLIPTokenizer) -> Int { version == .sd1 ? tokenizer.endOfText : 0 }

    /// The conditioning c for teacher token rows: [B, L, D] (SD1 last layer, SD2 penultimate + final LN).
    public func context(_ ids: [[Int]]) throws -> Tensor {
        try withNoGrad { try textEncoder.hiddenStates(ids) }
    }
}
