import Tensors

// Deterministic random numbers for data order and the example world: the same seed gives the
// same sequence on every machine and Swift version (Swift's own shuffle and bounded random
// may change between releases, so neither is used). SplitMix64 is Tensors' (one implementation).

enum SeedMixer {
    /// One well-mixed seed from several parts (a seed, an epoch, a purpose, an index), so that
    /// nearby inputs (seed 1 epoch 0 vs seed 0 epoch 1) give unrelated streams.
    static func derive(_ parts: UInt64...) -> UInt64 {
        var hash: UInt64 = 0x243F_6A88_85A3_08D3
        for part in parts {
            var mixer = SplitMix64(seed: hash ^ part)
            hash = mixer.next()
        }
        return hash
    }
}

/// xoshiro256** (Blackman & Vigna), seeded through SplitMix64.
struct SeededGenerator {
    private var s0, s1, s2, s3: UInt64

    init(seed: UInt64) {
        var mixer = SplitMix64(seed: seed)
        s0 = mixer.next()
        s1 = mixer.next()
        s2 = mixer.next()
        s3 = mixer.next()
    }


    mutating func next() -> UInt64 {
        let result = ((s1 &* 5) << 7 | (s1 &* 5) >> 57) &* 9
        let t = s1 << 17
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = s3 << 45 | s3 >> 19
        return result
    }

    /// Uniform in 0..<bound (bound > 0): Lemire's multiply-and-reject, no modulo bias.
    mutating func below(_ bound: Int) -> Int {
        guard bound > 1 else { return 0 }
        let n = UInt64(bound)
        let threshold = (0 &- n) % n
        while true {
            let (high, low) = next().multipliedFullWidth(by: n)
            if low >= threshold { return Int(high) }
        }
    }

    /// Uniform in range (inclusive bounds).
    mutating func inRange(_ range: ClosedRange<Int>) -> Int {
        range.lowerBound + below(range.upperBound - range.lowerBound + 1)
    }

    /// Uniform in [0, 1) with 53 random bits.
    mutating func unit() -> Double { Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0) }

    /// Fisher-Yates.
    mutating func shuffle<T>(_ values: inout [T]) {
        guard values.count > 1 else { return }
        for i in stride(from: values.count - 1, to: 0, by: -1) {
            values.swapAt(i, below(i + 1))
        }
    }
}
