import Foundation
import XCTest
@testable import WeightsIO

/// Conversions checked bit for bit against torch 2.13 on CPU (fixtures/safetensors/conversions.safetensors,
/// made by tools/make_safetensors_fixtures.py). Tolerance: none, results must be bit-identical
/// (NaN: same sign and NaN-ness; payload bits are also compared where torch defines them).
final class DTypeConversionTests: XCTestCase {
    private static let conversions = Result { try SafetensorsReader.read(path: SafetensorsFixtures.path("conversions.safetensors")) }

    private func bits32(_ name: String) throws -> [UInt32] {
        let store = try Self.conversions.get()
        return SafetensorsFixtures.values(try XCTUnwrap(store[name], name), as: UInt32.self)
    }

    private func bits16(_ name: String) throws -> [UInt16] {
        let store = try Self.conversions.get()
        return SafetensorsFixtures.values(try XCTUnwrap(store[name], name), as: UInt16.self)
    }

    /// Converts `patterns` stored as `dtype` through the buffer API, from an unaligned start.
    private func bufferConvert<T>(_ patterns: [T], dtype: DType) throws -> [UInt32] {
        var raw = [UInt8](repeating: 0, count: 1)  // one byte of offset makes every element unaligned
        patterns.withUnsafeBytes { raw.append(contentsOf: $0) }
        var out = [Float](repeating: 0, count: patterns.count)
        try raw.withUnsafeBytes { bytes in
            try out.withUnsafeMutableBufferPointer {
                try DTypeConversion.toFloat32(UnsafeRawBufferPointer(rebasing: bytes[1...]), dtype: dtype, into: $0)
            }
        }
        return out.map(\.bitPattern)
    }

    private func assertBitsEqual(_ got: [UInt32], _ want: [UInt32], _ what: String, nanPayloads: Bool = true) {
        XCTAssertEqual(got.count, want.count, what)
        var mismatches = 0
        for (i, (g, w)) in zip(got, want).enumerated() {
            let gf = Float(bitPattern: g), wf = Float(bitPattern: w)
            let same = nanPayloads ? g == w : (gf.isNaN && wf.isNaN) || g == w
            if !same {
                mismatches += 1
                if mismatches <= 5 { XCTFail(String(format: "%@ [%d]: got 0x%08X want 0x%08X", what, i, g, w)) }
            }
        }
        XCTAssertEqual(mismatches, 0, "\(what): \(mismatches) mismatches")
    }

    func testAllFloat16PatternsMatchTorch() throws {
        let want = try bits32("f16_to_f32_bits")
        let patterns = (0..<65536).map { UInt16($0) }
        assertBitsEqual(patterns.map { DTypeConversion.float16ToFloat($0).bitPattern }, want, "f16 scalar")
        assertBitsEqual(try bufferConvert(patterns, dtype: .f16), want, "f16 buffer (unaligned)")
    }

    func testAllBFloat16PatternsMatchTorch() throws {
        let want = try bits32("bf16_to_f32_bits")
        let patterns = (0..<65536).map { UInt16($0) }
        assertBitsEqual(patterns.map { DTypeConversion.bfloat16ToFloat($0).bitPattern }, want, "bf16 scalar")
        assertBitsEqual(try bufferConvert(patterns, dtype: .bf16), want, "bf16 buffer (unaligned)")
    }

    func testAllFloat8PatternsMatchTorch() throws {
        let patterns = (0..<256).map { UInt8($0) }
        let e4m3 = try bits32("f8e4m3_to_f32_bits")
        assertBitsEqual(patterns.map { DTypeConversion.float8E4M3ToFloat($0).bitPattern }, e4m3, "f8e4m3", nanPayloads: false)
        assertBitsEqual(try bufferConvert(patterns, dtype: .f8e4m3), e4m3, "f8e4m3 buffer", nanPayloads: false)
        XCTAssertEqual(patterns.filter { DTypeConversion.float8E4M3ToFloat($0).isNaN }, [0x7F, 0xFF], "e4m3fn: only 0x7F/0xFF are NaN")
        XCTAssertFalse(patterns.contains { DTypeConversion.float8E4M3ToFloat($0).isInfinite }, "e4m3fn has no infinities")
        XCTAssertEqual(DTypeConversion.float8E4M3ToFloat(0x7E), 448)

        let e5m2 = try bits32("f8e5m2_to_f32_bits")
        assertBitsEqual(patterns.map { DTypeConversion.float8E5M2ToFloat($0).bitPattern }, e5m2, "f8e5m2", nanPayloads: false)
        assertBitsEqual(try bufferConvert(patterns, dtype: .f8e5m2), e5m2, "f8e5m2 buffer", nanPayloads: false)
        XCTAssertEqual(DTypeConversion.float8E5M2ToFloat(0x7C), .infinity)
    }

    func testFloat32RoundingToHalfAndBFloat16MatchesTorch() throws {
        let inputs = try bits32("f32_inputs_bits").map { Float(bitPattern: $0) }
        XCTAssertGreaterThan(inputs.count, 3000)
        let half = try bits16("f32_to_f16_bits")
        let brain = try bits16("f32_to_bf16_bits")

        // F16: bit-exact including NaN payloads (torch's F16C path keeps sign and top payload bits, quiet).
        // BF16: bit-exact for every non-NaN. For NaN torch is not self-consistent (its AVX2 path
        // writes 0xFFFF, its scalar tail 0x7FC0), so NaN inputs need only give a NaN of the same
        // sign with the top payload bits kept; we chose that to mirror the F16 rule.
        let gotHalf = inputs.map { DTypeConversion.floatToFloat16($0) }
        let gotBrain = inputs.map { DTypeConversion.floatToBFloat16($0) }
        var nanCount = 0
        for i in inputs.indices {
            if gotHalf[i] != half[i] {
                XCTFail(String(format: "f16(0x%08X) = 0x%04X, torch 0x%04X", inputs[i].bitPattern, gotHalf[i], half[i]))
            }
            if inputs[i].isNaN {
                nanCount += 1
                XCTAssertTrue(DTypeConversion.bfloat16ToFloat(brain[i]).isNaN, "torch gives a NaN")
                XCTAssertEqual(gotBrain[i], UInt16(inputs[i].bitPattern >> 16) | 0x0040, "NaN keeps sign and payload, quiet")
            } else if gotBrain[i] != brain[i] {
                XCTFail(String(format: "bf16(0x%08X) = 0x%04X, torch 0x%04X", inputs[i].bitPattern, gotBrain[i], brain[i]))
            }
        }
        XCTAssertEqual(nanCount, 8)

        // Buffer API into an unaligned destination gives the same bits.
        for (dtype, want) in [(DType.f16, half), (DType.bf16, brain)] {
            var raw = [UInt8](repeating: 0, count: inputs.count * 2 + 1)
            try inputs.withUnsafeBufferPointer { source in
                try raw.withUnsafeMutableBytes { bytes in
                    try DTypeConversion.fromFloat32(source, to: dtype, into: UnsafeMutableRawBufferPointer(rebasing: bytes[1...]))
                }
            }
            let got = raw.withUnsafeBytes { b in inputs.indices.map { b.loadUnaligned(fromByteOffset: 1 + 2 * $0, as: UInt16.self) } }
            let scalar = dtype == .f16 ? gotHalf : gotBrain
            XCTAssertEqual(got, scalar, "\(dtype) buffer equals the scalar path")
            let differing = inputs.indices.filter { got[$0] != want[$0] && (dtype == .f16 || !inputs[$0].isNaN) }
            XCTAssertEqual(differing, [], "\(dtype) buffer vs torch")
        }
    }

    func testIntegerAndBoolConversionsAndErrors() throws {
        func convert<T>(_ values: [T], _ dtype: DType) throws -> [Float] {
            var out = [Float](repeating: 0, count: values.count)
            try values.withUnsafeBytes { raw in try out.withUnsafeMutableBufferPointer { try DTypeConversion.toFloat32(raw, dtype: dtype, into: $0) } }
            return out
        }
        XCTAssertEqual(try convert([Int8.min, -1, 0, 127], .i8), [-128, -1, 0, 127])
        XCTAssertEqual(try convert([UInt8(0), 2, 255], .bool), [0, 1, 1])
        XCTAssertEqual(try convert([UInt16.max, 0], .u16), [65535, 0])
        XCTAssertEqual(try convert([Int32.min, Int32.max], .i32), [-2147483648, 2147483648])
        XCTAssertEqual(try convert([UInt64.max, 9_007_199_254_740_993], .u64), [18446744073709551616, 9007199254740992])
        XCTAssertEqual(try convert([Int64.min], .i64), [-9223372036854775808])
        XCTAssertEqual(try convert([1.0 / 3.0, 1e300], .f64), [Float(1.0 / 3.0), .infinity])
        assertSafetensorsError(.corrupt, "need 8") { try convert([UInt8(1), 2], .f32) }
        assertSafetensorsError(.unsupported, "complex64") { try convert([UInt64(0)], .c64) }
    }
}
