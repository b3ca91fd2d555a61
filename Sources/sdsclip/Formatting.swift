import Foundation

enum Formatting {
    static func bytes(_ count: Int) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(count)
        var unit = 0
        while value >= 1024, unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(count) B" : String(format: "%.2f %@", value, units[unit])
    }

    static func count(_ value: Int) -> String {
        let digits = String(value)
        var out = ""
        for (index, char) in digits.reversed().enumerated() {
            if index > 0, index % 3 == 0 { out.append(",") }
            out.append(char)
        }
        return String(out.reversed())
    }

    static func shape(_ shape: [Int]) -> String { "[" + shape.map(String.init).joined(separator: ", ") + "]" }
}

/// A progress line on stderr: redrawn in place on a terminal, every 10% otherwise (logs, CI).
final class ProgressLine {
    private let label: String
    private let isTerminal = isatty(STDERR_FILENO) != 0
    private var lastDecile = -1
    private var lastDraw = Date.distantPast
    private let start = Date()

    init(label: String) { self.label = label }

    func update(done: Int64, total: Int64) {
        guard total > 0 else { return }
        let fraction = min(Double(done) / Double(total), 1)
        let elapsed = Date().timeIntervalSince(start)
        let rate = elapsed > 0 ? Double(done) / elapsed : 0
        let text = String(format: "%@ %5.1f%%  %@ / %@  %@/s", label, fraction * 100,
                          Formatting.bytes(Int(done)), Formatting.bytes(Int(total)), Formatting.bytes(Int(rate)))
        if isTerminal {
            guard Date().timeIntervalSince(lastDraw) > 0.1 || done == total else { return }
            lastDraw = Date()
            StandardError.write("\r\u{1B}[K" + text + (done == total ? "\n" : ""))
        } else {
            let decile = Int(fraction * 10)
            guard decile != lastDecile else { return }
            lastDecile = decile
            StandardError.write(text + "\n")
        }
    }
}
