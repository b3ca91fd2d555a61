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
    /// `normalize_coeffs_8bpc`, computed only for the output indices in `outputs` (so an
    /// extreme aspect ratio cannot make us build taps for millions of discarded pixels).
    struct AxisTaps {
        static let precisionBits = 22  // 32 - 8 - 2: room for negative lobes and overshoot
        let tapsPerOutput: Int
        let outputs: Range<Int>
        // Indexed by output - outputs.lowerBound:
        private(set) var firstInput: [Int]  // first source index read
        private(set) var tapCount: [Int]  // number of source samples read
        private(set) var weights: [Int32]  // tapsPerOutput per output

        /// Bicubic (a = -0.5) with support 2, widened by the downscale factor (antialiasing).
        init(inputSize: Int, outputSize: Int, outputs: Range<Int>) {
            // Pillow takes the input extent as a float box coordinate.
            let scale = Double(Float(inputSize)) / Double(outputSize)
            let filterScale = max(scale, 1.0)
            let support = 2.0 * filterScale
            let inverseFilterScale = 1.0 / filterScale  // Pillow multiplies by the reciprocal
            tapsPerOutput = Int(support.rounded(.up)) * 2 + 1
            self.outputs = outputs
            firstInput = [Int](repeating: 0, count: outputs.count)
            tapCount = [Int](repeating: 0, count: outputs.count)
            weights = [Int32](repeating: 0, count: outputs.count * tapsPerOutput)
            let unit = Double(1 << Self.precisionBits)
            var raw = [Double](repeating: 0, count: tapsPerOutput)
            for (slot, out) in outputs.enumerated() {
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
                    weights[slot * tapsPerOutput + tap] = Int32(w < 0 ? -0.5 + w * unit : 0.5 + w * unit)
                }
                firstInput[slot] = low
                tapCount[slot] = count
            }
        }

        static func bicubic(_ value: Double) -> Double {
            let a = -0.5
            let x = abs(value)
            if x < 1 { return ((a + 2) * x - (a + 3)) * x * x + 1 }
            if x < 2 { return (((x - 5) * x + 8) * x - 4) * a }
            return 0
        }

        /// Source range read by all outputs.
        var inputRange: Range<Int> {
            var lower = Int.max
            var upper = Int.min
            for slot in firstInput.indices {
                lower = min(lower, firstInput[slot])
                upper = max(upper, firstInput[slot] + tapCount[slot])
            }
            return lower <= upper ? lower..<upper : 0..<0
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
        let horizontal = outputWidth != width
            ? AxisTaps(inputSize: width, outputSize: outputWidth, outputs: outColumns) : nil
        let vertical = outputHeight != height
            ? AxisTaps(inputSize: height, outputSize: outputHeight, outputs: outRows) : nil

        return source.withUnsafeBufferPointer { buffer -> [UInt8] in
            guard let base = buffer.baseAddress else { return [] }
            switch (horizontal, vertical) {
            case (nil, nil):
                return crop(base, rowBytes: rowBytes, channels: channels, window: window)
            case let (h?, nil):
                return horizontalPass(base + outRows.lowerBound * rowBytes, rowBytes: rowBytes, rows: window.height,
                                      channels: channels, columnOrigin: 0, taps: h)
            case let (nil, v?):
                return verticalPass(base + outColumns.lowerBound * channels, rowBytes: rowBytes, rowOrigin: 0,
                                    rowLength: window.width * channels, taps: v)
            case let (h?, v?):
                let verticalFirst = outputHeight < height && height - outputHeight > 2 * (width - outputWidth)
                if verticalFirst {
                    let columns = h.inputRange
                    let temporary = verticalPass(base + columns.lowerBound * channels, rowBytes: rowBytes, rowOrigin: 0,
                                                 rowLength: columns.count * channels, taps: v)
                    return temporary.withUnsafeBufferPointer { temp in
                        guard let temp = temp.baseAddress else { return [] }
                        return horizontalPass(temp, rowBytes: columns.count * channels, rows: window.height,
                                              channels: channels, columnOrigin: columns.lowerBound, taps: h)
                    }
                }
                let rows = v.inputRange
                let temporary = horizontalPass(base + rows.lowerBound * rowBytes, rowBytes: rowBytes, rows: rows.count,
                                               channels: channels, columnOrigin: 0, taps: h)
                return temporary.withUnsafeBufferPointer { temp in
                    guard let temp = temp.baseAddress else { return [] }
                    return verticalPass(temp, rowBytes: window.width * channels, rowOrigin: rows.lowerBound,
                                        rowLength: window.width * channels, taps: v)
                }
            }
        }
    }

    /// Filters along rows. `source` points at the first row to filter, at the pixel whose
    /// column index is `columnOrigin` in the coordinates `taps` was built for.
    private static func horizontalPass(_ source: UnsafePointer<UInt8>, rowBytes: Int, rows: Int, channels: Int,
                                       columnOrigin: Int, taps: AxisTaps) -> [UInt8] {
        let outputs = taps.outputs.count
        let outRowBytes = outputs * channels
        let tapsPerOutput = taps.tapsPerOutput
        let half = 1 << (AxisTaps.precisionBits - 1)
        var result = [UInt8](repeating: 0, count: rows * outRowBytes)
        result.withUnsafeMutableBufferPointer { out in
            taps.weights.withUnsafeBufferPointer { weights in
                taps.firstInput.withUnsafeBufferPointer { firstInput in
                    taps.tapCount.withUnsafeBufferPointer { tapCount in
                        guard let kernels = weights.baseAddress else { return }  // no outputs
                        for row in 0..<rows {
                            let sourceRow = source + row * rowBytes
                            let outRow = row * outRowBytes
                            for column in 0..<outputs {
                                let first = sourceRow + (firstInput[column] - columnOrigin) * channels
                                let count = tapCount[column]
                                let kernel = kernels + column * tapsPerOutput
                                let target = outRow + column * channels
                                // Interleaved RGB(A) gets one pass over the taps for all channels.
                                if channels == 3 {
                                    var s0 = half, s1 = half, s2 = half
                                    for tap in 0..<count {
                                        let w = Int(kernel[tap])
                                        let pixel = first + tap * 3
                                        // Wrapping ops: cannot overflow (8-bit x 22-bit), and
                                        // skipping the overflow checks lets the loop vectorise.
                                        s0 &+= Int(pixel[0]) &* w
                                        s1 &+= Int(pixel[1]) &* w
                                        s2 &+= Int(pixel[2]) &* w
                                    }
                                    out[target] = clip8(s0)
                                    out[target + 1] = clip8(s1)
                                    out[target + 2] = clip8(s2)
                                } else {
                                    for c in 0..<channels {
                                        var sum = half
                                        for tap in 0..<count {
                                            sum &+= Int(first[tap &* channels &+ c]) &* Int(kernel[tap])
                                        }
                                        out[target + c] = clip8(sum)
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        return result
    }

    /// Filters along columns. `source` points at the first byte of the row whose index is
    /// `rowOrigin` in the coordinates `taps` was built for; `rowLength` bytes of each row
    /// are filtered. Whole rows are accumulated tap by tap, which reads memory sequentially.
    private static func verticalPass(_ source: UnsafePointer<UInt8>, rowBytes: Int, rowOrigin: Int, rowLength: Int,
                                     taps: AxisTaps) -> [UInt8] {
        let half = 1 << (AxisTaps.precisionBits - 1)
        var result = [UInt8](repeating: 0, count: taps.outputs.count * rowLength)
        var sums = [Int](repeating: 0, count: rowLength)
        result.withUnsafeMutableBufferPointer { out in
            sums.withUnsafeMutableBufferPointer { sums in
                taps.weights.withUnsafeBufferPointer { weights in
                    for row in 0..<taps.outputs.count {
                        let first = source + (taps.firstInput[row] - rowOrigin) * rowBytes
                        let kernel = row * taps.tapsPerOutput
                        for i in 0..<rowLength { sums[i] = half }
                        for tap in 0..<taps.tapCount[row] {
                            let w = Int(weights[kernel + tap])
                            let line = first + tap * rowBytes
                            // Wrapping ops: no overflow is possible, and the loop vectorises.
                            for i in 0..<rowLength { sums[i] &+= Int(line[i]) &* w }
                        }
                        let outRow = row * rowLength
                        for i in 0..<rowLength { out[outRow + i] = clip8(sums[i]) }
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
        let columns = nearestIndices(inputSize: width, outputSize: outputWidth, window: window.x..<(window.x + window.width))
        let rows = nearestIndices(inputSize: height, outputSize: outputHeight, window: window.y..<(window.y + window.height))
        let rowLength = window.width * channels
        var output = [UInt8](repeating: 0, count: window.height * rowLength)
        source.withUnsafeBufferPointer { src in
            output.withUnsafeMutableBufferPointer { dst in
                for row in 0..<window.height {
                    let srcRow = rows[row] * width * channels
                    for column in 0..<window.width {
                        let srcPixel = srcRow + columns[column] * channels
                        for c in 0..<channels {
                            dst[row * rowLength + column * channels + c] = src[srcPixel + c]
                        }
                    }
                }
            }
        }
        return output
    }

    /// Source indices for the outputs in `window`. The position is accumulated from the
    /// first output (not multiplied) because that is how Pillow rounds.
    static func nearestIndices(inputSize: Int, outputSize: Int, window: Range<Int>) -> [Int] {
        let scale = Double(Float(inputSize)) / Double(outputSize)
        var position = scale * 0.5
        var indices: [Int] = []
        indices.reserveCapacity(window.count)
        for out in 0..<window.upperBound {
            if out >= window.lowerBound { indices.append(min(max(Int(position), 0), inputSize - 1)) }
            position += scale
        }
        return indices
    }
}
