import Foundation
import WeightsIO

/// One file of an exported folder.
public struct ExportedFile {
    public enum Content {
        case bytes([UInt8])
        case tensors([SafetensorsWriter.Tensor], metadata: [String: String])
        /// A byte-for-byte copy of another file.
        case copy(of: String)
    }

    /// Path inside the folder ("latent_map/latent_map.safetensors").
    public let path: String
    public let content: Content

    public init(_ path: String, _ content: Content) {
        self.path = path
        self.content = content
    }

    /// A JSON file as transformers and open_clip write theirs: pretty, keys sorted, final newline.
    public static func json(_ path: String, _ object: Any) throws -> ExportedFile {
        let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        return ExportedFile(path, .bytes(Array(data) + [0x0A]))
    }

    func write(into folder: String) throws {
        let destination = (folder as NSString).appendingPathComponent(path)
        let manager = FileManager.default
        // Only the folders below `folder`: were `folder` (a staging folder) removed by a signal's cleanup,
        // this fails instead of making it again.
        var inner = folder
        for component in (path as NSString).deletingLastPathComponent.split(separator: "/") {
            inner = (inner as NSString).appendingPathComponent(String(component))
            var isFolder: ObjCBool = false
            if !manager.fileExists(atPath: inner, isDirectory: &isFolder) {
                try manager.createDirectory(atPath: inner, withIntermediateDirectories: false)
            }
        }
        switch content {
        case .bytes(let bytes):
            try AtomicFile.write(bytes, to: destination)
        case .tensors(let tensors, let metadata):
            try SafetensorsWriter.write(tensors, metadata: metadata, to: destination)
        case .copy(let source):
            do { try manager.copyItem(atPath: source, toPath: destination) } catch {
                throw CheckpointError(file: source, "cannot copy it into the export as \(path): \(error.localizedDescription)")
            }
        }
    }
}
