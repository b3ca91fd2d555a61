import Foundation
import Models

/// Which tokenizer goes with a model: the model folder's own `vocab.json` + `merges.txt` when it ships
/// them (every Hugging Face CLIP folder does; a diffusers pipeline in `tokenizer/`), else the built-in
/// open_clip vocabulary. Every command that turns text into ids for a loaded model asks here.
public enum ModelTokenizer {
    /// The tokenizer for the CLIP at `path` (a folder, or a file whose folder is looked in).
    public static func forCLIP(at path: String) throws -> CLIPTokenizer {
        try tokenizer(in: [CLIPLoader.folder(of: path)])
    }

    /// The tokenizer for the text encoder of the Stable Diffusion model at `path`: a pipeline folder's
    /// `tokenizer/`, a component folder's own files or its pipeline's `tokenizer/`; then the same in the
    /// `configuration` folder (a single file's `--config DIR`).
    public static func forTextEncoder(at path: String, configuration: String? = nil) throws -> CLIPTokenizer {
        var folders: [String] = []
        for root in [path, configuration].compactMap({ $0 }) {
            let folder = CLIPLoader.folder(of: root)
            folders += [folder, (folder as NSString).appendingPathComponent("tokenizer")]
            let parent = (folder as NSString).deletingLastPathComponent
            if FileManager.default.fileExists(atPath: (parent as NSString).appendingPathComponent("model_index.json")) {
                folders.append((parent as NSString).appendingPathComponent("tokenizer"))
            }
        }
        return try tokenizer(in: folders)
    }

    /// The folder whose files a tokenizer for these candidates would come from (nil: the built-in one).
    public static func folder(among candidates: [String]) -> String? {
        candidates.first(where: HuggingFaceVocabularyReader.isPresent(in:))
    }

    static func tokenizer(in candidates: [String]) throws -> CLIPTokenizer {
        guard let folder = folder(among: candidates) else { return try CLIPTokenizer() }
        return try CLIPTokenizer(folder: folder)
    }
}
