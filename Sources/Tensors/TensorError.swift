/// Why a tensor operation refused its input. Every case names the operation and what it expected,
/// so a caller several layers up (a model, a checkpoint loader) can report it verbatim.
public enum TensorError: Error, Equatable, CustomStringConvertible {
    /// Shapes that cannot be combined, e.g. `matmul: inner dimensions differ, [2, 3] vs [4, 5]`.
    case shapeMismatch(op: String, detail: String)
    /// An argument outside its domain (negative padding, axis out of range, zero groups ...).
    case invalidArgument(op: String, detail: String)
    /// An integer index (token id, class target) outside `0..<bound`, with its position in the input.
    case indexOutOfRange(op: String, index: Int, bound: Int, position: Int)
    /// `backward()` on a tensor that has no graph behind it, or whose graph was already consumed.
    case noGraph(detail: String)

    public var description: String {
        switch self {
        case let .shapeMismatch(op, detail): return "\(op): shape mismatch: \(detail)"
        case let .invalidArgument(op, detail): return "\(op): invalid argument: \(detail)"
        case let .indexOutOfRange(op, index, bound, position):
            return "\(op): index \(index) at position \(position) is outside 0..<\(bound)"
        case let .noGraph(detail): return "backward: \(detail)"
        }
    }
}
