import Foundation
import Models

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
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw CheckpointError(file: path, "cannot read the configuration: \(error.localizedDescription)")
        }
        guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw CheckpointError(file: path, "the configuration is not a JSON object")
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
        let vision = CLIPVisionConfiguration(
            imageSize: int(v, "image_size", 224), patchSize: int(v, "patch_size", 16), width: visionWidth,
            layers: int(v, "layers", 12), heads: max(visionWidth / max(headWidth, 1), 1), mlpWidth: visionMLP, activation: act)
        let text = CLIPTextConfiguration(
            vocabularySize: int(t, "vocab_size", 49408), contextLength: int(t, "context_length", 77), width: textWidth,
            layers: int(t, "layers", 12), heads: int(t, "heads", 8), mlpWidth: textMLP, activation: act, pooling: .argmax)
        return CLIPConfiguration(text: text, vision: vision, embedDimension: embed)
    }
}

extension CLIPConfigurationFile {
    /// transformers' `CLIPConfig` JSON for a configuration (what `config.json` of a `CLIPModel` folder
    /// holds); `read` gives the same configuration back. Argmax pooling is written as the legacy
    /// `eos_token_id: 2`, which transformers (and `read`) take to mean argmax.
    public static func huggingFaceObject(_ c: CLIPConfiguration) -> [String: Any] {
        func act(_ a: CLIPActivation) -> String { a == .quickGELU ? "quick_gelu" : "gelu" }
        let eos: Int
        switch c.text.pooling {
        case .argmax: eos = 2
        case .firstToken(let id): eos = id
        }
        let text: [String: Any] = [
            "model_type": "clip_text_model", "vocab_size": c.text.vocabularySize, "max_position_embeddings": c.text.contextLength,
            "hidden_size": c.text.width, "intermediate_size": c.text.mlpWidth, "num_hidden_layers": c.text.layers,
            "num_attention_heads": c.text.heads, "hidden_act": act(c.text.activation), "layer_norm_eps": Double(c.text.layerNormEpsilon),
            "eos_token_id": eos, "bos_token_id": eos == 2 ? 0 : eos - 1, "pad_token_id": 1, "projection_dim": c.embedDimension,
        ]
        let vision: [String: Any] = [
            "model_type": "clip_vision_model", "image_size": c.vision.imageSize, "patch_size": c.vision.patchSize,
            "hidden_size": c.vision.width, "intermediate_size": c.vision.mlpWidth, "num_hidden_layers": c.vision.layers,
            "num_attention_heads": c.vision.heads, "hidden_act": act(c.vision.activation),
            "layer_norm_eps": Double(c.vision.layerNormEpsilon), "num_channels": 3, "projection_dim": c.embedDimension,
        ]
        return ["architectures": ["CLIPModel"], "model_type": "clip", "projection_dim": c.embedDimension,
                "logit_scale_init_value": 2.6592, "text_config": text, "vision_config": vision]
    }
}
