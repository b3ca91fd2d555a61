import Foundation
import Imaging

/// Draws training curves: white background, axes with numeric ticks, one coloured polyline per
/// series and a legend. Non-finite values (and values <= 0 on a log scale) break the line.
public enum LossPlot {
    public typealias Series = (name: String, points: [(step: Int, value: Double)])

    /// matplotlib's tab10, so the colours read as the usual ones.
    static let palette: [RGBColor] = [
        RGBColor(31, 119, 180), RGBColor(255, 127, 14), RGBColor(44, 160, 44), RGBColor(214, 39, 40), RGBColor(148, 103, 189),
        RGBColor(140, 86, 75), RGBColor(227, 119, 194), RGBColor(127, 127, 127), RGBColor(188, 189, 34), RGBColor(23, 190, 207),
    ]
    static let ink = RGBColor(40, 40, 40)
    static let grid = RGBColor(225, 225, 225)
    static let textScale = 2

    public static func render(series: [Series], width: Int = 800, height: Int = 480, logScaleY: Bool = false) -> RGBImage {
        let width = max(200, min(width, 4096)), height = max(150, min(height, 4096))
        var canvas = Canvas(width: width, height: height, background: RGBColor(255, 255, 255))
        let usable = series.map { entry in
            entry.points.filter { $0.value.isFinite && (!logScaleY || $0.value > 0) }
        }
        let steps = usable.flatMap { $0.map(\.step) }
        let values = usable.flatMap { $0.map { logScaleY ? log10($0.value) : $0.value } }
        let xAxis = Axis.steps(low: steps.min() ?? 0, high: steps.max() ?? 1)
        let yAxis = logScaleY ? Axis.logarithmic(low: values.min() ?? 0, high: values.max() ?? 1)
                              : Axis.linear(low: values.min() ?? 0, high: values.max() ?? 1)

        // Room for the y labels on the left and the x labels and title below.
        let labelWidth = yAxis.ticks.map { Canvas.textWidth($0.label, scale: textScale) }.max() ?? 0
        // The last x label is centred on the right end: leave it half its width.
        let lastLabel = Canvas.textWidth(xAxis.ticks.last?.label ?? "", scale: textScale)
        let plot = (left: labelWidth + 24, top: 20, right: width - max(16, lastLabel / 2 + 6), bottom: height - 60)
        func px(_ step: Double) -> Double {
            Double(plot.left) + (step - xAxis.low) / (xAxis.high - xAxis.low) * Double(plot.right - plot.left)
        }
        func py(_ value: Double) -> Double {
            Double(plot.bottom) - (value - yAxis.low) / (yAxis.high - yAxis.low) * Double(plot.bottom - plot.top)
        }

        let textHeight = Canvas.textHeight(scale: textScale)
        for tick in yAxis.ticks {
            let y = Int(py(tick.value).rounded())
            canvas.fillRect(x: plot.left, y: y, width: plot.right - plot.left, height: 1, color: grid)
            canvas.fillRect(x: plot.left - 6, y: y, width: 6, height: 1, color: ink)
            let labelX = plot.left - 10 - Canvas.textWidth(tick.label, scale: textScale)
            canvas.drawText(tick.label, x: labelX, y: y - textHeight / 2, scale: textScale, color: ink)
        }
        for tick in xAxis.ticks {
            let x = Int(px(tick.value).rounded())
            canvas.fillRect(x: x, y: plot.top, width: 1, height: plot.bottom - plot.top, color: grid)
            canvas.fillRect(x: x, y: plot.bottom, width: 1, height: 6, color: ink)
            canvas.drawText(tick.label, x: x - Canvas.textWidth(tick.label, scale: textScale) / 2, y: plot.bottom + 12,
                            scale: textScale, color: ink)
        }
        canvas.fillRect(x: plot.left, y: plot.top, width: 2, height: plot.bottom - plot.top + 1, color: ink)
        canvas.fillRect(x: plot.left, y: plot.bottom, width: plot.right - plot.left + 1, height: 2, color: ink)
        let title = logScaleY ? "step   (y: log scale)" : "step"
        canvas.drawText(title, x: (plot.left + plot.right - Canvas.textWidth(title, scale: textScale)) / 2,
                        y: height - textHeight - 12, scale: textScale, color: ink)

        for (index, points) in usable.enumerated() {
            let colour = palette[index % palette.count]
            var previous: (x: Double, y: Double)?
            for point in points.sorted(by: { $0.step < $1.step }) {
                let here = (x: px(Double(point.step)), y: py(logScaleY ? log10(point.value) : point.value))
                canvas.drawLine(from: previous ?? here, to: here, thickness: 2, color: colour)
                previous = here
            }
        }
        drawLegend(series.map(\.name), on: &canvas, right: plot.right - 10, top: plot.top + 10)
        return canvas.image
    }

    /// Renders and writes a PNG atomically (the trainer's `loss.png`).
    public static func write(series: [Series], to path: String, width: Int = 800, height: Int = 480,
                             logScaleY: Bool = false) throws {
        try PNGEncoder.write(render(series: series, width: width, height: height, logScaleY: logScaleY), to: path)
    }

    private static func drawLegend(_ names: [String], on canvas: inout Canvas, right: Int, top: Int) {
        guard !names.isEmpty else { return }
        let textHeight = Canvas.textHeight(scale: textScale)
        let rowHeight = textHeight + 10
        let sample = 24
        let boxWidth = sample + 8 + (names.map { Canvas.textWidth($0, scale: textScale) }.max() ?? 0) + 20
        let boxHeight = rowHeight * names.count + 10
        let left = right - boxWidth
        canvas.fillRect(x: left, y: top, width: boxWidth, height: boxHeight, color: RGBColor(255, 255, 255))
        for edge in [(left, top, boxWidth, 1), (left, top + boxHeight - 1, boxWidth, 1), (left, top, 1, boxHeight),
                     (left + boxWidth - 1, top, 1, boxHeight)] {
            canvas.fillRect(x: edge.0, y: edge.1, width: edge.2, height: edge.3, color: RGBColor(180, 180, 180))
        }
        for (index, name) in names.enumerated() {
            let y = top + 8 + index * rowHeight
            let middle = Double(y + textHeight / 2)
            canvas.drawLine(from: (Double(left + 10), middle), to: (Double(left + 10 + sample), middle), thickness: 3,
                            color: palette[index % palette.count])
            canvas.drawText(name, x: left + 18 + sample, y: y, scale: textScale, color: ink)
        }
    }

}

/// An axis range with "nice" ticks (1, 2 or 5 times a power of ten) and their labels.
struct Axis {
    struct Tick {
        let value: Double
        let label: String
    }

    let low: Double
    let high: Double
    let ticks: [Tick]

    /// `minimumStep` 1 keeps integer axes (steps) from getting fractional ticks.
    static func linear(low: Double, high: Double, targetTicks: Int = 6, minimumStep: Double = 0) -> Axis {
        var (low, high) = (low, high)
        if high <= low {
            let pad = low == 0 ? 1 : abs(low) * 0.1
            (low, high) = (low - pad, high + pad)
        }
        let step = max(minimumStep, niceStep((high - low) / Double(targetTicks - 1)))
        let first = (low / step).rounded(.down) * step
        let last = (high / step).rounded(.up) * step
        var ticks: [Tick] = []
        var value = first
        while value <= last + step * 0.5 {
            ticks.append(Tick(value: value, label: label(value, step: step)))
            value += step
        }
        return Axis(low: first, high: last, ticks: ticks)
    }

    /// `low`/`high` are log10 of the data; ticks at powers of ten, labelled with the real values.
    static func logarithmic(low: Double, high: Double) -> Axis {
        var first = low.rounded(.down), last = high.rounded(.up)
        if last <= first { (first, last) = (first - 1, last + 1) }
        let decades = Int(last - first)
        let stride = max(1, decades / 6)
        var ticks: [Tick] = []
        var exponent = first
        while exponent <= last {
            let value = pow(10, exponent)
            ticks.append(Tick(value: exponent, label: label(value, step: value)))
            exponent += Double(stride)
        }
        return Axis(low: first, high: last, ticks: ticks)
    }

    static func steps(low: Int, high: Int) -> Axis {
        linear(low: Double(low), high: Double(max(high, low + 1)), minimumStep: 1)
    }

    static func niceStep(_ raw: Double) -> Double {
        guard raw > 0, raw.isFinite else { return 1 }
        let magnitude = pow(10, log10(raw).rounded(.down))
        let fraction = raw / magnitude
        let nice: Double = fraction <= 1 ? 1 : fraction <= 2 ? 2 : fraction <= 5 ? 5 : 10
        return nice * magnitude
    }

    /// Plain decimals with as many places as the step needs; 1e-4 style outside 1e-3..1e5.
    static func label(_ value: Double, step: Double) -> String {
        if value == 0 { return "0" }
        let magnitude = abs(value)
        if magnitude >= 1e5 || magnitude < 1e-3 {
            let exponent = log10(magnitude).rounded(.down)
            var mantissa = String(format: "%.1f", value / pow(10, exponent))
            if mantissa.hasSuffix(".0") { mantissa.removeLast(2) }
            return "\(mantissa)e\(Int(exponent))"
        }
        let places = step >= 1 ? 0 : min(6, Int((-log10(step)).rounded(.up)))
        return String(format: "%.\(places)f", value)
    }
}
