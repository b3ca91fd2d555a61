import Checkpoints
import Foundation
import FuzzSupport
import Models
import SDSTraining
import WeightsIO

// Every reader of a JSON (or YAML) file a user hands over: CLIP configurations (transformers and
// OpenCLIP), diffusers UNet / VAE / scheduler configurations, fine-tune configuration files, the
// JSONL and COCO data manifests, and the project's own JSON parser (safetensors headers, shard indexes).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfig(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = [UInt8](UnsafeBufferPointer(start: data, count: size))
    _ = try? JSONParser.parse(bytes)
    let path = FuzzInput.scratchFile(bytes, name: "config.json")
    _ = try? CLIPConfigurationFile.read(path)
    _ = try? CLIPConfigurationFile.readText(path)
    if let unet = try? UNetConfiguration.read(path) {
        _ = try? unet.layers()
        _ = try? unet.heads()
        _ = try? unet.crossAttentionDims()
    }
    _ = try? AutoencoderConfiguration.read(path)
    _ = try? TeacherSchedule.read(path)
    if let values = try? FinetuneConfiguration.readFile(path) {
        var configuration = FinetuneConfiguration()
        try? configuration.apply(values, origin: path)
    }
    _ = try? JSONLManifest.read(path: path)
    _ = try? COCOCaptions.read(annotations: path, imageFolder: FuzzInput.scratchFolder())
    return 0
}
