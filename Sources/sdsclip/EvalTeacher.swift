import Checkpoints
import Evaluation
import Models
import SDSTraining
import Tensors

/// `eval --teacher`: a Stable Diffusion checkpoint as a diffusion-score classifier (UNet, text encoder and
/// schedule as `finetune` loads its teacher, plus the VAE's encoder).
enum EvalTeacher {
    static func load(_ path: String, configuration: String?, prediction: String?, precision: PrecisionChoice = .fp32) throws -> DiffusionTeacher {
        let override = try prediction.map { name -> SDSTraining.PredictionType in
            guard let value = SDSTraining.PredictionType(rawValue: name) else {
                throw EvaluationError(file: "--teacher-prediction", "'\(name)' is not one of \(SDSTraining.PredictionType.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            return value
        }
        let teacher = try SDSTeacher.load(path, configuration: configuration, prediction: override)
        for note in teacher.notes { printError("note: \(path): \(note)") }
        let vae: AutoencoderKL
        do {
            vae = try StableDiffusionLoader.loadVAE(path, configuration: configuration, parts: .encoder).model
        } catch {
            throw EvaluationError(file: path, "the diffusion-score classifier encodes images with the teacher's VAE, which could not be loaded: \(error)")
        }
        if precision.usesBFloat16 {
            printError("note: \(path): \(try teacher.apply(precision)); \(try vae.registry.apply(precision, model: "VAE encoder"))")
        }
        let tokenizer = try ModelTokenizer.forTextEncoder(at: path, configuration: configuration)
        let padID = teacher.padID(with: tokenizer)
        let target: Models.PredictionType = teacher.schedule.prediction == .epsilon ? .epsilon : .velocity
        return try DiffusionTeacher(unet: teacher.unet, textEncoder: teacher.textEncoder, vae: vae, alphasCumprod: teacher.schedule.alphasCumprod,
                                    prediction: target, padID: padID, tokenizer: tokenizer, source: path)
    }
}
