import Foundation
import WeightsIO
import Models
import WeightsIO

/// Reads a CLIP configuration from the two file formats people have: transformers' `config.json`
/// (`CLIPConfig`, or a bare `CLIPTextConfig`) and OpenCLIP's `{"model_cfg": …}` / model-config JSON.
/// Absent fields take each library's own defaults.
public enum CLIPConfigurationFile {
    public static func read(_ path: String) throws -> CLIPConfiguration {
        let object = try jsonObject(path)
        if let modelConfig = object["model_cfg"] as? [String: Any] { return try openCLIP(modelConfig, file: path) }
        if object["vision_cfg"] != nil || object["text_cfg"] != nil { return try openCLIP(object, file: path) }
        if object["text_config"] != nil || object["vision_config"] != nil { return huggingFace(object) }
        throw CheckpointError(file: path, "not a CLIP configuration (expected transformers' config.json with text_config/vision_config, or OpenCLIP's model_cfg)")
    }

    /// The text tower's configuration: from a transformers `CLIPTextConfig` (a standalone text encoder's
    /// config.json), or the text part of a full transformers or OpenCLIP configuration.
    public static func readText(_ path: String) throws -> CLIPTextConfiguration {
        let object = try jsonObject(path)
        if let text = object["text_config"] as? [String: Any] { return huggingFaceText(text) }
        if object["model_cfg"] != nil || object["text_cfg"] != nil { return try read(path).text }
        return huggingFaceText(object)
    }

    static func jsonObject(_ path: String) throws -> [String: Any] {
        let data: Data
        do { data = Data(try InputFile.readAll(path)) } catch {
            throw CheckpointError(file: path, "cannot read the configuration: \((error as? WeightsError)?.message ?? "\(error)")")
        }
        let parsed: Any
        do { parsed = try JSONSerialization.jsonObject(with: data) } catch {
            // Said apart from a well-formed file of the wrong shape, with the parser's position.
            throw CheckpointError(file: path, "the configuration is not valid JSON: \(JSONSyntaxReport.problem(in: data) ?? String(describing: error))")
        }
        guard let object = parsed as? [String: Any] else {
            throw CheckpointError(file: path, "the configuration is valid JSON but not an object ({…}) at the top level")
        }
        return object
    }

    static func int(_ dict: [String: Any], _ key: String, _ fallback: Int) -> Int {
        (dict[key] as? NSNumber)?.intValue ?? fallback
    }

    static func activation(_ value: Any?, fallback: CLIPActivation) -> CLIPActivation {
        guard let name = value as? String else { return fallback }
        switch name {
        case "quick_gelu": return .quickGELU
        case "gelu": return .gelu
        default: return fallback
        }
    }

    static func huggingFaceText(_ t: [String: Any]) -> CLIPTextConfiguration {
        let width = int(t, "hidden_size", 512)
        let eos = int(t, "eos_token_id", 49407)
        return CLIPTextConfiguration(
            vocabularySize: int(t, "vocab_size", 49408), contextLength: int(t, "max_position_embeddings", 77),
            width: width, layers: int(t, "num_hidden_layers", 12), heads: int(t, "num_attention_heads", 8),
            mlpWidth: int(t, "intermediate_size", 2048), activation: activation(t["hidden_act"], fallback: .quickGELU),
            layerNormEpsilon: (t["layer_norm_eps"] as? NSNumber)?.floatValue ?? 1e-5,
            // transformers pools at the first eos, except for legacy configs whose eos id is 2.
            pooling: eos == 2 ? .argmax : .firstToken(eos))
    }

    static func huggingFace(_ object: [String: Any]) -> CLIPConfiguration {
        let t = object["text_config"] as? [String: Any] ?? [:]
        let v = object["vision_config"] as? [String: Any] ?? [:]
        let vision = CLIPVisionConfiguration(
            imageSize: int(v, "image_size", 224), patchSize: int(v, "patch_size", 32), width: int(v, "hidden_size", 768),
            layers: int(v, "num_hidden_layers", 12), heads: int(v, "num_attention_heads", 12),
            mlpWidth: int(v, "intermediate_size", 3072), activation: activation(v["hidden_act"], fallback: .quickGELU),
            layerNormEpsilon: (v["layer_norm_eps"] as? NSNumber)?.floatValue ?? 1e-5)
        return CLIPConfiguration(text: huggingFaceText(t), vision: vision, embedDimension: int(object, "projection_dim", 512))
    }

    static func openCLIP(_ cfg: [String: Any], file: String) throws -> CLIPConfiguration {
        guard let embed = (cfg["embed_dim"] as? NSNumber)?.intValue else {
            throw CheckpointError(file: file, "OpenCLIP model_cfg has no embed_dim")
        }
        let quick = (cfg["quick_gelu"] as? Bool) ?? false
        let act: CLIPActivation = quick ? .quickGELU : .gelu
        let v = cfg["vision_cfg"] as? [String: Any] ?? [:]
        let t = cfg["text_cfg"] as? [String: Any] ?? [:]
        if (v["layers"] as? [Any]) != nil || v["timm_model_name"] != nil {
            throw CheckpointError(file: file, "only ViT image towers are supported (this config describes a ResNet or timm tower)")
        }
        if t["hf_model_name"] != nil {
            throw CheckpointError(file: file, "text towers from Hugging Face models (hf_model_name) are not supported")
        }
        let visionWidth = int(v, "width", 768)
        let headWidth = int(v, "head_width", 64)
        let visionMLP = Int((Double(visionWidth) * ((v["mlp_ratio"] as? NSNumber)?.doubleValue ?? 4.0)).rounded(.down))
        let textWidth = int(t, "width", 512)
        let textMLP = Int((Double(textWidth) * ((t["mlp_ratio"] as? NSNumber)?.doubleValue ?? 4.0)).rounded(.down))
        let pooling: CLIPTextPooling
        switch t["pool_type"] as? String ?? "argmax" {
        case "argmax": pooling = .argmax
        case "eos": pooling = .firstToken(int(t, "eos_id", 2))
        case let other: throw CheckpointError(file: file, "text pool_type '\(other)' is not supported (argmax or eos)")
        }
        let vision = CLIPVisionConfiguration(
            imageSize: int(v, "image_size", 224), patchSize: int(v, "patch_size", 16), width: visionWidth,
            layers: int(v, "layers", 12), heads: max(visionWidth / max(headWidth, 1), 1), mlpWidth: visionMLP, activation: act,
            layerNormEpsilon: openCLIPEpsilon(v))
        let text = CLIPTextConfiguration(
            vocabularySize: int(t, "vocab_size", 49408), contextLength: int(t, "context_length", 77), width: textWidth,
            layers: int(t, "layers", 12), heads: int(t, "heads", 8), mlpWidth: textMLP, activation: act,
            layerNormEpsilon: openCLIPEpsilon(t), pooling: pooling)
        return CLIPConfiguration(text: text, vision: vision, embedDimension: embed)
    }

    /// A tower's LayerNorm epsilon: `norm_kwargs.eps`, else torch's default.
    static func openCLIPEpsilon(_ tower: [String: Any]) -> Float {
        ((tower["norm_kwargs"] as? [String: Any])?["eps"] as? NSNumber)?.floatValue ?? 1e-5
    }
}

extension CLIPConfigurationFile {
    /// transformers' `CLIPConfig` JSON for a configuration (what `config.json` of a `CLIPModel` folder
    /// holds); `read` gives a configuration back that pools the same tokens.
    public static func huggingFaceObject(_ c: CLIPConfiguration) -> [String: Any] {
        let eos = huggingFaceEndOfText(c.text)
        let text: [String: Any] = [
            "model_type": "clip_text_model", "vocab_size": c.text.vocabularySize, "max_position_embeddings": c.text.contextLength,
            "hidden_size": c.text.width, "intermediate_size": c.text.mlpWidth, "num_hidden_layers": c.text.layers,
            "num_attention_heads": c.text.heads, "hidden_act": c.text.activation.rawValue, "layer_norm_eps": decimal(c.text.layerNormEpsilon),
            "eos_token_id": eos, "bos_token_id": eos == 2 ? 0 : eos - 1, "pad_token_id": 1, "projection_dim": c.embedDimension,
        ]
        let vision: [String: Any] = [
            "model_type": "clip_vision_model", "image_size": c.vision.imageSize, "patch_size": c.vision.patchSize,
            "hidden_size": c.vision.width, "intermediate_size": c.vision.mlpWidth, "num_hidden_layers": c.vision.layers,
            "num_attention_heads": c.vision.heads, "hidden_act": c.vision.activation.rawValue,
            "layer_norm_eps": decimal(c.vision.layerNormEpsilon), "num_channels": 3, "projection_dim": c.embedDimension,
        ]
        return ["architectures": ["CLIPModel"], "model_type": "clip", "projection_dim": c.embedDimension,
                "logit_scale_init_value": 2.6592, "text_config": text, "vision_config": vision]
    }

    /// The `eos_token_id` that makes transformers pool where we do. transformers pools at the first
    /// `eos_token_id`, except for the legacy id 2, which means argmax. With the real 49,408-token
    /// vocabulary argmax *is* the first end of text (49407, the largest id), so argmax is written as
    /// 49407 there and as 2 for other vocabularies (the tiny fixtures).
    static func huggingFaceEndOfText(_ text: CLIPTextConfiguration) -> Int {
        switch text.pooling {
        case .firstToken(let id): return id
        case .argmax: return text.vocabularySize == BPEVocabulary.size ? Int(CLIPTokenizer.endOfTextID) : 2
        }
    }

    /// open_clip's `model_cfg` for a configuration (`read` gives it back). open_clip has one
    /// activation switch (`quick_gelu`) for both towers, so towers that differ are refused.
    public static func openCLIPModelObject(_ c: CLIPConfiguration, file: String) throws -> [String: Any] {
        guard c.text.activation == c.vision.activation else {
            throw CheckpointError(file: file, "open_clip uses one activation for both towers (quick_gelu true or false); this model's text tower uses \(c.text.activation.rawValue) and its vision tower \(c.vision.activation.rawValue)")
        }
        var vision: [String: Any] = [
            "image_size": c.vision.imageSize, "patch_size": c.vision.patchSize, "width": c.vision.width, "layers": c.vision.layers,
            "head_width": c.vision.width / c.vision.heads, "mlp_ratio": mlpRatio(c.vision.mlpWidth, width: c.vision.width),
        ]
        var text: [String: Any] = [
            "context_length": c.text.contextLength, "vocab_size": c.text.vocabularySize, "width": c.text.width,
            "heads": c.text.heads, "layers": c.text.layers, "mlp_ratio": mlpRatio(c.text.mlpWidth, width: c.text.width),
        ]
        if case .firstToken(let id) = c.text.pooling {
            text["pool_type"] = "eos"
            text["eos_id"] = id
        }
        // torch's default epsilon needs no entry; others go where open_clip's LayerNorm takes them.
        if c.vision.layerNormEpsilon != 1e-5 { vision["norm_kwargs"] = ["eps": decimal(c.vision.layerNormEpsilon)] }
        if c.text.layerNormEpsilon != 1e-5 { text["norm_kwargs"] = ["eps": decimal(c.text.layerNormEpsilon)] }
        return ["embed_dim": c.embedDimension, "quick_gelu": c.text.activation == .quickGELU, "vision_cfg": vision, "text_cfg": text]
    }

    /// A ratio r with `int(width * r) == mlpWidth` in double arithmetic, as open_clip computes the MLP width.
    static func mlpRatio(_ mlpWidth: Int, width: Int) -> Double {
        var ratio = Double(mlpWidth) / Double(width)
        while Int((Double(width) * ratio).rounded(.down)) < mlpWidth { ratio = ratio.nextUp }
        return ratio
    }

    /// A Float setting as the decimal it was written as (1e-05, not 9.99999974737875e-06).
    static func decimal(_ value: Float) -> Double { Double("\(value)") ?? Double(value) }
}
