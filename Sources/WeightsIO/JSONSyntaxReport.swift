import Foundation

/// Where a text stops being JSON, for messages about configuration files that people edit by hand:
/// Foundation's parsers only say that the data "was not valid JSON".
public enum JSONSyntaxReport {
    /// "line L, column C (byte N): what was expected", or nil when the text is valid JSON.
    public static func problem(in data: Data) -> String? {
        let bytes = Array(data)
        do {
            _ = try JSONParser.parse(bytes)
            return nil
        } catch {
            if case .duplicateKey = error.kind { return nil }   // valid JSON to Foundation's readers
            let offset = min(max(error.offset, 0), bytes.count)
            var line = 1, lineStart = 0
            for index in 0..<offset where bytes[index] == UInt8(ascii: "\n") {
                line += 1
                lineStart = index + 1
            }
            return "line \(line), column \(offset - lineStart + 1) (byte \(offset)): \(error.message)"
        }
    }
}
