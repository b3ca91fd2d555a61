/// Pillow's resampling (`ImagingResample` in Resample.c, and the nearest-neighbour affine
/// scale used for palette images), reproduced integer for integer so that results match
/// `PIL.Image.resize` byte for byte.
///
/// Each output pixel depends only on its own filter taps, so we evaluate just the window
/// that will survive a later crop; the values are the same as resizing fully then cropping.
enum PillowResampler {
    /// A crop window in the coordinates of the resized image.
    struct Window {
        var x: Int
        var y: Int
        var width: Int
        var height: Int
    }

    /// Fixed-point filter taps for one axis: Pillow's `precompute_coeffs` followed by
    /// `normalize_coeffs_8bpc`.
    struct AxisTaps {
        static let precisionBits = 22  // 32 - 8 - 2: room for negative lobes and overshoot
        let tapsPerOutput: Int
        var firstInput: [Int]  // first source index read by each output index
        var tapCount: [Int]  // number of source samples read by each output index
        var weights: [Int32]  // outputSize * tapsPerOutput

        /// Bicubic (a = -0.5) with support 2, widened by the downscale factor (antialiasing).
        init(inputSize: Int, outputSize: Int) {
            let scale = Double(inputSize) / Double(outputSize)
            let filterScale = max(scale, 1.0)
            let support = 2.0 * filterScale
            let inverseFilterScale = 1.0 / filterScale  // Pillow multiplies by the reciprocal
            tapsPerOutput = Int(support.rounded(.up)) * 2 + 1
            firstInput = [Int](repeating: 0, count: outputSize)
            tapCount = [Int](repeating: 0, count: outputSize)
            weights = [Int32](repeating: 0, count: outputSize * tapsPerOutput)
            let unit = Double(1 << Self.precisionBits)
            var raw = [Double](repeating: 0, count: tapsPerOutput)
            for out in 0..<outputSize {
                let center = (Double(out) + 0.5) * scale
                // Int(Double) truncates toward zero, as C's (int) cast does.
                let low = max(Int(center - support + 0.5), 0)
                let high = min(Int(center + support + 0.5), inputSize)
                let count = high - low
                var total = 0.0
                for tap in 0..<count {
                    let w = Self.bicubic((Double(tap + low) - center + 0.5) * inverseFilterScale)
                    raw[tap] = w
                    total += w
                }
                for tap in 0..<count {
                    let w = total != 0 ? raw[tap] / total : raw[tap]
                    weights[out * tapsPerOutput + tap] = Int32(w < 0 ? -0.5 + w * unit : 0.5 + w * unit)
                }
                firstInput[out] = low
                tapCount[out] = count
            }
        }

        static func bicubic(_ value: Double) -> Double {
            let a = -0.5
            let x = abs(value)
            if x < 1 { return ((a + 2) * x - (a + 3)) * x * x + 1 }
            if x < 2 { return (((x - 5) * x + 8) * x - 4) * a }
            return 0
        }

        /// Source range read by the outputs in `outputs`.
        func inputRange(for outputs: Range<Int>) -> Range<Int> {
            var lower = Int.max
            var upper = Int.min
            for out in outputs {
                lower = min(lower, firstInput[out])
                upper = max(upper, firstInput[out] + tapCount[out])
            }
            return lower..<upper
        }
    }

    @inline(__always)
    static func clip8(_ accumulator: Int) -> UInt8 {
        let value = accumulator >> AxisTaps.precisionBits
        return value <= 0 ? 0 : (value >= 255 ? 255 : UInt8(truncatingIfNeeded: value))
    }

    /// Separable bicubic resize of an interleaved `channels`-channel image to
    /// `outputWidth` x `outputHeight`, returning only `window`. Results are rounded to 8 bits
    /// between the passes, so the pass order matters; Pillow 13 runs the vertical pass first
    /// when the height shrinks by more than twice as many pixels as the width (an exact
    /// integer rule, checked against Pillow on random sizes), otherwise horizontal first.
    static func bicubic(_ source: [UInt8], width: Int, height: Int, channels: Int,
                        outputWidth: Int, outputHeight: Int, window: Window) -> [UInt8] {
        let outColumns = window.x..<(window.x + window.width)
        let outRows = window.y..<(window.y + window.height)
        let rowBytes = width * channels
        let horizontal = outputWidth != width ? AxisTaps(inputSize: width, outputSize: outputWidth) : nil
        let vertical = outputHeight != height ? AxisTaps(inputSize: height, outputSize: outputHeight) : nil

        return source.withUnsafeBufferPointer { buffer -> [UInt8] in
            guard let base = buffer.baseAddress else { return [] }
            switch (horizontal, vertical) {
            case (nil, nil):
                return crop(base, rowBytes: rowBytes, channels: channels, window: window)
            case let (h?, nil):
                return horizontalPass(base + outRows.lowerBound * rowBytes, rowBytes: rowBytes, rows: window.height,
                                      channels: channels, columnOrigin: 0, taps: h, outputs: outColumns)
            case let (nil, v?):
                return verticalPass(base + outColumns.lowerBound * channels, rowBytes: rowBytes, rowOrigin: 0,
                                    rowLength: window.width * channels, taps: v, outputs: outRows)
            case let (h?, v?):
                let verticalFirst = outputHeight < height && height - outputHeight > 2 * (width - outputWidth)
                if verticalFirst {
                    let columns = h.inputRange(for: outColumns)
                    let temporary = verticalPass(base + columns.lowerBound * channels, rowBytes: rowBytes, rowOrigin: 0,
                                                 rowLength: columns.count * channels, taps: v, outputs: outRows)
                    return temporary.withUnsafeBufferPointer { temp in
                        guard let temp = temp.baseAddress else { return [] }
                        return horizontalPass(temp, rowBytes: columns.count * channels, rows: window.height,
                                       channels: channels, columnOrigin: columns.lowerBound, taps: h, outputs: outColumns)
                    }
                }
                let rows = v.inputRange(for: outRows)
                let temporary = horizontalPass(base + rows.lowerBound * rowBytes, rowBytes: rowBytes, rows: rows.count,
                                               channels: channels, columnOrigin: 0, taps: h, outputs: outColumns)
                return temporary.withUnsafeBufferPointer { temp in
                    guard let temp = temp.baseAddress else { return [] }
                    return verticalPass(temp, rowBytes: window.width * channels, rowOrigin: rows.lowerBound,
                                 rowLength: window.width * channels, taps: v, outputs: outRows)
                }
            }
        }
    }

    /// Filters along rows. `source` points at the first row to filter, at the pixel whose
    /// column index is `columnOrigin` in the coordinates `taps` was built for.
    private static func horizontalPass(_ source: UnsafePointer<UInt8>, rowBytes: Int, rows: Int, channels: Int,
                                       columnOrigin: Int, taps: AxisTaps, outputs: Range<Int>) -> [UInt8] {
        let outRowBytes = outputs.count * channels
        var result = [UInt8](repeating: 0, count: rows * outRowBytes)
        result.withUnsafeMutableBufferPointer { out in
            taps.weights.withUnsafeBufferPointer { weights in
                for row in 0..<rows {
                    let sourceRow = source + row * rowBytes
                    for (column, output) in outputs.enumerated() {
                        let first = sourceRow + (taps.firstInput[output] - columnOrigin) * channels
                        let count = taps.tapCount[output]
                        let kernel = output * taps.tapsPerOutput
                        for c in 0..<channels {
                            var sum = 1 << (AxisTaps.precisionBits - 1)
                            for tap in 0..<count {
                                sum += Int(first[tap * channels + c]) * Int(weights[kernel + tap])
                            }
                            out[row * outRowBytes + column * channels + c] = clip8(sum)
                        }
                    }
                }
            }
        }
        return result
    }

    /// Filters along columns. `source` points at the first byte of the row whose index is
    /// `rowOrigin` in the coordinates `taps` was built for; `rowLength` bytes of each row
    /// are filtered.
    private static func verticalPass(_ source: UnsafePointer<UInt8>, rowBytes: Int, rowOrigin: Int, rowLength: Int,
                                     taps: AxisTaps, outputs: Range<Int>) -> [UInt8] {
        var result = [UInt8](repeating: 0, count: outputs.count * rowLength)
        result.withUnsafeMutableBufferPointer { out in
            taps.weights.withUnsafeBufferPointer { weights in
                for (row, output) in outputs.enumerated() {
                    let first = source + (taps.firstInput[output] - rowOrigin) * rowBytes
                    let count = taps.tapCount[output]
                    let kernel = output * taps.tapsPerOutput
                    for i in 0..<rowLength {
                        var sum = 1 << (AxisTaps.precisionBits - 1)
                        for tap in 0..<count {
                            sum += Int(first[tap * rowBytes + i]) * Int(weights[kernel + tap])
                        }
                        out[row * rowLength + i] = clip8(sum)
                    }
                }
            }
        }
        return result
    }

    /// Copies `window` out of an image (no resampling).
    static func crop(_ source: UnsafePointer<UInt8>, rowBytes: Int, channels: Int, window: Window) -> [UInt8] {
        let outRowBytes = window.width * channels
        var result = [UInt8](repeating: 0, count: window.height * outRowBytes)
        result.withUnsafeMutableBufferPointer { out in
            for row in 0..<window.height {
                let from = source + (window.y + row) * rowBytes + window.x * channels
                for i in 0..<outRowBytes { out[row * outRowBytes + i] = from[i] }
            }
        }
        return result
    }

    /// Pillow's nearest-neighbour scale (used for "P" and "1" images whatever filter is
    /// asked for). Source coordinates are accumulated in steps of `scale` from `scale / 2`,
    /// exactly as Pillow's affine scaler does, so rounding agrees at the boundaries.
    static func nearest(_ source: [UInt8], width: Int, height: Int, channels: Int,
                        outputWidth: Int, outputHeight: Int, window: Window) -> [UInt8] {
        let columns = nearestIndices(inputSize: width, outputSize: outputWidth)
        let rows = nearestIndices(inputSize: height, outputSize: outputHeight)
        let rowLength = window.width * channels
        var output = [UInt8](repeating: 0, count: window.height * rowLength)
        source.withUnsafeBufferPointer { src in
            output.withUnsafeMutableBufferPointer { dst in
                for row in 0..<window.height {
                    let srcRow = rows[window.y + row] * width * channels
                    for column in 0..<window.width {
                        let srcPixel = srcRow + columns[window.x + column] * channels
                        for c in 0..<channels {
                            dst[row * rowLength + column * channels + c] = src[srcPixel + c]
                        }
                    }
                }
            }
        }
        return output
    }

    static func nearestIndices(inputSize: Int, outputSize: Int) -> [Int] {
        let scale = Double(inputSize) / Double(outputSize)
        var position = scale * 0.5
        var indices = [Int](repeating: 0, count: outputSize)
        for out in 0..<outputSize {
            indices[out] = min(max(Int(position), 0), inputSize - 1)
            position += scale
        }
        return indices
    }
}
