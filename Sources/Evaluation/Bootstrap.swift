import Tensors

/// A value with its bootstrap interval.
public struct Estimate: Sendable, Equatable {
    public let value: Double
    public let low: Double
    public let high: Double

    public init(value: Double, low: Double, high: Double) {
        (self.value, self.low, self.high) = (value, low, high)
    }
}

public struct BootstrapSettings: Sendable, Equatable {
    public var resamples: Int
    public var seed: UInt64
    /// The interval's coverage: 0.95 gives the 2.5th and 97.5th percentiles.
    public var confidence: Double

    public init(resamples: Int = 1000, seed: UInt64 = 0, confidence: Double = 0.95) {
        (self.resamples, self.seed, self.confidence) = (resamples, seed, confidence)
    }
}

/// Percentile bootstrap over items. A statistic is the mean over strata of each stratum's mean of 0/1
/// outcomes: one stratum is a pooled accuracy; several are a macro average, resampled within each
/// stratum (stratified) so every subset keeps its size. One resample draws, for each stratum of n
/// items, n of them uniformly with replacement; every metric and every model is computed on the same
/// draws, so the difference of two models is a paired bootstrap. The interval is the (1−c)/2 and
/// (1+c)/2 quantiles of the resampled statistics, linearly interpolated between order statistics
/// (numpy's default). Draws come from SplitMix64 seeded by the settings' seed and `key`, so an interval
/// does not depend on what else the run evaluates.
public struct Bootstrap: Sendable {
    public let settings: BootstrapSettings

    public init(_ settings: BootstrapSettings) { self.settings = settings }

    public struct Result: Sendable, Equatable {
        /// [model][metric]
        public let estimates: [[Estimate]]
        /// [metric]: model 1 − model 0, when there are two models.
        public let differences: [Estimate]?
    }

    /// `outcomes[model][metric][item]`; `strata` lists item indices (empty strata are ignored).
    /// Nil when no stratum has an item.
    public func run(outcomes: [[[Bool]]], strata: [[Int]], key: String) -> Result? {
        let strata = strata.filter { !$0.isEmpty }
        guard !strata.isEmpty, let metrics = outcomes.first?.count, metrics > 0 else { return nil }
        let models = outcomes.count
        // One column per (model, metric); one row of 0/1 per item.
        let columns = models * metrics
        let items = outcomes[0][0].count
        var table = [Int](repeating: 0, count: items * columns)
        for model in 0..<models {
            for metric in 0..<metrics {
                for (item, value) in outcomes[model][metric].enumerated() where value { table[item * columns + model * metrics + metric] = 1 }
            }
        }
        /// The statistic per column from per-stratum sums ([stratum][column]).
        func statistic(_ sums: [[Int]]) -> [Double] {
            (0..<columns).map { column in
                zip(strata, sums).reduce(0.0) { $0 + Double($1.1[column]) / Double($1.0.count) } / Double(strata.count)
            }
        }
        let exact = statistic(strata.map { stratum in
            (0..<columns).map { column in stratum.reduce(0) { $0 + table[$1 * columns + column] } }
        })
        var generator = SplitMix64(seed: Self.seed(settings.seed, key))
        let resamples = max(settings.resamples, 1)
        var draws = [[Double]](repeating: [], count: columns + (models == 2 ? metrics : 0))
        for _ in 0..<resamples {
            var sums = [[Int]](repeating: [Int](repeating: 0, count: columns), count: strata.count)
            for (s, stratum) in strata.enumerated() {
                for _ in 0..<stratum.count {
                    let row = stratum[generator.next(below: stratum.count)] * columns
                    for column in 0..<columns { sums[s][column] += table[row + column] }
                }
            }
            let resampled = statistic(sums)
            for column in 0..<columns { draws[column].append(resampled[column]) }
            if models == 2 {
                for metric in 0..<metrics { draws[columns + metric].append(resampled[metrics + metric] - resampled[metric]) }
            }
        }
        let tail = (1 - settings.confidence) / 2
        func estimate(_ value: Double, _ column: Int) -> Estimate {
            let sorted = draws[column].sorted()
            return Estimate(value: value, low: Self.quantile(sorted, tail), high: Self.quantile(sorted, 1 - tail))
        }
        return Result(
            estimates: (0..<models).map { model in (0..<metrics).map { estimate(exact[model * metrics + $0], model * metrics + $0) } },
            differences: models == 2 ? (0..<metrics).map { estimate(exact[metrics + $0] - exact[$0], columns + $0) } : nil)
    }

    /// The q-quantile of sorted values, interpolating linearly between the order statistics around
    /// position q·(n−1).
    public static func quantile(_ sorted: [Double], _ q: Double) -> Double {
        guard !sorted.isEmpty else { return .nan }
        let position = min(max(q, 0), 1) * Double(sorted.count - 1)
        let lower = Int(position.rounded(.down))
        guard lower + 1 < sorted.count else { return sorted[sorted.count - 1] }
        return sorted[lower] + (position - Double(lower)) * (sorted[lower + 1] - sorted[lower])
    }

    /// A stream per key: FNV-1a of the key's UTF-8, mixed with the seed through SplitMix64.
    static func seed(_ seed: UInt64, _ key: String) -> UInt64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in key.utf8 { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
        var mixer = SplitMix64(seed: seed ^ hash)
        return mixer.next()
    }
}
