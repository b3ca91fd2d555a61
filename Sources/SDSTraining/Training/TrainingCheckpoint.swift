import Checkpoints
import Foundation
import Models
import Tensors
import WeightsIO

/// Where a run is in its data and random streams: everything besides tensors that an exact resume needs.
public struct TrainingProgress: Codable, Equatable, Sendable {
    /// Optimiser steps taken.
    public var step: Int
    /// The data epoch and the raw samples of it consumed (`BatchLoader` resumes there): the global
    /// position, the same on every rank for indexed layouts, so a resume may use another rank count.
    public var epoch: Int
    public var position: Int
    /// Ranks of the run that wrote it (its global batch is ranks × batch-size × accumulation).
    public var ranks: Int
    /// Webdataset: each rank's own [epoch, position] in its shards (a resume needs the same ranks).
    public var shardPositions: [[Int]]?
    /// Over all ranks.
    public var samplesSeen: Int
    public var badSamples: Int
    /// Wall-clock seconds of training so far (across resumes).
    public var elapsedSeconds: Double
}

/// One checkpoint folder `checkpoints/step-N/`:
/// - `trainables.safetensors`: every trainable tensor by canonical name (CLIP's, then `latent_map.*`);
/// - `optimizer.safetensors`: AdamW moments `exp_avg.NAME` / `exp_avg_sq.NAME`, step counts in metadata;
/// - `state.json`: `TrainingProgress` and the effective configuration.
/// The folder is built beside its final name and renamed into place, so a kill at any moment leaves
/// either the previous checkpoints or the new complete one (plus a `.partial` folder the next write removes).
public struct TrainingCheckpoint {
    public static let trainablesFile = "trainables.safetensors"
    public static let optimizerFile = "optimizer.safetensors"
    public static let stateFile = "state.json"
    /// 2: noise and timesteps became a function of (seed, step, batch), ranks and shard positions recorded.
    static let format = "sdsclip-finetune-checkpoint-2"

    public var progress: TrainingProgress
    /// The effective configuration (`FinetuneConfiguration.values`).
    public var configuration: [String: Any]
    public var tensors: [String: Tensor]
    public var optimizerStates: [String: AdamW.ParameterState]

    public init(progress: TrainingProgress, configuration: [String: Any], tensors: [String: Tensor],
                optimizerStates: [String: AdamW.ParameterState]) {
        (self.progress, self.configuration, self.tensors, self.optimizerStates) = (progress, configuration, tensors, optimizerStates)
    }

    /// Writes `folder/step-N` and removes all but the newest `keep` checkpoints. Returns the new folder.
    @discardableResult
    public func write(into folder: String, keep: Int) throws -> String {
        let manager = FileManager.default
        try manager.createDirectory(atPath: folder, withIntermediateDirectories: true)
        Self.removeStalePartials(in: folder)
        let name = "step-\(progress.step)"
        let final = (folder as NSString).appendingPathComponent(name)
        let partial = (folder as NSString).appendingPathComponent(".\(name).partial-\(getpid())")
        try? manager.removeItem(atPath: partial)
        try manager.createDirectory(atPath: partial, withIntermediateDirectories: false)
        do {
            let names = tensors.keys.sorted()
            try SafetensorsWriter.write(names.map { SafetensorsWriter.Tensor(name: $0, shape: tensors[$0]!.shape, floats: tensors[$0]!.scalars) },
                                        metadata: ["format": Self.format, "step": String(progress.step)],
                                        to: (partial as NSString).appendingPathComponent(Self.trainablesFile))
            var moments: [SafetensorsWriter.Tensor] = []
            var steps: [String: Int] = [:]
            for key in optimizerStates.keys.sorted() {
                guard let state = optimizerStates[key] else { continue }
                moments.append(SafetensorsWriter.Tensor(name: "exp_avg.\(key)", shape: state.firstMoment.shape, floats: state.firstMoment.scalars))
                moments.append(SafetensorsWriter.Tensor(name: "exp_avg_sq.\(key)", shape: state.secondMoment.shape, floats: state.secondMoment.scalars))
                steps[key] = state.step
            }
            let stepsJSON = String(decoding: try JSONSerialization.data(withJSONObject: steps, options: [.sortedKeys]), as: UTF8.self)
            try SafetensorsWriter.write(moments, metadata: ["format": Self.format, "steps": stepsJSON],
                                        to: (partial as NSString).appendingPathComponent(Self.optimizerFile))
            let progressObject = try JSONSerialization.jsonObject(with: JSONEncoder().encode(progress))
            let state: [String: Any] = ["format": Self.format, "progress": progressObject, "configuration": configuration]
            try JSONSerialization.data(withJSONObject: state, options: [.prettyPrinted, .sortedKeys])
                .write(to: URL(fileURLWithPath: (partial as NSString).appendingPathComponent(Self.stateFile)), options: .atomic)
            // A re-run of a step after a resume replaces that step's older checkpoint.
            try AtomicFolder.move(partial, to: final)
        } catch {
            try? manager.removeItem(atPath: partial)
            throw error
        }
        for stale in Self.list(folder).dropLast(keep) { try? manager.removeItem(atPath: stale.path) }
        return final
    }

    /// Complete checkpoint folders under `folder`, oldest first.
    public static func list(_ folder: String) -> [(step: Int, path: String)] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
        return entries.compactMap { entry -> (Int, String)? in
            guard entry.hasPrefix("step-"), let step = Int(entry.dropFirst(5)) else { return nil }
            let path = (folder as NSString).appendingPathComponent(entry)
            guard FileManager.default.fileExists(atPath: (path as NSString).appendingPathComponent(stateFile)) else { return nil }
            return (step, path)
        }.sorted { $0.0 < $1.0 }
    }

    /// Removes `.step-N.partial-PID` / `.old-PID` folders whose process no longer runs (a killed writer's).
    static func removeStalePartials(in folder: String) {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
        for entry in entries where entry.hasPrefix(".step-") {
            guard let marker = entry.range(of: ".partial-") ?? entry.range(of: ".old-"),
                  let pid = Int32(entry[marker.upperBound...]) else { continue }
            if pid == getpid() || kill(pid, 0) != 0 {
                try? FileManager.default.removeItem(atPath: (folder as NSString).appendingPathComponent(entry))
            }
        }
    }

    /// Reads a checkpoint folder.
    public static func read(_ path: String) throws -> TrainingCheckpoint {
        let statePath = (path as NSString).appendingPathComponent(stateFile)
        guard let data = FileManager.default.contents(atPath: statePath),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw CheckpointError(file: statePath, "not a fine-tune checkpoint (no readable state.json)")
        }
        if object["format"] as? String == "sdsclip-finetune-checkpoint-1" {
            throw CheckpointError(file: statePath, "made by an earlier sdsclip, whose noise and timesteps came from another random stream: it cannot be resumed exactly (start the run again)")
        }
        guard object["format"] as? String == format, let progressObject = object["progress"],
              let configuration = object["configuration"] as? [String: Any] else {
            throw CheckpointError(file: statePath, "state.json is not of format \(format)")
        }
        let progress: TrainingProgress
        do {
            progress = try JSONDecoder().decode(TrainingProgress.self, from: JSONSerialization.data(withJSONObject: progressObject))
        } catch {
            throw CheckpointError(file: statePath, "its progress record is incomplete (\(error))")
        }
        let trainablesPath = (path as NSString).appendingPathComponent(trainablesFile)
        let trainables = try WeightsReader.open(trainablesPath)
        var tensors: [String: Tensor] = [:]
        for record in trainables.orderedRecords { tensors[record.name] = try Tensor(record: record, file: trainablesPath) }
        let optimizerPath = (path as NSString).appendingPathComponent(optimizerFile)
        let optimizer = try WeightsReader.open(optimizerPath)
        guard let stepsText = optimizer.metadata["steps"],
              let steps = try? JSONSerialization.jsonObject(with: Data(stepsText.utf8)) as? [String: Int] else {
            throw CheckpointError(file: optimizerPath, "no step counts in its metadata")
        }
        var states: [String: AdamW.ParameterState] = [:]
        for (name, step) in steps {
            guard let first = optimizer.records["exp_avg.\(name)"], let second = optimizer.records["exp_avg_sq.\(name)"] else {
                throw CheckpointError(file: optimizerPath, "the moments of '\(name)' are missing")
            }
            states[name] = AdamW.ParameterState(step: step, firstMoment: try Tensor(record: first, file: optimizerPath),
                                                secondMoment: try Tensor(record: second, file: optimizerPath))
        }
        return TrainingCheckpoint(progress: progress, configuration: configuration, tensors: tensors, optimizerStates: states)
    }
}

/// Facts about an output folder.
public enum TrainingCheckpointFolder {
    /// True when `out` does not exist or holds no run (no checkpoints, no metrics).
    public static func isFresh(_ out: String) -> Bool {
        let manager = FileManager.default
        return !manager.fileExists(atPath: (out as NSString).appendingPathComponent("checkpoints"))
            && !manager.fileExists(atPath: (out as NSString).appendingPathComponent("metrics.jsonl"))
    }
}
