import Foundation
import WeightsIO

// Weights I/O cases; tools/bench/bench_weights.py runs them next to the Python reference.
//
// "Read" means: open the file and, for every tensor, get its values as Float32 and sum them (one
// Float32 sum per tensor, added up in Float64). The sum makes every byte of every tensor pass through
// the CPU, and the total is a checksum the driver compares with Python's. F32 packed tensors are summed
// straight from the mapping (no copy: that is what the zero-copy reader is for); views and other
// dtypes go through a reused Float32 block. Single-threaded.
enum WeightsBench {
    static let cases: [BenchCase] = [
        BenchCase(name: "weights-read", summary: "PATH [REPEATS] [cold]: open + sum every tensor as f32; best time, VmHWM (cold: no warm-up run)") { arguments in
            guard let path = arguments.first else { throw BenchUsage("weights-read PATH [REPEATS] [cold]") }
            let repeats = arguments.count > 1 ? Int(arguments[1]) ?? 3 : 3
            // A cold-cache run must not read the file before the timed run.
            let warmup = !(arguments.count > 2 && arguments[2] == "cold")
            var checksum = 0.0
            var tensors = 0
            var bytes = 0
            let seconds = try bestTime(repeats: repeats, warmup: warmup) {
                let store = try WeightsReader.open(path)
                checksum = try TensorSummer().sum(store)
                tensors = store.count
                bytes = store.totalBytes
            }
            report(["case": "weights-read", "path": path, "seconds": seconds, "tensors": tensors, "bytes": bytes,
                    "checksum": checksum, "peak_rss": peakResidentBytes(), "threads": 1])
        },
        BenchCase(name: "weights-convert", summary: "IN OUT [REPEATS] [DTYPE] [atomic|durable]: WeightsConverter.convert; best time, VmHWM") { arguments in
            guard arguments.count >= 2 else { throw BenchUsage("weights-convert IN OUT [REPEATS] [keep|f32|f16|bf16] [atomic|durable]") }
            let durability: WriteDurability = arguments.count > 4 && arguments[4] == "durable" ? .durable : .atomic
            let repeats = arguments.count > 2 ? Int(arguments[2]) ?? 3 : 3
            let dtypeName = arguments.count > 3 ? arguments[3] : "keep"
            let dtype: DType?
            switch dtypeName {
            case "keep": dtype = nil
            case "f32": dtype = .f32
            case "f16": dtype = .f16
            case "bf16": dtype = .bf16
            default: throw BenchUsage("unknown dtype '\(dtypeName)'")
            }
            var summary: WeightsConverter.Summary?
            // No warm-up run (the first run's peak memory is the one a user sees). The previous output
            // is removed before each run, untimed: replacing it would add the file system's cost of
            // freeing 1 GiB to whichever side happened to run second.
            var seconds = Double.infinity
            for _ in 0..<max(repeats, 1) {
                unlink(arguments[1])
                seconds = min(seconds, try bestTime(repeats: 1, warmup: false) {
                    summary = try WeightsConverter.convert(input: arguments[0], output: arguments[1], dtype: dtype,
                                                           durability: durability)
                })
            }
            report(["case": "weights-convert", "input": arguments[0], "output": arguments[1], "dtype": dtypeName,
                    "durable": durability == .durable,
                    "seconds": seconds, "tensors": summary?.tensorCount ?? 0, "bytes": summary?.bytesRead ?? 0,
                    "peak_rss": peakResidentBytes(), "threads": 1])
        },
    ]
}

struct BenchUsage: Error, CustomStringConvertible {
    let description: String
    init(_ usage: String) { description = "usage: sdsclip-bench " + usage }
}

/// Sums tensors as Float32, reusing one conversion block for everything that is not packed F32.
struct TensorSummer {
    private static let blockElements = 1 << 16

    func sum(_ store: WeightStore) throws -> Double {
        let block = UnsafeMutableBufferPointer<Float>.allocate(capacity: Self.blockElements)
        defer { block.deallocate() }
        let gathered = UnsafeMutableRawBufferPointer.allocate(byteCount: Self.blockElements * 8, alignment: 64)
        defer { gathered.deallocate() }
        var total = 0.0
        for name in store.names {
            guard let record = store[name] else { continue }
            total += Double(try sum(record, block: block, gathered: gathered))
        }
        return total
    }

    private func sum(_ record: TensorRecord, block: UnsafeMutableBufferPointer<Float>,
                     gathered: UnsafeMutableRawBufferPointer) throws -> Float {
        let count = record.elementCount
        guard count > 0, let base = record.storage.buffer.baseAddress else { return 0 }
        if record.dtype == .f32 && record.isContiguous {
            return Self.sumFloats(base + record.storageOffset * 4, count: count)
        }
        try StridedGather.validate(record)
        guard let gatherBase = gathered.baseAddress, let floats = block.baseAddress else { return 0 }
        var total: Float = 0
        var next = 0
        while next < count {
            let elements = next..<min(count, next + Self.blockElements)
            StridedGather.gather(record, elements: elements, into: gatherBase)
            let piece = UnsafeMutableBufferPointer(rebasing: block[0..<elements.count])
            try DTypeConversion.toFloat32(UnsafeRawBufferPointer(rebasing: gathered[0..<(elements.count * record.dtype.byteSize)]),
                                          dtype: record.dtype, into: piece)
            total += Self.sumFloats(UnsafeRawPointer(floats), count: elements.count)
            next = elements.upperBound
        }
        return total
    }

    /// Float32 sum with four 8-wide accumulators (vectorises; unaligned loads are fine on x86/arm64).
    private static func sumFloats(_ start: UnsafeRawPointer, count: Int) -> Float {
        var a = SIMD8<Float>(), b = SIMD8<Float>(), c = SIMD8<Float>(), d = SIMD8<Float>()
        var i = 0
        while i + 32 <= count {
            let p = start + i * 4
            a += p.loadUnaligned(as: SIMD8<Float>.self)
            b += p.loadUnaligned(fromByteOffset: 32, as: SIMD8<Float>.self)
            c += p.loadUnaligned(fromByteOffset: 64, as: SIMD8<Float>.self)
            d += p.loadUnaligned(fromByteOffset: 96, as: SIMD8<Float>.self)
            i += 32
        }
        var total = ((a + b) + (c + d)).sum()
        while i < count {
            total += start.loadUnaligned(fromByteOffset: i * 4, as: Float.self)
            i += 1
        }
        return total
    }
}
