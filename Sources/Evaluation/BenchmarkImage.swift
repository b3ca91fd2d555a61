import Imaging

/// Decodes a benchmark image as the benchmark's own code opens it: as is for CLIP's preprocessing
/// (which then resizes palette and alpha images as Pillow does), or, with a crop box, as ARO does:
/// `Image.open(path).convert("RGB").crop(box)`: alpha dropped, the box cut out, black outside the image.
enum BenchmarkImage {
    static func load(_ reference: ImageReference) throws -> RGBImage {
        let image = try ImageDecoder.decode(path: reference.path)
        guard let box = reference.crop else { return image }
        return try crop(image, to: box)
    }

    static func crop(_ image: RGBImage, to box: CropBox) throws -> RGBImage {
        var pixels = [UInt8](repeating: 0, count: box.width * box.height * 3)
        // The rows and columns of the box that fall inside the image.
        let left = max(box.left, 0), right = min(box.right, image.width)
        let top = max(box.top, 0), bottom = min(box.bottom, image.height)
        if left < right, top < bottom {
            let rowBytes = (right - left) * 3
            image.pixels.withUnsafeBufferPointer { source in
                pixels.withUnsafeMutableBufferPointer { out in
                    for y in top..<bottom {
                        let from = (y * image.width + left) * 3
                        let to = ((y - box.top) * box.width + (left - box.left)) * 3
                        for offset in 0..<rowBytes { out[to + offset] = source[from + offset] }
                    }
                }
            }
        }
        return try RGBImage(width: box.width, height: box.height, pixels: pixels)
    }
}
