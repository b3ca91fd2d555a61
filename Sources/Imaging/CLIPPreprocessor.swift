import Foundation

/// CLIP image preprocessing, matching open_clip's inference `image_transform` on a PIL image:
/// torchvision `Resize(R, BICUBIC)` (shorter side to R, Pillow's antialiased bicubic),
/// `CenterCrop(R)`, convert to RGB, `ToTensor` (/255) and `Normalize(mean, std)`.
///
/// Output is Float32 CHW `[3, R, R]` as a flat array; the caller wraps it in a tensor.
public struct CLIPPreprocessor: Sendable {
    public static let openAIMean: [Float] = [0.48145466, 0.4578275, 0.40821073]
    public static let openAIStd: [Float] = [0.26862954, 0.26130258, 0.27577711]

    public let resolution: Int
    public let mean: [Float]
    public let std: [Float]

    public init(resolution: Int = 224, mean: [Float] = openAIMean, std: [Float] = openAIStd) throws {
        guard resolution > 0 else {
            throw ImagingError.invalidParameter(detail: "resolution must be positive, got \(resolution)")
        }
        guard mean.count == 3, std.count == 3 else {
            throw ImagingError.invalidParameter(
                detail: "mean and std need 3 values (R, G, B), got \(mean.count) and \(std.count)")
        }
        guard std.allSatisfy({ $0 > 0 && $0.isFinite }), mean.allSatisfy(\.isFinite) else {
            throw ImagingError.invalidParameter(detail: "std must be positive and finite, mean finite: \(mean), \(std)")
        }
        self.resolution = resolution
        self.mean = mean
        self.std = std
    }

    /// Shape of one `process` result.
    public var outputShape: [Int] { [3, resolution, resolution] }

    /// torchvision's `_compute_resized_output_size` for an int size: the shorter side becomes
    /// R and the longer `int(R * long / short)` (Python float division, then truncation).
    public func resizedSize(width: Int, height: Int) -> (width: Int, height: Int) {
        let short = min(width, height)
        let long = max(width, height)
        let newLong = Int(Double(resolution * long) / Double(short))
        return width <= height ? (resolution, newLong) : (newLong, resolution)
    }

    /// Resize and centre-crop to R x R, still 8-bit RGB: the exact PIL image open_clip would
    /// feed to `ToTensor`.
    public func resizeAndCrop(_ image: RGBImage) -> RGBImage {
        let (outWidth, outHeight) = resizedSize(width: image.width, height: image.height)
        // torchvision CenterCrop: int(round((size - R) / 2.0)), with Python's half-to-even.
        let window = PillowResampler.Window(
            x: Int((Double(outWidth - resolution) / 2).rounded(.toNearestOrEven)),
            y: Int((Double(outHeight - resolution) / 2).rounded(.toNearestOrEven)),
            width: resolution, height: resolution)
        let pixels: [UInt8]
        if outWidth == image.width && outHeight == image.height {
            // torchvision returns the image untouched (no premultiply round trip either).
            pixels = image.pixels.withUnsafeBufferPointer { source in
                guard let base = source.baseAddress else { return [] }
                return PillowResampler.crop(base, rowBytes: image.width * 3, channels: 3, window: window)
            }
        } else if image.isIndexed {
            pixels = PillowResampler.nearest(image.pixels, width: image.width, height: image.height, channels: 3,
                                             outputWidth: outWidth, outputHeight: outHeight, window: window)
        } else if let alpha = image.alpha {
            pixels = resizePremultiplied(image, alpha: alpha, outWidth: outWidth, outHeight: outHeight, window: window)
        } else {
            pixels = PillowResampler.bicubic(image.pixels, width: image.width, height: image.height, channels: 3,
                                             outputWidth: outWidth, outputHeight: outHeight, window: window)
        }
        return RGBImage(validatedWidth: resolution, height: resolution, pixels: pixels, alpha: nil, isIndexed: false)
    }

    /// Pillow resizes RGBA as premultiplied "RGBa" and converts back before `.convert("RGB")`
    /// drops alpha, so colours under transparent pixels do not bleed into opaque ones.
    private func resizePremultiplied(_ image: RGBImage, alpha: [UInt8], outWidth: Int, outHeight: Int,
                                     window: PillowResampler.Window) -> [UInt8] {
        let count = image.width * image.height
        var premultiplied = [UInt8](repeating: 0, count: count * 4)
        image.pixels.withUnsafeBufferPointer { rgb in
            alpha.withUnsafeBufferPointer { a in
                premultiplied.withUnsafeMutableBufferPointer { out in
                    for i in 0..<count {
                        let alphaValue = Int(a[i])
                        for c in 0..<3 {
                            // Pillow's MULDIV255: round(v * a / 255) without a division.
                            let t = Int(rgb[i * 3 + c]) * alphaValue + 128
                            out[i * 4 + c] = UInt8(truncatingIfNeeded: ((t >> 8) + t) >> 8)
                        }
                        out[i * 4 + 3] = a[i]
                    }
                }
            }
        }
        let resized = PillowResampler.bicubic(premultiplied, width: image.width, height: image.height, channels: 4,
                                              outputWidth: outWidth, outputHeight: outHeight, window: window)
        let outCount = window.width * window.height
        var rgb = [UInt8](repeating: 0, count: outCount * 3)
        resized.withUnsafeBufferPointer { src in
            rgb.withUnsafeMutableBufferPointer { out in
                for i in 0..<outCount {
                    let alphaValue = Int(src[i * 4 + 3])
                    for c in 0..<3 {
                        let v = Int(src[i * 4 + c])
                        // Pillow's unpremultiply: integer 255 * v / a, clipped; a of 0 or 255 keeps v.
                        let straight = (alphaValue == 0 || alphaValue == 255) ? v : min(255, 255 * v / alphaValue)
                        out[i * 3 + c] = UInt8(truncatingIfNeeded: straight)
                    }
                }
            }
        }
        return rgb
    }

    /// The full transform: `[3, R, R]` normalised Float32 values, channel-major.
    public func process(_ image: RGBImage) -> [Float] {
        var values = [Float](repeating: 0, count: 3 * resolution * resolution)
        values.withUnsafeMutableBufferPointer { out in
            write(image, into: UnsafeMutableBufferPointer(rebasing: out[...]))
        }
        return values
    }

    public func process(path: String) throws -> [Float] {
        process(try ImageDecoder.decode(path: path))
    }

    /// Stacks several images into `[N, 3, R, R]`.
    public func processBatch(_ images: [RGBImage]) -> (values: [Float], shape: [Int]) {
        let plane = 3 * resolution * resolution
        var values = [Float](repeating: 0, count: images.count * plane)
        values.withUnsafeMutableBufferPointer { out in
            for (index, image) in images.enumerated() {
                write(image, into: UnsafeMutableBufferPointer(rebasing: out[(index * plane)..<((index + 1) * plane)]))
            }
        }
        return (values, [images.count, 3, resolution, resolution])
    }

    /// Decodes and stacks files; the first bad file stops the batch with its error.
    public func processBatch(paths: [String]) throws -> (values: [Float], shape: [Int]) {
        processBatch(try paths.map { try ImageDecoder.decode(path: $0) })
    }

    private func write(_ image: RGBImage, into out: UnsafeMutableBufferPointer<Float>) {
        let cropped = resizeAndCrop(image)
        let planeSize = resolution * resolution
        // Same float32 operations as torchvision: x / 255, then (x - mean) / std.
        cropped.pixels.withUnsafeBufferPointer { pixels in
            for c in 0..<3 {
                let m = mean[c]
                let s = std[c]
                for i in 0..<planeSize {
                    out[c * planeSize + i] = (Float(pixels[i * 3 + c]) / 255 - m) / s
                }
            }
        }
    }
}
