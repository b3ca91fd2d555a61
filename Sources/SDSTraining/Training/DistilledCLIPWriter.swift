import Checkpoints
import Foundation
import Models
import Tensors
import WeightsIO

/// Writes the distilled CLIP as a transformers-layout folder that every `sdsclip` command loads:
/// `model.safetensors` (every CLIP tensor by canonical name, fine-tuned ones included), `config.json`,
/// `training.json` (provenance: settings, step, what was trained), and beside CLIP — never inside its
/// weight file — the latent map in `latent_map/latent_map.safetensors` (a subfolder, so the folder still
/// has exactly one weight file for loaders to pick). Built in a sibling folder and renamed into place.
public enum DistilledCLIPWriter {
    static func subfolder(_ name: String, of folder: String) throws -> String {
        let path = (folder as NSString).appendingPathComponent(name)
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    public static func write(clip: CLIPModel, latentMap: LatentMap, configuration: FinetuneConfiguration,
                             step: Int, into folder: String) throws -> String {
        let manager = FileManager.default
        let parent = (folder as NSString).deletingLastPathComponent
        let partial = (parent as NSString).appendingPathComponent(".\((folder as NSString).lastPathComponent).partial-\(getpid())")
        try? manager.removeItem(atPath: partial)
        try manager.createDirectory(atPath: partial, withIntermediateDirectories: true)
        do {
            let metadata = ["format": "pt", "sdsclip_step": String(step)]
            let tensors = clip.registry.entries.map { entry in
                SafetensorsWriter.Tensor(name: entry.name, shape: entry.storedShape, floats: entry.parameter.value.scalars)
            }
            try SafetensorsWriter.write(tensors, metadata: metadata, to: (partial as NSString).appendingPathComponent("model.safetensors"))
            let config = CLIPConfigurationFile.huggingFaceObject(clip.configuration)
            try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys])
                .write(to: URL(fileURLWithPath: (partial as NSString).appendingPathComponent("config.json")))
            let map = latentMap.registry.entries.map { SafetensorsWriter.Tensor(name: $0.name, shape: $0.storedShape, floats: $0.parameter.value.scalars) }
            try SafetensorsWriter.write(map, metadata: ["mapper": latentMap.kind.rawValue, "latent_size": String(latentMap.side),
                                                        "token_grid": String(latentMap.grid), "step": String(step)],
                                        to: try subfolder("latent_map", of: partial) + "/latent_map.safetensors")
            let provenance: [String: Any] = ["step": step, "configuration": configuration.values,
                                             "trained": (configuration.trainable.select(in: clip.registry).map(\.name) + latentMap.registry.names)]
            try JSONSerialization.data(withJSONObject: provenance, options: [.prettyPrinted, .sortedKeys])
                .write(to: URL(fileURLWithPath: (partial as NSString).appendingPathComponent("training.json")))
            try FinishedFolder.move(partial, to: folder)
        } catch {
            try? manager.removeItem(atPath: partial)
            throw error
        }
        return folder
    }
}
