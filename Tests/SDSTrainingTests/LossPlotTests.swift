import Foundation
import Imaging
import XCTest

@testable import SDSTraining

final class LossPlotTests: XCTestCase {
    private func curve(_ scale: Double, steps: Int) -> [(step: Int, value: Double)] {
        (0..<steps).map { step -> (step: Int, value: Double) in
            let decay: Double = scale * 2.5 / (1 + Double(step) / 8)
            let wiggle: Double = 0.05 * scale * Double(step % 3)
            return (step * 10, decay + wiggle)
        }
    }

    func testPlotHasAxesLinesAndLegend() throws {
        let image = LossPlot.render(series: [("loss", curve(1, steps: 120)), ("sds", curve(0.4, steps: 120))])
        XCTAssertEqual([image.width, image.height], [800, 480])
        let colours = Set(stride(from: 0, to: image.pixels.count, by: 3).map {
            RGBColor(image.pixels[$0], image.pixels[$0 + 1], image.pixels[$0 + 2])
        })
        XCTAssertTrue(colours.contains(RGBColor(255, 255, 255)))
        XCTAssertTrue(colours.contains(LossPlot.palette[0]), "first series drawn")
        XCTAssertTrue(colours.contains(LossPlot.palette[1]), "second series drawn")
        XCTAssertTrue(colours.contains(LossPlot.ink), "axes and labels")
        // Written as the trainer does, for a person to look at.
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("sdsclip-loss-plot-test.png").path
        try PNGEncoder.write(image, to: path)
        try LossPlot.write(series: [("loss", curve(1, steps: 300)), ("lr x 1000", curve(0.001, steps: 300))],
                           to: path.replacingOccurrences(of: ".png", with: "-log.png"), logScaleY: true)
        XCTAssertEqual(try ImageDecoder.decode(path: path).pixels, image.pixels)
        print("loss plots: \(path)")
    }

    func testDegenerateSeriesDoNotCrash() {
        let cases: [[LossPlot.Series]] = [
            [], [("empty", [])], [("one", [(step: 5, value: 1.5)])], [("flat", [(step: 0, value: 2), (step: 1, value: 2)])],
            [("nan", [(step: 0, value: .nan), (step: 1, value: .infinity), (step: 2, value: -1)])],
            [("tiny", [(step: 0, value: 1e-9), (step: 1_000_000, value: 3e-9)])],
        ]
        for series in cases {
            for log in [false, true] {
                let image = LossPlot.render(series: series, width: 300, height: 200, logScaleY: log)
                XCTAssertEqual([image.width, image.height], [300, 200])
            }
        }
        XCTAssertEqual(LossPlot.render(series: [], width: -5, height: 1 << 40).width, 200)
    }

    func testTickLabels() {
        XCTAssertEqual(Axis.label(0.25, step: 0.05), "0.25")
        XCTAssertEqual(Axis.label(2, step: 0.5), "2.0")
        XCTAssertEqual(Axis.label(1500, step: 500), "1500")
        XCTAssertEqual(Axis.label(0.0001, step: 0.0001), "1e-4")
        XCTAssertEqual(Axis.label(250_000, step: 50_000), "2.5e5")
        XCTAssertEqual(Axis.niceStep(0.37), 0.5)
        XCTAssertEqual(Axis.steps(low: 0, high: 3).ticks.map(\.value), [0, 1, 2, 3])
    }
}
