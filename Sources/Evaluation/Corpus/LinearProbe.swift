import Foundation

/// A linear probe of image embeddings for the example world's scene attributes: for each attribute a
/// multinomial logistic regression fitted on the training images' embeddings, scored by its accuracy
/// on the test images (each test image a unit: correct when the true label's logit is strictly the
/// highest; a label never seen in training is never predicted).
public struct ProbeTask: CorpusTask {
    public struct Example: Sendable, Hashable {
        /// `train.jsonl:3`, `test-swaps.jsonl:2 image_1`, for messages.
        public let id: String
        public let image: ImageReference
        /// One per attribute, in `attributes` order.
        public let labels: [String]
    }

    public let attributes: [String]
    public let train: [Example]
    public let test: [Example]
    public let settings: SoftmaxRegression.Settings

    public init(attributes: [String], train: [Example], test: [Example], settings: SoftmaxRegression.Settings = .init()) {
        self.attributes = attributes
        self.train = train
        self.test = test
        self.settings = settings
    }

    public var images: [ImageReference] { (train + test).map(\.image) }
    public var captions: [String] { [] }
    public var unitCount: Int { test.count }

    public func evaluate(_ tables: [EmbeddingTable]) -> CorpusOutcome {
        var skipped: [SkippedItem] = []
        func usable(_ examples: [Example], note: String) -> [Example] {
            examples.filter { example in
                guard let reason = tables.missing(example.image) else { return true }
                skipped.append(SkippedItem(id: example.id, reason: reason + note))
                return false
            }
        }
        let train = usable(self.train, note: " (left out of training)"), test = usable(self.test, note: "")
        var values: [[[Bool]]] = []
        for table in tables {
            let trainFeatures = train.compactMap { table.unitVector(of: $0.image) }
            let testFeatures = test.compactMap { table.unitVector(of: $0.image) }
            values.append(attributes.indices.map { attribute in
                let fit = SoftmaxRegression.fit(features: trainFeatures, labels: train.map { $0.labels[attribute] }, settings: settings)
                return zip(testFeatures, test).map { features, example in fit.isCorrect(features, label: example.labels[attribute]) }
            })
        }
        return CorpusOutcome(groups: [UnitOutcomes(unit: "image", metrics: attributes, values: values)], scored: test.count, skipped: skipped)
    }
}

/// Multinomial logistic regression, fitted deterministically so that numpy can repeat it step for step
/// (tools/make_eval_general_fixtures.py does): features standardised with the training mean and
/// population standard deviation (a constant feature is only centred), a bias feature of 1 appended;
/// weights W [classes, features + 1] from zero, minimising mean cross-entropy + ½·l2·‖W‖² (the bias
/// column unpenalised) by Nesterov's accelerated gradient with a fixed number of iterations and step
/// 1 / (½·λmax + l2), λmax the largest eigenvalue of ZᵀZ / n by power iteration from the all-ones vector.
/// Classes are the distinct training labels in sorted order. Everything in double precision.
public struct SoftmaxRegression: Sendable {
    public struct Settings: Sendable, Hashable {
        public var l2: Double
        public var iterations: Int
        public var powerIterations: Int

        public init(l2: Double = 1e-2, iterations: Int = 300, powerIterations: Int = 100) {
            (self.l2, self.iterations, self.powerIterations) = (l2, iterations, powerIterations)
        }
    }

    public let classes: [String]
    public let mean: [Double]
    public let scale: [Double]
    /// [classes][features + 1], the bias last.
    public let weights: [[Double]]

    public static func fit(features: [[Double]], labels: [String], settings: Settings) -> SoftmaxRegression {
        let n = features.count, d = features.first?.count ?? 0
        let classes = Array(Set(labels)).sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        var mean = [Double](repeating: 0, count: d), scale = [Double](repeating: 1, count: d)
        if n > 0 {
            for row in features { for j in 0..<d { mean[j] += row[j] } }
            for j in 0..<d { mean[j] /= Double(n) }
            var variance = [Double](repeating: 0, count: d)
            for row in features { for j in 0..<d { variance[j] += (row[j] - mean[j]) * (row[j] - mean[j]) } }
            for j in 0..<d {
                let deviation = (variance[j] / Double(n)).squareRoot()
                scale[j] = deviation > 1e-12 ? deviation : 1
            }
        }
        let width = d + 1, k = classes.count
        var z = [Double](repeating: 1, count: n * width)
        for (i, row) in features.enumerated() { for j in 0..<d { z[i * width + j] = (row[j] - mean[j]) / scale[j] } }
        let classIndex = Dictionary(uniqueKeysWithValues: classes.enumerated().map { ($1, $0) })
        let targets = labels.map { classIndex[$0] ?? 0 }
        var weights = [Double](repeating: 0, count: k * width)
        if n > 0, k > 1 {
            let step = 1 / (0.5 * largestEigenvalue(z, rows: n, width: width, iterations: settings.powerIterations) + settings.l2)
            var previous = weights, t = 1.0
            for _ in 0..<settings.iterations {
                let tNext = (1 + (1 + 4 * t * t).squareRoot()) / 2
                let momentum = (t - 1) / tNext
                // y = w + momentum (w − w_previous); w_next = y − step ∇L(y).
                var y = weights
                for index in y.indices { y[index] += momentum * (weights[index] - previous[index]) }
                let gradient = self.gradient(y, z: z, targets: targets, rows: n, width: width, classes: k, l2: settings.l2)
                previous = weights
                for index in y.indices { y[index] -= step * gradient[index] }
                weights = y
                t = tNext
            }
        }
        return SoftmaxRegression(classes: classes, mean: mean, scale: scale,
                                 weights: (0..<k).map { Array(weights[$0 * width ..< ($0 + 1) * width]) })
    }

    /// Logits of one feature vector, in `classes` order.
    public func logits(_ features: [Double]) -> [Double] {
        weights.map { w in
            var sum = w[features.count]
            for j in features.indices { sum += w[j] * (features[j] - mean[j]) / scale[j] }
            return sum
        }
    }

    /// Whether `label`'s logit is strictly the highest (a label not among the classes: never).
    public func isCorrect(_ features: [Double], label: String) -> Bool {
        guard let truth = classes.firstIndex(of: label) else { return false }
        let logits = self.logits(features)
        return logits.indices.allSatisfy { $0 == truth || logits[$0] < logits[truth] }
    }

    /// ∇ of mean cross-entropy + ½·l2·‖W without its bias column‖² at W.
    static func gradient(_ w: [Double], z: [Double], targets: [Int], rows n: Int, width: Int, classes k: Int, l2: Double) -> [Double] {
        var gradient = [Double](repeating: 0, count: k * width)
        var logits = [Double](repeating: 0, count: k)
        for i in 0..<n {
            let row = i * width
            for c in 0..<k {
                var sum = 0.0
                for j in 0..<width { sum += z[row + j] * w[c * width + j] }
                logits[c] = sum
            }
            let top = logits.max() ?? 0
            var total = 0.0
            for c in 0..<k {
                logits[c] = exp(logits[c] - top)
                total += logits[c]
            }
            for c in 0..<k {
                let residual = logits[c] / total - (targets[i] == c ? 1 : 0)
                for j in 0..<width { gradient[c * width + j] += residual * z[row + j] }
            }
        }
        for c in 0..<k {
            for j in 0..<width {
                gradient[c * width + j] /= Double(n)
                if j < width - 1 { gradient[c * width + j] += l2 * w[c * width + j] }
            }
        }
        return gradient
    }

    /// vᵀMv for M = ZᵀZ / n after `iterations` steps v ← Mv / ‖Mv‖ from v = 1 / √width.
    static func largestEigenvalue(_ z: [Double], rows n: Int, width: Int, iterations: Int) -> Double {
        func multiply(_ v: [Double]) -> [Double] {
            var out = [Double](repeating: 0, count: width)
            for i in 0..<n {
                var dot = 0.0
                for j in 0..<width { dot += z[i * width + j] * v[j] }
                for j in 0..<width { out[j] += dot * z[i * width + j] }
            }
            return out.map { $0 / Double(n) }
        }
        var v = [Double](repeating: 1 / Double(width).squareRoot(), count: width)
        for _ in 0..<iterations {
            let next = multiply(v)
            let norm = next.reduce(0) { $0 + $1 * $1 }.squareRoot()
            guard norm > 0 else { return 0 }
            v = next.map { $0 / norm }
        }
        return zip(v, multiply(v)).reduce(0) { $0 + $1.0 * $1.1 }
    }
}
