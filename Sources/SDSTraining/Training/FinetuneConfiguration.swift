import Foundation
import Tensors
import Yams

/// Every setting of `sdsclip finetune`. Each has a kebab-case key that is both its config-file key and
/// its command-line flag (`batch-size` ↔ `--batch-size`). Defaults marked "ours" are choices of this
/// implementation: the SDS-CLIP paper does not publish them.
public struct FinetuneConfiguration: Equatable, Sendable {
    // Inputs and outputs.
    public var clip: String?
    public var teacher: String?
    public var data: String?
    public var out: String?
    public var clipConfig: String?
    public var teacherConfig: String?
    public var dataLayout: String?
    // Length.
    public var steps: Int?
    public var epochs: Int?
    // Batching.
    public var batchSize = 8
    public var microBatch = 1
    public var accumulation = 1
    // Objective.
    public var lambda: Float = 0.1
    public var sdsGradient = SDSGradientMode.full
    public var mapper = LatentMapKind.pooled
    public var trainable = TrainableSet.layernorm
    public var latentSize = 64
    public var tMin = 20
    public var tMax = 980
    public var predictionType: PredictionType?
    public var precision = Precision.fp32
    // Optimiser and schedule.
    public var lrClip: Float = 1e-5
    public var lrMap: Float = 1e-4
    public var weightDecay: Float = 0.1
    public var beta1: Float = 0.9
    public var beta2: Float = 0.98
    public var adamEps: Float = 1e-6
    public var warmupSteps = 50
    public var gradClip: Float = 1.0
    public var seed: UInt64 = 0
    // Checkpoints, logs, data handling.
    public var checkpointEvery = 100
    public var keepCheckpoints = 3
    public var logEvery = 10
    public var maxBadFraction = 0.05
    public var shuffleBuffer = 64
    /// Seconds a rank waits in one all-reduce of an `mpirun` job before it stops the job.
    public var collectiveTimeout = 600
    // Evaluation during training.
    public var evalEvery: Int?
    public var eval: [String] = []

    public init() {}

    /// One setting: its key, help text, and how it is read from a config value and shown.
    public struct Setting: Sendable {
        public let key: String
        public let help: String
        let apply: @Sendable (inout FinetuneConfiguration, Any) throws(ConfigurationError) -> Void
        let show: @Sendable (FinetuneConfiguration) -> Any?
    }

    public static let settings: [Setting] = [
        text("clip", "The CLIP to fine-tune: a file or folder in any layout sdsclip reads.", \.clip),
        text("teacher", "The frozen Stable Diffusion teacher: a diffusers folder or a single-file checkpoint.", \.teacher),
        text("data", "Training data: a JSONL/CSV/TSV manifest, a COCO folder, or webdataset shards (e.g. 'shards/train-{000..009}.tar').", \.data),
        text("out", "Output folder: checkpoints/, final/, metrics.jsonl, loss.png.", \.out),
        text("clip-config", "A configuration file for the CLIP (config.json or open_clip_config.json).", \.clipConfig),
        text("teacher-config", "A diffusers-layout folder with the teacher's component configs (for single files of non-standard size).", \.teacherConfig),
        text("data-layout", "Force the data layout: jsonl, csv, tsv, coco or webdataset (default: detected).", \.dataLayout),
        optionalInt("steps", "Optimiser steps to run (default: --epochs, else 1 epoch).", \.steps, minimum: 1),
        optionalInt("epochs", "Passes over the data (used when --steps is not given).", \.epochs, minimum: 1),
        int("batch-size", "Image–caption pairs per step (the InfoNCE batch; ≥ 2).", \.batchSize, minimum: 2),
        int("micro-batch", "Samples per UNet pass: bounds the teacher's activation memory.", \.microBatch, minimum: 1),
        int("accumulation", "Batches per rank whose gradients are averaged into each optimiser step (global batch: ranks × batch-size × accumulation).", \.accumulation, minimum: 1),
        float("lambda", "Weight λ of L_SDS in L = L_CLIP + λ·L_SDS (ours).", \.lambda, minimum: 0),
        choice("sds-gradient", "full: back-propagate through the UNet; sds: DreamFusion's w(t)·(ε̂ − ε), no UNet backward.", \.sdsGradient),
        choice("mapper", "Latent map h_w: pooled (image embedding → latent) or tokens (patch tokens → latent cells).", \.mapper),
        choice("trainable", "What trains besides h_w: layernorm (both towers), layernorm-image, or all.", \.trainable),
        int("latent-size", "Side of the SD latent h_w produces (64 = SD's 512 px; must suit the UNet).", \.latentSize, minimum: 1),
        int("t-min", "Smallest diffusion timestep sampled (ours).", \.tMin, minimum: 0),
        int("t-max", "Largest diffusion timestep sampled (ours).", \.tMax, minimum: 0),
        optionalChoice("prediction-type", "Override the teacher's prediction type: epsilon or v_prediction (default: its scheduler config).", \.predictionType),
        choice("precision", "fp32, bf16 or auto: bf16 runs the frozen teacher and CLIP's frozen matrices in bf16 (float32 accumulation; trainables stay float32); auto = bf16 where the CPU has AVX512-BF16 and it measures ≥ 1.25× faster.", \.precision),
        float("lr-clip", "Peak learning rate of CLIP's trainables (ours).", \.lrClip, minimum: 0),
        float("lr-map", "Peak learning rate of h_w (ours).", \.lrMap, minimum: 0),
        float("weight-decay", "AdamW decoupled weight decay, on matrices only (never norms or biases).", \.weightDecay, minimum: 0),
        float("beta1", "AdamW β1.", \.beta1, minimum: 0),
        float("beta2", "AdamW β2 (0.98 as CLIP's training).", \.beta2, minimum: 0),
        float("adam-eps", "AdamW ε.", \.adamEps, minimum: 0),
        int("warmup-steps", "Linear warm-up steps before the cosine decay to 0 (ours).", \.warmupSteps, minimum: 0),
        float("grad-clip", "Clip the global gradient norm of all trainables to this (0: off).", \.gradClip, minimum: 0),
        seedSetting,
        int("checkpoint-every", "Write a checkpoint every this many steps (and at the end).", \.checkpointEvery, minimum: 1),
        int("keep-checkpoints", "How many of the latest checkpoints to keep.", \.keepCheckpoints, minimum: 1),
        int("log-every", "Print a progress line every this many steps when the output is not a terminal.", \.logEvery, minimum: 1),
        double("max-bad-fraction", "Stop when more than this share of samples is unreadable (0.05 = 5 %).", \.maxBadFraction),
        int("shuffle-buffer", "Webdataset shuffle buffer (samples).", \.shuffleBuffer, minimum: 1),
        int("collective-timeout", "Under mpirun: seconds a rank waits in one all-reduce before it stops the whole job (a rank stuck or gone).", \.collectiveTimeout, minimum: 1),
        optionalInt("eval-every", "Evaluate the CLIP on the --eval benchmarks every this many steps and at the end (without it: at the end).", \.evalEvery, minimum: 1),
        list("eval", "Benchmarks to evaluate the CLIP on during training, as `sdsclip eval` takes them (paths or KIND:PATH); scores go to metrics.jsonl.", \.eval),
    ]

    public static let keys = Set(settings.map(\.key))

    /// Applies `values` (key → value, from a file or flags); unknown keys and wrong types are errors
    /// that name the key and `origin`.
    public mutating func apply(_ values: [String: Any], origin: String) throws(ConfigurationError) {
        for key in values.keys.sorted() {
            guard let setting = Self.settings.first(where: { $0.key == key }) else {
                let suggestion = Self.settings.map(\.key).min { editDistance($0, key) < editDistance($1, key) } ?? ""
                throw ConfigurationError("\(origin): unknown setting '\(key)' (did you mean '\(suggestion)'?)")
            }
            do { try setting.apply(&self, values[key] as Any) } catch {
                throw ConfigurationError("\(origin): \(error.message)")
            }
        }
    }

    /// Reads a JSON or YAML mapping (YAML is a superset of JSON, so one parser serves both).
    public static func readFile(_ path: String) throws(ConfigurationError) -> [String: Any] {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw ConfigurationError("\(path): cannot read the configuration (\(error.localizedDescription))")
        }
        return try ConfigurationDocument.mapping(yaml: text, origin: path)
    }

    /// The effective configuration as key → value (unset optional settings omitted).
    public var values: [String: Any] {
        var result: [String: Any] = [:]
        for setting in Self.settings { if let value = setting.show(self) { result[setting.key] = value } }
        return result
    }

    /// `values` as pretty, key-sorted JSON (what `--print-config` shows and checkpoints store).
    public var json: String {
        let data = (try? JSONSerialization.data(withJSONObject: values, options: [.prettyPrinted, .sortedKeys])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    /// Checks what can be checked without loading anything.
    public func validate() throws(ConfigurationError) {
        for (key, value) in [("clip", clip), ("teacher", teacher), ("data", data), ("out", out)] where value == nil {
            throw ConfigurationError("missing setting '\(key)' (pass --\(key) or put it in the --config file)")
        }
        guard tMin <= tMax else { throw ConfigurationError("t-min \(tMin) is above t-max \(tMax)") }
        guard microBatch <= batchSize else { throw ConfigurationError("micro-batch \(microBatch) is larger than batch-size \(batchSize)") }
        if evalEvery != nil, eval.isEmpty {
            throw ConfigurationError("eval-every needs benchmarks to evaluate: pass --eval BENCH… (or an 'eval' list in the --config file)")
        }
        if let layout = dataLayout, !["jsonl", "csv", "tsv", "coco", "webdataset"].contains(layout) {
            throw ConfigurationError("data-layout '\(layout)' is not one of jsonl, csv, tsv, coco, webdataset")
        }
    }

    // MARK: Setting builders

    static func text(_ key: String, _ help: String, _ path: WritableKeyPath<FinetuneConfiguration, String?> & Sendable) -> Setting {
        Setting(key: key, help: help, apply: { config, value throws(ConfigurationError) in
            guard let string = value as? String, !string.isEmpty else { throw ConfigurationError("'\(key)' must be a non-empty string") }
            config[keyPath: path] = string
        }, show: { $0[keyPath: path] })
    }

    /// A list of strings: a sequence in a file (or one string), repeated values on the command line.
    static func list(_ key: String, _ help: String, _ path: WritableKeyPath<FinetuneConfiguration, [String]> & Sendable) -> Setting {
        Setting(key: key, help: help, apply: { config, value throws(ConfigurationError) in
            let items: [Any] = (value as? [Any]) ?? [value]
            let strings = items.compactMap { $0 as? String }.filter { !$0.isEmpty }
            guard !strings.isEmpty, strings.count == items.count else {
                throw ConfigurationError("'\(key)' must be a non-empty string or a list of them, got \(value)")
            }
            config[keyPath: path] = strings
        }, show: { $0[keyPath: path].isEmpty ? nil : $0[keyPath: path] })
    }

    static func integer(_ key: String, _ value: Any, minimum: Int) throws(ConfigurationError) -> Int {
        let parsed: Int?
        if let string = value as? String { parsed = Int(string) } else if let number = value as? Int { parsed = number } else { parsed = nil }
        guard let parsed, parsed >= minimum else { throw ConfigurationError("'\(key)' must be an integer ≥ \(minimum), got \(value)") }
        return parsed
    }

    static func int(_ key: String, _ help: String, _ path: WritableKeyPath<FinetuneConfiguration, Int> & Sendable, minimum: Int) -> Setting {
        Setting(key: key, help: help, apply: { config, value throws(ConfigurationError) in
            config[keyPath: path] = try integer(key, value, minimum: minimum)
        }, show: { $0[keyPath: path] })
    }

    static func optionalInt(_ key: String, _ help: String, _ path: WritableKeyPath<FinetuneConfiguration, Int?> & Sendable, minimum: Int) -> Setting {
        Setting(key: key, help: help, apply: { config, value throws(ConfigurationError) in
            config[keyPath: path] = try integer(key, value, minimum: minimum)
        }, show: { $0[keyPath: path] })
    }

    static func real(_ key: String, _ value: Any) throws(ConfigurationError) -> Double {
        let parsed: Double?
        if let string = value as? String { parsed = Double(string) } else if let number = value as? Double { parsed = number }
        else if let number = value as? Int { parsed = Double(number) } else { parsed = nil }
        guard let parsed, parsed.isFinite else { throw ConfigurationError("'\(key)' must be a finite number, got \(value)") }
        return parsed
    }

    static func float(_ key: String, _ help: String, _ path: WritableKeyPath<FinetuneConfiguration, Float> & Sendable, minimum: Float) -> Setting {
        Setting(key: key, help: help, apply: { config, value throws(ConfigurationError) in
            let parsed = try real(key, value)
            guard parsed >= Double(minimum) else { throw ConfigurationError("'\(key)' must be ≥ \(minimum), got \(parsed)") }
            config[keyPath: path] = Float(parsed)
        }, show: { Double("\($0[keyPath: path])") })   // 0.1, not 0.10000000149 (the Float's shortest decimal)
    }

    static func double(_ key: String, _ help: String, _ path: WritableKeyPath<FinetuneConfiguration, Double> & Sendable) -> Setting {
        Setting(key: key, help: help, apply: { config, value throws(ConfigurationError) in
            let parsed = try real(key, value)
            guard (0...1).contains(parsed) else { throw ConfigurationError("'\(key)' must be between 0 and 1, got \(parsed)") }
            config[keyPath: path] = parsed
        }, show: { $0[keyPath: path] })
    }

    static func choice<T: RawRepresentable & CaseIterable & Sendable>(_ key: String, _ help: String,
                                                                      _ path: WritableKeyPath<FinetuneConfiguration, T> & Sendable) -> Setting where T.RawValue == String {
        Setting(key: key, help: help, apply: { config, value throws(ConfigurationError) in
            config[keyPath: path] = try parseChoice(key, value, T.self)
        }, show: { $0[keyPath: path].rawValue })
    }

    static func optionalChoice<T: RawRepresentable & CaseIterable & Sendable>(_ key: String, _ help: String,
                                                                              _ path: WritableKeyPath<FinetuneConfiguration, T?> & Sendable) -> Setting where T.RawValue == String {
        Setting(key: key, help: help, apply: { config, value throws(ConfigurationError) in
            config[keyPath: path] = try parseChoice(key, value, T.self)
        }, show: { $0[keyPath: path]?.rawValue })
    }

    static func parseChoice<T: RawRepresentable & CaseIterable>(_ key: String, _ value: Any, _ type: T.Type) throws(ConfigurationError) -> T where T.RawValue == String {
        guard let string = value as? String, let parsed = T(rawValue: string) else {
            throw ConfigurationError("'\(key)' must be one of \(T.allCases.map(\.rawValue).joined(separator: ", ")), got \(value)")
        }
        return parsed
    }

    static let seedSetting = Setting(key: "seed", help: "Seed of h_w's initialisation, the data order, noise and timesteps.",
                                     apply: { config, value throws(ConfigurationError) in
        let parsed: UInt64?
        if let string = value as? String { parsed = UInt64(string) } else if let number = value as? Int, number >= 0 { parsed = UInt64(number) } else { parsed = nil }
        guard let parsed else { throw ConfigurationError("'seed' must be a non-negative integer, got \(value)") }
        config.seed = parsed
    }, show: { $0.seed })
}

/// A configuration that cannot be used, with the key and where it came from.
public struct ConfigurationError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Levenshtein distance, for "did you mean" hints.
func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    var previous = Array(0...b.count)
    for (i, x) in a.enumerated() {
        var current = [i + 1]
        for (j, y) in b.enumerated() {
            current.append(min(previous[j + 1] + 1, current[j] + 1, previous[j] + (x == y ? 0 : 1)))
        }
        previous = current
    }
    return previous[b.count]
}
