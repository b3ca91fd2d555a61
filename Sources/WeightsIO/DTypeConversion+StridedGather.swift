import Foundation

/// Packs the elements of a possibly strided `TensorRecord` (transposes, slices, zero-stride
/// broadcasts, negative strides) into row-major order, in its own dtype. Views come from torch
/// checkpoints; safetensors needs packed data.
public enum StridedGather {
    /// Checks that every element the view can address lies inside its storage, with overflow-checked
    /// arithmetic. Call once before `gather`.
    public static func validate(_ record: TensorRecord, file: String = "") throws {
        let location = "tensor '\(record.name)'"
        guard record.strides.count == record.shape.count else {
            throw WeightsError(.corrupt, file: file, at: location, "\(record.shape.count) dimensions but \(record.strides.count) strides")
        }
        guard record.shape.allSatisfy({ $0 >= 0 }) else {
            throw WeightsError(.corrupt, file: file, at: location, "negative extent in shape \(record.shape)")
        }
        // Packed size must fit too: `gather` callers allocate it. Zero-element shapes always fit.
        guard let count = TensorShape.elementCount(record.shape), TensorShape.byteCount(record.shape, dtype: record.dtype) != nil else {
            throw WeightsError(.corrupt, file: file, at: location, "element count of shape \(record.shape) overflows")
        }
        if count == 0 { return }
        var lowest = record.storageOffset
        var highest = record.storageOffset
        for (extent, stride) in zip(record.shape, record.strides) {
            let (span, overflow) = (extent - 1).multipliedReportingOverflow(by: stride)
            guard !overflow else { throw WeightsError(.corrupt, file: file, at: location, "stride \(stride) overflows") }
            let (newLow, o1) = lowest.addingReportingOverflow(min(span, 0))
            let (newHigh, o2) = highest.addingReportingOverflow(max(span, 0))
            guard !o1, !o2 else { throw WeightsError(.corrupt, file: file, at: location, "element offsets overflow") }
            lowest = newLow
            highest = newHigh
        }
        let storageElements = record.storage.count / record.dtype.byteSize
        guard lowest >= 0, highest < storageElements else {
            throw WeightsError(.corrupt, file: file, at: location,
                               "view (shape \(record.shape), strides \(record.strides), offset \(record.storageOffset)) reaches elements \(lowest)...\(highest) of a storage holding \(storageElements)")
        }
    }

    /// Copies the row-major elements `elements` of `record` into `destination` (packed, same dtype).
    /// `validate` must have accepted the record.
    public static func gather(_ record: TensorRecord, elements: Range<Int>, into destination: UnsafeMutableRawPointer) {
        guard !elements.isEmpty, let base = record.storage.buffer.baseAddress else { return }
        let size = record.dtype.byteSize
        let rank = record.shape.count
        if rank == 0 || record.isContiguous {
            let start = (record.storageOffset + elements.lowerBound) * size
            destination.copyMemory(from: base + start, byteCount: elements.count * size)
            return
        }
        // Multi-index of the first element, then walk rows of the innermost dimension.
        var index = [Int](repeating: 0, count: rank)
        var remainder = elements.lowerBound
        var offset = record.storageOffset
        for axis in stride(from: rank - 1, through: 0, by: -1) {
            let extent = record.shape[axis]
            index[axis] = remainder % extent
            remainder /= extent
            offset += index[axis] * record.strides[axis]
        }
        let innerExtent = record.shape[rank - 1]
        let innerStride = record.strides[rank - 1]
        // Transposed views (rows strided, columns packed in the source: `w.t()`): walking output rows
        // reads one element per cache line. Instead copy bands of `band` whole rows in blocks of
        // columns, so each source read is a packed run of `band` elements (several cache lines of one
        // page) and the writes stay in a small output window.
        let rowStride = rank >= 2 ? record.strides[rank - 2] : 0
        let band = 256 / size
        let tiled = rank >= 2 && rowStride == 1 && innerStride != 1 && innerExtent > 1
        var output = destination
        var left = elements.count
        while left > 0 {
            if tiled, index[rank - 1] == 0, left >= band * innerExtent, index[rank - 2] + band <= record.shape[rank - 2] {
                copyTile(from: base + offset * size, columnStride: innerStride * size, rows: band, columns: innerExtent,
                         size: size, to: output)
                output += band * innerExtent * size
                left -= band * innerExtent
                if left == 0 { break }
                // Stand on the band's last row; the carry below moves to the next row as usual.
                offset += (band - 1) * rowStride
                index[rank - 2] += band - 1
            } else {
                let run = min(left, innerExtent - index[rank - 1])
                copyRun(from: base + offset * size, stride: innerStride * size, count: run, size: size, to: output)
                output += run * size
                left -= run
                if left == 0 { break }
                // Back to the start of this row.
                offset -= index[rank - 1] * innerStride
                index[rank - 1] = 0
            }
            // Advance to the start of the next row, carrying into outer axes.
            var axis = rank - 2
            while axis >= 0 {
                index[axis] += 1
                offset += record.strides[axis]
                if index[axis] < record.shape[axis] { break }
                offset -= record.shape[axis] * record.strides[axis]
                index[axis] = 0
                axis -= 1
            }
        }
    }

    /// The whole record packed row-major, in its own dtype.
    public static func packedBytes(of record: TensorRecord, file: String = "") throws -> [UInt8] {
        try validate(record, file: file)
        let count = record.elementCount
        var bytes = [UInt8](repeating: 0, count: count * record.dtype.byteSize)
        bytes.withUnsafeMutableBytes { raw in
            if let base = raw.baseAddress { gather(record, elements: 0..<count, into: base) }
        }
        return bytes
    }

    @inline(__always)
    private static func copyRun(from source: UnsafeRawPointer, stride: Int, count: Int, size: Int,
                                to destination: UnsafeMutableRawPointer) {
        if stride == size {
            destination.copyMemory(from: source, byteCount: count * size)
            return
        }
        switch size {
        case 1: copyElements(source, stride, count, UInt8.self, destination)
        case 2: copyElements(source, stride, count, UInt16.self, destination)
        case 4: copyElements(source, stride, count, UInt32.self, destination)
        default: copyElements(source, stride, count, UInt64.self, destination)
        }
    }

    /// Copies `rows` × `columns` elements where the source holds each column packed (`rows` elements)
    /// and columns `columnStride` bytes apart, into row-major output.
    @inline(__always)
    private static func copyTile(from source: UnsafeRawPointer, columnStride: Int, rows: Int, columns: Int, size: Int,
                                 to destination: UnsafeMutableRawPointer) {
        switch size {
        case 1: copyTile(source, columnStride, rows, columns, UInt8.self, destination)
        case 2: copyTile(source, columnStride, rows, columns, UInt16.self, destination)
        case 4: copyTile(source, columnStride, rows, columns, UInt32.self, destination)
        default: copyTile(source, columnStride, rows, columns, UInt64.self, destination)
        }
    }

    @inline(__always)
    private static func copyTile<T>(_ source: UnsafeRawPointer, _ columnStride: Int, _ rows: Int, _ columns: Int, _: T.Type,
                                    _ destination: UnsafeMutableRawPointer) {
        let size = MemoryLayout<T>.size
        let rowBytes = columns * size
        // Blocks of `block` columns: the block's source runs and its output rows (one cache line each
        // for 4-byte elements) both stay in L1 while it is transposed.
        let block = 16
        var first = 0
        while first < columns {
            let width = min(block, columns - first)
            for row in 0..<rows {
                let to = destination + row * rowBytes + first * size
                let from = source + first * columnStride + row * size
                for column in 0..<width {
                    to.storeBytes(of: from.loadUnaligned(fromByteOffset: column * columnStride, as: T.self),
                                  toByteOffset: column * size, as: T.self)
                }
            }
            first += width
        }
    }

    @inline(__always)
    private static func copyElements<T>(_ source: UnsafeRawPointer, _ stride: Int, _ count: Int, _: T.Type,
                                        _ destination: UnsafeMutableRawPointer) {
        let size = MemoryLayout<T>.size
        for i in 0..<count {
            let value = source.loadUnaligned(fromByteOffset: i * stride, as: T.self)
            destination.storeBytes(of: value, toByteOffset: i * size, as: T.self)
        }
    }
}
