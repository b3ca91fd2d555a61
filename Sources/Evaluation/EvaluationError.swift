/// A problem with a benchmark or a model as a whole (a missing file, an unknown layout, a model whose
/// vocabulary the tokenizer overruns): the run stops. A bad item is not an error; it is skipped and
/// counted (`SkippedItem`). Names the file or folder and what was expected.
public struct EvaluationError: Error, CustomStringConvertible, Sendable, Equatable {
    public let path: String
    public let message: String

    public init(file path: String, _ message: String) {
        self.path = path
        self.message = message
    }

    public var description: String { "\(path): \(message)" }
}
