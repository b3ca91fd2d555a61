import Foundation

/// The MLP activation of a CLIP tower. It is not stored in the weights (models.md §1.8).
public enum CLIPActivation: String, Codable, Sendable, CaseIterable {
    /// x·σ(1.702x): every OpenAI release and some OpenCLIP tags.
    case quickGELU = "quick_gelu"
    /// The exact erf GELU: LAION-2B OpenCLIP H/g/bigG and SD2's text encoder.
    case gelu = "gelu"
}

/// How the text tower picks the token whose state becomes the sentence embedding.
public enum CLIPTextPooling: Equatable, Sendable {
    /// `argmax(ids)`: OpenAI/OpenCLIP (the end token is the largest id); the first maximum wins.
    case argmax
    /// The first position holding this id (transformers, when `eos_token_id` is not the legacy 2).
    case firstToken(Int)
}

public struct CLIPTextConfiguration: Equatable, Sendable {
    public var vocabularySize: Int
    public var contextLength: Int
    public var width: Int
    public var layers: Int
    public var heads: Int
    public var mlpWidth: Int
    public var activation: CLIPActivation
    public var layerNormEpsilon: Float
    public var pooling: CLIPTextPooling

    public init(vocabularySize: Int = 49408, contextLength: Int = 77, width: Int, layers: Int, heads: Int,
                mlpWidth: Int? = nil, activation: CLIPActivation = .quickGELU, layerNormEpsilon: Float = 1e-5,
                pooling: CLIPTextPooling = .argmax) {
        self.vocabularySize = vocabularySize
        self.contextLength = contextLength
        self.width = width
        self.layers = layers
        self.heads = heads
        self.mlpWidth = mlpWidth ?? 4 * width
        self.activation = activation
        self.layerNormEpsilon = layerNormEpsilon
        self.pooling = pooling
    }

    func validate() throws {
        guard width > 0, layers >= 0, heads > 0, width % heads == 0 else {
            throw ModelError.invalidConfiguration("text width \(width) must be a positive multiple of the \(heads) heads")
        }
        guard vocabularySize > 0, contextLength > 0, mlpWidth > 0 else {
            throw ModelError.invalidConfiguration("text vocabulary, context length and MLP width must be positive")
        }
    }
}

public struct CLIPVisionConfiguration: Equatable, Sendable {
    public var imageSize: Int
    public var patchSize: Int
    public var width: Int
    public var layers: Int
    public var heads: Int
    public var mlpWidth: Int
    public var activation: CLIPActivation
    public var layerNormEpsilon: Float

    public init(imageSize: Int, patchSize: Int, width: Int, layers: Int, heads: Int, mlpWidth: Int? = nil,
                activation: CLIPActivation = .quickGELU, layerNormEpsilon: Float = 1e-5) {
        self.imageSize = imageSize
        self.patchSize = patchSize
        self.width = width
        self.layers = layers
        self.heads = heads
        self.mlpWidth = mlpWidth ?? 4 * width
        self.activation = activation
        self.layerNormEpsilon = layerNormEpsilon
    }

    public var gridSize: Int { imageSize / patchSize }
    public var tokenCount: Int { gridSize * gridSize + 1 }

    func validate() throws {
        guard patchSize > 0, imageSize > 0, imageSize % patchSize == 0 else {
            throw ModelError.invalidConfiguration("image size \(imageSize) must be a multiple of the patch size \(patchSize)")
        }
        guard width > 0, heads > 0, width % heads == 0, mlpWidth > 0 else {
            throw ModelError.invalidConfiguration("vision width \(width) must be a positive multiple of the \(heads) heads")
        }
    }
}

public struct CLIPConfiguration: Equatable, Sendable {
    public var text: CLIPTextConfiguration
    public var vision: CLIPVisionConfiguration
    /// The shared embedding size E of both projections.
    public var embedDimension: Int

    public init(text: CLIPTextConfiguration, vision: CLIPVisionConfiguration, embedDimension: Int) {
        self.text = text
        self.vision = vision
        self.embedDimension = embedDimension
    }
}
