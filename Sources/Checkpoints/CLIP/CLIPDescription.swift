import Foundation
import Layouts
import Models
import WeightsIO

/// What `inspect` says about a CLIP checkpoint: its layout, the architecture (and where the facts the
/// weights cannot hold came from), and parameter totals per tower. Built from names and shapes only.
public struct CLIPDescription: Encodable, Equatable, Sendable {
    public struct Vision: Encodable, Equatable, Sendable {
        public let width, layers, patchSize, imageSize, mlpWidth: Int
        /// Nil when neither a configuration file nor the table of released models says.
        public let heads: Int?
    }

    public struct Text: Encodable, Equatable, Sendable {
        public let width, layers, mlpWidth, contextLength, vocabularySize: Int
        public let heads: Int?
    }

    public struct Parameters: Encodable, Equatable, Sendable {
        /// `vision_model.*` + `visual_projection` (models.md §1.9 counts the projections with their tower).
        public let vision: Int
        /// `text_model.*` + `text_projection`.
        public let text: Int
        /// `logit_scale` and anything outside both towers.
        public let other: Int
        public var total: Int { vision + text + other }

        enum CodingKeys: String, CodingKey { case vision, text, other, total }
        public func encode(to encoder: Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(vision, forKey: .vision)
            try container.encode(text, forKey: .text)
            try container.encode(other, forKey: .other)
            try container.encode(total, forKey: .total)
        }
    }

    public let layout: CLIPCheckpointLayout
    /// "image+text" or "text" (a standalone text encoder).
    public let towers: String
    /// The released model the shapes match, or "custom".
    public let architecture: String
    public let vision: Vision?
    public let text: Text
    /// The joint embedding width (nil for a text tower without projection).
    public let embedDimension: Int?
    /// nil when unknown (a custom size without a configuration file).
    public let activation: CLIPActivation?
    /// Where the head counts and the activation came from: a configuration file, the table, or "unknown …".
    public let headsSource: String
    public let activationSource: String
    public let parameters: Parameters
    /// Source tensors left out on purpose, with the reason.
    public let dropped: [String]
}

extension CLIPLoader {
    /// Describes the store as a CLIP, or returns nil when it is not one. `path` is where to look for a
    /// configuration file beside the weights; `configuration` names one explicitly.
    public static func describe(store: WeightStore, path: String, configuration: String? = nil) throws -> CLIPDescription? {
        let shapes = CanonicalTensors.namedShapes(store)
        let names = shapes.map(\.name)
        let unwrapped = !names.isEmpty && names.allSatisfy { $0.hasPrefix("module.") } ? names.map { String($0.dropFirst("module.".count)) } : names
        guard detectLayout(unwrapped) != nil else { return nil }
        return try describe(shapes: shapes, format: store.format, file: store.sources.first ?? path,
                            configuration: configuration ?? siblingConfiguration(for: path))
    }

    /// The description from stored names and shapes (testable on name/shape manifests).
    public static func describe(shapes: [NamedShape], format: WeightFormat, file: String, configuration: String?) throws -> CLIPDescription {
        let planned = try plan(shapes, format: format, file: file)
        if !planned.plan.unknown.isEmpty {
            throw CheckpointError(file: file, "\(planned.plan.unknown.count) tensor(s) match no CLIP rule: \(planned.plan.unknown.prefix(6).joined(separator: ", "))")
        }
        let stored = Dictionary(shapes.map { ($0.name, $0.shape) }, uniquingKeysWith: { first, _ in first })
        var canonical: [String: [Int]] = [:]
        for (name, shape) in planned.plan.targetShapes(sourceShapes: stored) {
            guard let shape else { throw CheckpointError(file: file, "tensor '\(name)' has a shape its layout rule cannot transform") }
            canonical[name] = shape
        }
        let parameters = parameterTotals(canonical)
        let dropped = planned.plan.dropped.map { "\($0.name): \($0.reason)" }
        let text = try CLIPArchitecture.textFacts(canonical, file: file)

        // The table answers for released sizes; a configuration file, when present, has the last word.
        var known: KnownCLIP?
        var vision: CLIPShapeFacts?
        if planned.isTextOnly {
            known = CLIPArchitecture.knownTextTowers(width: text.width, layers: text.layers).first
        } else {
            vision = try CLIPArchitecture.facts(canonical, file: file)
            known = vision.flatMap(CLIPArchitecture.knownModel(for:))
        }
        var architecture = known?.name ?? "custom"
        if planned.isTextOnly, known != nil {
            let names = CLIPArchitecture.knownTextTowers(width: text.width, layers: text.layers).map(\.name)
            architecture = names.joined(separator: " / ") + " text tower"
        }
        var visionHeads = known?.visionHeads, textHeads = known?.textHeads
        var activation = known?.activation
        var headsSource = known.map { "table of released models (\($0.name))" }
            ?? "unknown: not stored in the weights; put config.json/open_clip_config.json beside them or pass --config"
        var activationSource = known.map { "table of released models (\($0.name): \($0.note))" } ?? headsSource
        if let configuration {
            if planned.isTextOnly {
                let config = try CLIPConfigurationFile.readText(configuration)
                (textHeads, activation) = (config.heads, config.activation)
            } else {
                let config = try CLIPConfigurationFile.read(configuration)
                (visionHeads, textHeads, activation) = (config.vision.heads, config.text.heads, config.text.activation)
            }
            headsSource = "configuration file \(configuration)"
            activationSource = headsSource
        }
        return CLIPDescription(
            layout: planned.layout, towers: planned.isTextOnly ? "text" : "image+text", architecture: architecture,
            vision: vision.map { CLIPDescription.Vision(width: $0.visionWidth, layers: $0.visionLayers, patchSize: $0.patchSize,
                                        imageSize: $0.imageSize, mlpWidth: $0.visionMLP, heads: visionHeads) },
            text: CLIPDescription.Text(width: text.width, layers: text.layers, mlpWidth: text.mlpWidth, contextLength: text.contextLength,
                       vocabularySize: text.vocabularySize, heads: textHeads),
            embedDimension: vision?.embedDimension ?? text.projectionDimension,
            activation: activation, headsSource: headsSource, activationSource: activationSource,
            parameters: parameters, dropped: dropped)
    }

    static func parameterTotals(_ canonical: [String: [Int]]) -> CLIPDescription.Parameters {
        var vision = 0, text = 0, other = 0
        for (name, shape) in canonical {
            // Shapes come from the file: a zero-element [0, 2^62, 4] must not overflow the totals.
            let count = TensorShape.elementCount(shape) ?? Int.max
            if name.hasPrefix("vision_model.") || name == "visual_projection.weight" {
                vision = TensorShape.saturatingSum(vision, count)
            } else if isTextTensor(name) {
                text = TensorShape.saturatingSum(text, count)
            } else {
                other = TensorShape.saturatingSum(other, count)
            }
        }
        return CLIPDescription.Parameters(vision: vision, text: text, other: other)
    }
}
