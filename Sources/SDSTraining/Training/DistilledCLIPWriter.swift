import Checkpoints
import Foundation
import Models
import Tensors
import WeightsIO

/// Writes the distilled CLIP as a transformers-layout folder that every `sdsclip` command loads: what
/// `CLIPExporter` writes for `--layout hf` (`model.safetensors` with every CLIP tensor by canonical
/// name, fine-tuned ones included, `config.json`, processor and tokenizer files), plus `training.json`
/// (provenance: settings, step, what was trained) and, beside CLIP — never inside its weight file —
/// the latent map in `latent_map/latent_map.safetensors` (a subfolder, so the folder still has exactly
/// one weight file for loaders to pick). All in one folder built beside `final/` and swapped into place.
public enum DistilledCLIPWriter {
    public static func write(clip: CLIPModel, latentMap: LatentMap, configuration: FinetuneConfiguration,
                             step: Int, into folder: String, tokenizer: CLIPTokenizer? = nil) throws -> String {
        let map = latentMap.registry.entries.map { SafetensorsWriter.Tensor(name: $0.name, shape: $0.storedShape, floats: $0.parameter.value.scalars) }
        let mapMetadata = ["mapper": latentMap.kind.rawValue, "latent_size": String(latentMap.side),
                           "token_grid": String(latentMap.grid), "step": String(step)]
        let provenance: [String: Any] = ["step": step, "configuration": configuration.values,
                                         "trained": (configuration.trainable.select(in: clip.registry).map(\.name) + latentMap.registry.names)]
        let training = try JSONSerialization.data(withJSONObject: provenance, options: [.prettyPrinted, .sortedKeys])
        // Only the step goes into the weights' metadata: the settings name the run's own folder, and
        // the same training must give the same bytes wherever it ran (resume checks compare them).
        try CLIPExporter.export(clip, to: folder, options: .init(layout: .huggingFace, existing: .replace),
                                provenance: CLIPExportProvenance(step: step),
                                extraFiles: [ExportedFile("training.json", .bytes(Array(training))),
                                             ExportedFile("latent_map/latent_map.safetensors", .tensors(map, metadata: mapMetadata))],
                                tokenizer: tokenizer)
        return folder
    }
}
