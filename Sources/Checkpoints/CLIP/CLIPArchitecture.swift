import Foundation
import Models

/// What the weights of a CLIP say about its architecture, and the table of released models for
/// what they cannot say: the head count and the activation (models.md §1.1, §1.8).
public struct CLIPShapeFacts: Equatable, Sendable, CustomStringConvertible {
    public var visionWidth, visionLayers, patchSize, imageSize, visionMLP: Int
    public var textWidth, textLayers, textMLP, vocabularySize, contextLength: Int
    public var embedDimension: Int

    public var description: String {
        "vision width \(visionWidth), \(visionLayers) layers, patch \(patchSize), image \(imageSize); "
            + "text width \(textWidth), \(textLayers) layers; embed \(embedDimension)"
    }
}

public struct KnownCLIP: Sendable {
    public let name: String
    public let visionWidth, visionLayers, patchSize, imageSize, textWidth, textLayers: Int
    public let visionHeads, textHeads: Int
    public let embedDimension: Int
    public let activation: CLIPActivation
    public let note: String

    /// The released model's full configuration (MLP 4× wide, 49408 tokens, 77 positions): what a
    /// benchmark or a shape check builds with random weights.
    public var configuration: CLIPConfiguration {
        CLIPConfiguration(
            text: CLIPTextConfiguration(width: textWidth, layers: textLayers, heads: textHeads, activation: activation, pooling: .argmax),
            vision: CLIPVisionConfiguration(imageSize: imageSize, patchSize: patchSize, width: visionWidth, layers: visionLayers,
                                            heads: visionHeads, activation: activation),
            embedDimension: embedDimension)
    }
}

/// What the weights of a text tower say about it.
public struct CLIPTextShapeFacts: Equatable, Sendable, CustomStringConvertible {
    public var width, layers, mlpWidth, vocabularySize, contextLength: Int
    /// The projection's output width, when the tower has one.
    public var projectionDimension: Int?

    public var description: String { "text width \(width), \(layers) layers" }
}

public enum CLIPArchitecture {
    /// Released CLIP sizes. The activation is that of the best-known weights of each size: OpenAI's
    /// QuickGELU for B and L, LAION-2B's GELU for H, g and bigG.
    public static let known: [KnownCLIP] = [
        KnownCLIP(name: "ViT-B/32", visionWidth: 768, visionLayers: 12, patchSize: 32, imageSize: 224, textWidth: 512, textLayers: 12,
                  visionHeads: 12, textHeads: 8, embedDimension: 512, activation: .quickGELU, note: "OpenAI; OpenCLIP LAION B-32 weights use GELU"),
        KnownCLIP(name: "ViT-B/16", visionWidth: 768, visionLayers: 12, patchSize: 16, imageSize: 224, textWidth: 512, textLayers: 12,
                  visionHeads: 12, textHeads: 8, embedDimension: 512, activation: .quickGELU, note: "OpenAI; OpenCLIP LAION B-16 weights use GELU"),
        KnownCLIP(name: "ViT-L/14", visionWidth: 1024, visionLayers: 24, patchSize: 14, imageSize: 224, textWidth: 768, textLayers: 12,
                  visionHeads: 16, textHeads: 12, embedDimension: 768, activation: .quickGELU, note: "OpenAI; OpenCLIP LAION L-14 weights use GELU"),
        KnownCLIP(name: "ViT-L/14@336", visionWidth: 1024, visionLayers: 24, patchSize: 14, imageSize: 336, textWidth: 768, textLayers: 12,
                  visionHeads: 16, textHeads: 12, embedDimension: 768, activation: .quickGELU, note: "OpenAI"),
        KnownCLIP(name: "ViT-H-14", visionWidth: 1280, visionLayers: 32, patchSize: 14, imageSize: 224, textWidth: 1024, textLayers: 24,
                  visionHeads: 16, textHeads: 16, embedDimension: 1024, activation: .gelu, note: "OpenCLIP LAION-2B"),
        KnownCLIP(name: "ViT-g-14", visionWidth: 1408, visionLayers: 40, patchSize: 14, imageSize: 224, textWidth: 1024, textLayers: 24,
                  visionHeads: 16, textHeads: 16, embedDimension: 1024, activation: .gelu, note: "OpenCLIP LAION-2B"),
        KnownCLIP(name: "ViT-bigG-14", visionWidth: 1664, visionLayers: 48, patchSize: 14, imageSize: 224, textWidth: 1280, textLayers: 32,
                  visionHeads: 16, textHeads: 20, embedDimension: 1280, activation: .gelu, note: "OpenCLIP LAION-2B"),
    ]

    /// Reads the sizes from canonical (HF) names and shapes.
    public static func facts(_ shapes: [String: [Int]], file: String = "") throws -> CLIPShapeFacts {
        func shape(_ name: String, rank: Int) throws -> [Int] {
            guard let s = shapes[name], s.count == rank else {
                throw CheckpointError(file: file, "cannot infer the CLIP architecture: '\(name)' is missing or not \(rank)-D")
            }
            return s
        }
        let patch = try shape("vision_model.embeddings.patch_embedding.weight", rank: 4)
        let positions = try shape("vision_model.embeddings.position_embedding.weight", rank: 2)
        // Rows are one class token plus a square grid of at least one patch; sizes come from the file,
        // so an empty or huge embedding is reported, never computed with.
        let rows = positions[0]
        let grid = rows >= 2 ? Int(Double(rows - 1).squareRoot().rounded()) : 0
        let (square, squareOverflow) = grid.multipliedReportingOverflow(by: grid)
        guard grid >= 1, !squareOverflow, square == rows - 1 else {
            throw CheckpointError(file: file, "the vision position embedding has \(rows) rows, not a square grid of at least one patch plus one")
        }
        let (imageSize, imageOverflow) = grid.multipliedReportingOverflow(by: patch[3])
        guard !imageOverflow else {
            throw CheckpointError(file: file, "a \(grid)×\(grid) grid of \(patch[3])-pixel patches is too large an image")
        }
        let projection = try shape("text_projection.weight", rank: 2)
        let visionMLP = try shape("vision_model.encoder.layers.0.mlp.fc1.weight", rank: 2)
        let text = try textFacts(shapes, file: file)
        return CLIPShapeFacts(
            visionWidth: patch[0], visionLayers: layerCount(shapes.keys, prefix: "vision_model.encoder.layers."), patchSize: patch[3],
            imageSize: imageSize, visionMLP: visionMLP[0],
            textWidth: text.width, textLayers: text.layers, textMLP: text.mlpWidth,
            vocabularySize: text.vocabularySize, contextLength: text.contextLength, embedDimension: projection[0])
    }

    /// The text tower's sizes from canonical names and shapes.
    public static func textFacts(_ shapes: [String: [Int]], file: String = "") throws -> CLIPTextShapeFacts {
        func shape(_ name: String) throws -> [Int] {
            guard let s = shapes[name], s.count == 2 else {
                throw CheckpointError(file: file, "cannot infer the CLIP text tower: '\(name)' is missing or not 2-D")
            }
            return s
        }
        let tokens = try shape("text_model.embeddings.token_embedding.weight")
        let positions = try shape("text_model.embeddings.position_embedding.weight")
        let mlp = try shape("text_model.encoder.layers.0.mlp.fc1.weight")
        let projection = shapes["text_projection.weight"].flatMap { $0.count == 2 ? $0[0] : nil }
        return CLIPTextShapeFacts(width: tokens[1], layers: layerCount(shapes.keys, prefix: "text_model.encoder.layers."),
                                  mlpWidth: mlp[0], vocabularySize: tokens[0], contextLength: positions[0],
                                  projectionDimension: projection)
    }

    /// How many distinct `prefix<N>.` layer indices the names hold.
    static func layerCount(_ names: some Sequence<String>, prefix: String) -> Int {
        Set(names.compactMap { name -> Int? in
            guard name.hasPrefix(prefix) else { return nil }
            return Int(name.dropFirst(prefix.count).prefix { $0 != "." })
        }).count
    }

    /// Released models whose text tower has this size (B/32 and B/16 share one, as do L/14 and L/14@336,
    /// and H-14 and g-14; the heads and activation agree within each group).
    public static func knownTextTowers(width: Int, layers: Int) -> [KnownCLIP] {
        known.filter { $0.textWidth == width && $0.textLayers == layers }
    }

    /// A text configuration from shapes alone, for released sizes.
    public static func inferText(_ shapes: [String: [Int]], activation: CLIPActivation? = nil,
                                 file: String = "") throws -> (CLIPTextConfiguration, [KnownCLIP]) {
        let f = try textFacts(shapes, file: file)
        let matches = knownTextTowers(width: f.width, layers: f.layers)
        guard let model = matches.first else {
            throw CheckpointError(file: file, """
                unknown CLIP text size (\(f)); the head count and the activation are not stored in the weights. \
                Put transformers' config.json (CLIPTextConfig) beside the weights, or pass --config FILE
                """)
        }
        let config = CLIPTextConfiguration(vocabularySize: f.vocabularySize, contextLength: f.contextLength, width: f.width,
                                           layers: f.layers, heads: model.textHeads, mlpWidth: f.mlpWidth,
                                           activation: activation ?? model.activation, pooling: .argmax)
        return (config, matches)
    }

    public static func knownModel(for facts: CLIPShapeFacts) -> KnownCLIP? {
        known.first {
            $0.visionWidth == facts.visionWidth && $0.visionLayers == facts.visionLayers && $0.patchSize == facts.patchSize
                && $0.imageSize == facts.imageSize && $0.textWidth == facts.textWidth && $0.textLayers == facts.textLayers
        }
    }

    /// A full configuration from shapes alone, for released sizes; an error that says what to
    /// pass for anything else.
    public static func infer(_ shapes: [String: [Int]], activation: CLIPActivation? = nil, file: String = "") throws -> (CLIPConfiguration, KnownCLIP) {
        let f = try facts(shapes, file: file)
        guard let model = knownModel(for: f) else {
            throw CheckpointError(file: file, """
                unknown CLIP size (\(f)); the head count and the activation are not stored in the weights. \
                Put transformers' config.json or OpenCLIP's open_clip_config.json beside the weights, or pass --config FILE
                """)
        }
        let act = activation ?? model.activation
        let config = CLIPConfiguration(
            text: CLIPTextConfiguration(vocabularySize: f.vocabularySize, contextLength: f.contextLength, width: f.textWidth,
                                        layers: f.textLayers, heads: model.textHeads, mlpWidth: f.textMLP, activation: act, pooling: .argmax),
            vision: CLIPVisionConfiguration(imageSize: f.imageSize, patchSize: f.patchSize, width: f.visionWidth, layers: f.visionLayers,
                                            heads: model.visionHeads, mlpWidth: f.visionMLP, activation: act),
            embedDimension: f.embedDimension)
        return (config, model)
    }
}
