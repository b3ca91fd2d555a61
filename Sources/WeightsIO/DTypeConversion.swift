import Foundation

// Element conversions between stored dtypes and Float32, bit-exact with torch's `.float()` and
// `.half()` / `.bfloat16()` on CPU. Sources may be unaligned (an unpadded safetensors header
// shifts every tensor), so buffers are read with `loadUnaligned`; loops are branch-light so the
// compiler can vectorise them.

public enum DTypeConversion {
    // MARK: Scalars

    /// IEEE binary16 bits → Float32, exact. Signalling NaNs come out quiet, as the x86 F16C
    /// instruction torch uses does. Written with selects instead of branches so loops vectorise.
    @inline(__always)
    public static func float16ToFloat(_ half: UInt16) -> Float {
        let sign = UInt32(half & 0x8000) << 16
        let exponentBits = half & 0x7C00
        let shifted = UInt32(half & 0x7FFF) << 13
        let normal = shifted &+ 0x3800_0000                                  // rebias 15 → 127
        // Inf/NaN: exponent all ones; NaN gets the quiet bit.
        let special = (shifted &+ 0x7000_0000) | ((half & 0x3FF) != 0 ? 0x0040_0000 : 0)
        // Zero/subnormal: (1 + m/1024)·2^-14 − 2^-14 = m·2^-24, exact in Float32.
        let subnormal = (Float(bitPattern: shifted &+ 0x3880_0000) - 0x1p-14).bitPattern
        let magnitude = exponentBits == 0x7C00 ? special : (exponentBits == 0 ? subnormal : normal)
        return Float(bitPattern: sign | magnitude)
    }

    /// bfloat16 bits → Float32: the top half of a Float32, exact.
    @inline(__always)
    public static func bfloat16ToFloat(_ bits: UInt16) -> Float {
        Float(bitPattern: UInt32(bits) << 16)
    }

    /// Float32 → binary16 bits, round to nearest even; overflow gives ±inf. NaN keeps its sign and
    /// top 10 payload bits and is made quiet, as the x86 F16C instruction torch uses does.
    @inline(__always)
    public static func floatToFloat16(_ value: Float) -> UInt16 {
        let bits = value.bitPattern
        let sign = UInt16((bits >> 16) & 0x8000)
        let magnitude = bits & 0x7FFF_FFFF
        if magnitude > 0x7F80_0000 {                               // NaN
            return sign | 0x7E00 | UInt16(truncatingIfNeeded: (magnitude >> 13) & 0x3FF)
        }
        if magnitude >= 0x4780_0000 {                              // ≥ 65536: past the largest rounding-to-finite value
            return sign | 0x7C00
        }
        if magnitude < 0x3880_0000 {                               // below 2^-14: subnormal half or zero
            // Adding 0.5 makes the FPU round the mantissa at the subnormal-half position (RNE).
            let shifted = Float(bitPattern: magnitude) + 0.5
            return sign | UInt16(shifted.bitPattern - Float(0.5).bitPattern)
        }
        // Normal: rebias the exponent, then round the 13 dropped bits to nearest even.
        let oddBit = (magnitude >> 13) & 1
        let rounded = magnitude &+ 0xC800_0FFF &+ oddBit          // -(112 << 23) + 0xFFF + odd
        return sign | UInt16(truncatingIfNeeded: rounded >> 13)
    }

    /// Float32 → bfloat16 bits, round to nearest even. NaN keeps its sign and top payload bits and
    /// is made quiet (torch itself gives 0xFFFF on its vector path and 0x7FC0 on its scalar path).
    @inline(__always)
    public static func floatToBFloat16(_ value: Float) -> UInt16 {
        let bits = value.bitPattern
        if value.isNaN { return UInt16(truncatingIfNeeded: bits >> 16) | 0x0040 }
        let rounding = 0x7FFF &+ ((bits >> 16) & 1)
        return UInt16(truncatingIfNeeded: (bits &+ rounding) >> 16)
    }

    /// float8_e4m3fn → Float32: bias 7, no infinities, 0x7F/0xFF are NaN.
    public static func float8E4M3ToFloat(_ byte: UInt8) -> Float { f8e4m3Table[Int(byte)] }

    /// float8_e5m2 → Float32: the top byte of a binary16.
    public static func float8E5M2ToFloat(_ byte: UInt8) -> Float { float16ToFloat(UInt16(byte) << 8) }

    private static let f8e4m3Table: [Float] = (0..<256).map { code in
        let sign: Float = code & 0x80 != 0 ? -1 : 1
        let exponent = (code >> 3) & 0xF
        let mantissa = code & 0x7
        if exponent == 0xF && mantissa == 0x7 { return sign * Float.nan }
        if exponent == 0 { return sign * Float(mantissa) * 0x1p-9 }
        return sign * (1 + Float(mantissa) / 8) * Float(sign: .plus, exponent: exponent - 7, significand: 1)
    }

    private static let f8e5m2Table: [Float] = (0..<256).map { float16ToFloat(UInt16($0) << 8) }

    // MARK: Buffers

    /// True for the dtypes `toFloat32` reads.
    public static func convertsToFloat32(_ dtype: DType) -> Bool { dtype != .c64 }

    /// True for the dtypes `fromFloat32` writes.
    public static func isFloat32Target(_ dtype: DType) -> Bool { [.f32, .f16, .bf16, .f64].contains(dtype) }

    /// Converts `destination.count` elements of `dtype` read from `source` (any alignment) to Float32.
    /// Integers convert like torch's `.float()` (round to nearest); BOOL gives 0 or 1.
    public static func toFloat32(_ source: UnsafeRawBufferPointer, dtype: DType,
                                 into destination: UnsafeMutableBufferPointer<Float>) throws {
        let count = destination.count
        guard source.count >= count * dtype.byteSize else {
            throw WeightsError(.corrupt, file: "", "conversion source holds \(source.count) bytes, \(count) \(dtype.rawValue) elements need \(count * dtype.byteSize)")
        }
        guard count > 0, let src = source.baseAddress, let dst = destination.baseAddress else { return }
        switch dtype {
        case .f32:
            UnsafeMutableRawPointer(dst).copyMemory(from: src, byteCount: count * 4)
        case .f16:
            for i in 0..<count { dst[i] = float16ToFloat(src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) }
        case .bf16:
            for i in 0..<count {
                dst[i] = Float(bitPattern: UInt32(src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) << 16)
            }
        case .f8e4m3:
            f8e4m3Table.withUnsafeBufferPointer { table in
                let bytes = src.assumingMemoryBound(to: UInt8.self)
                for i in 0..<count { dst[i] = table[Int(bytes[i])] }
            }
        case .f8e5m2:
            f8e5m2Table.withUnsafeBufferPointer { table in
                let bytes = src.assumingMemoryBound(to: UInt8.self)
                for i in 0..<count { dst[i] = table[Int(bytes[i])] }
            }
        case .f64: convert(src, count, Double.self, dst) { Float($0) }
        case .bool: convert(src, count, UInt8.self, dst) { $0 != 0 ? 1 : 0 }
        case .u8: convert(src, count, UInt8.self, dst) { Float($0) }
        case .i8: convert(src, count, Int8.self, dst) { Float($0) }
        case .u16: convert(src, count, UInt16.self, dst) { Float($0) }
        case .i16: convert(src, count, Int16.self, dst) { Float($0) }
        case .u32: convert(src, count, UInt32.self, dst) { Float($0) }
        case .i32: convert(src, count, Int32.self, dst) { Float($0) }
        case .u64: convert(src, count, UInt64.self, dst) { Float($0) }
        case .i64: convert(src, count, Int64.self, dst) { Float($0) }
        case .c64:
            throw WeightsError(.unsupported, file: "", "complex64 has no Float32 conversion")
        }
    }

    /// Converts Float32 values into `dtype` elements written to `destination` (any alignment).
    /// F16 and BF16 round to nearest even; F64 is exact.
    public static func fromFloat32(_ source: UnsafeBufferPointer<Float>, to dtype: DType,
                                   into destination: UnsafeMutableRawBufferPointer) throws {
        let count = source.count
        guard isFloat32Target(dtype) else {
            throw WeightsError(.unsupported, file: "", "cannot cast floating-point values to \(dtype.rawValue)")
        }
        guard destination.count >= count * dtype.byteSize else {
            throw WeightsError(.corrupt, file: "", "conversion destination holds \(destination.count) bytes, \(count) \(dtype.rawValue) elements need \(count * dtype.byteSize)")
        }
        guard count > 0, let src = source.baseAddress, let dst = destination.baseAddress else { return }
        switch dtype {
        case .f32:
            dst.copyMemory(from: src, byteCount: count * 4)
        case .f16:
            for i in 0..<count { dst.storeBytes(of: floatToFloat16(src[i]), toByteOffset: 2 * i, as: UInt16.self) }
        case .bf16:
            for i in 0..<count { dst.storeBytes(of: floatToBFloat16(src[i]), toByteOffset: 2 * i, as: UInt16.self) }
        default: // .f64
            for i in 0..<count { dst.storeBytes(of: Double(src[i]), toByteOffset: 8 * i, as: Double.self) }
        }
    }

    /// Convenience for small tensors and tests: a record's elements as Float32, in row-major order.
    public static func floats(of record: TensorRecord) throws -> [Float] {
        let count = record.elementCount
        // An empty view's offset is never checked against its storage (torch does not either).
        guard count > 0 else { return [] }
        var output = [Float](repeating: 0, count: count)
        if record.isContiguous {
            let start = record.storageOffset * record.dtype.byteSize
            let bytes = record.storage.buffer
            guard start >= 0, start + record.byteCount <= bytes.count else {
                throw WeightsError(.corrupt, file: "", at: "tensor '\(record.name)'", "storage of \(bytes.count) bytes is too small for the view")
            }
            try output.withUnsafeMutableBufferPointer { out in
                try toFloat32(UnsafeRawBufferPointer(rebasing: bytes[start..<(start + record.byteCount)]),
                              dtype: record.dtype, into: out)
            }
        } else {
            let packed = try StridedGather.packedBytes(of: record)
            try packed.withUnsafeBytes { raw in
                try output.withUnsafeMutableBufferPointer { out in try toFloat32(raw, dtype: record.dtype, into: out) }
            }
        }
        return output
    }

    @inline(__always)
    private static func convert<T>(_ src: UnsafeRawPointer, _ count: Int, _: T.Type,
                                   _ dst: UnsafeMutablePointer<Float>, _ transform: (T) -> Float) {
        let size = MemoryLayout<T>.size
        for i in 0..<count { dst[i] = transform(src.loadUnaligned(fromByteOffset: size * i, as: T.self)) }
    }
}
