/// A problem with a data set as a whole (as opposed to one bad sample, which is skipped):
/// a missing manifest, a header without the expected columns, an unknown layout, too many bad
/// samples. Names the file, the line, record or member when known, and what was expected.
public struct DataError: Error, CustomStringConvertible, Sendable, Equatable {
    public let file: String
    public let location: String?
    public let message: String

    public init(file: String, at location: String? = nil, _ message: String) {
        (self.file, self.location, self.message) = (file, location, message)
    }

    /// `FILE: LOCATION: MESSAGE`, the location left out when unknown.
    public var description: String { [file, location, message].compactMap { $0 }.joined(separator: ": ") }
}
