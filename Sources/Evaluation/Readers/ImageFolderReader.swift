import Foundation
import WeightsIO

/// A zero-shot classification set laid out as torchvision's `ImageFolder` (ImageNet's val folder sorted
/// into class folders, CIFAR exported as folders): `ROOT/CLASS/**/*.jpg|png|…`. Classes are the
/// non-hidden subfolders in sorted order (torchvision's class indices); images are the files with an
/// image extension under each, recursively, in sorted order.
///
/// Class names, the words put in the prompts: from `classnames.txt` (one a line, in the sorted folder
/// order, as CLIP_benchmark's ImageNet list) or `classnames.json` (`{"FOLDER": "name"}`) in ROOT or given
/// by `--classnames`, else the folder names with `_` read as a space. Templates: `templates.txt` in ROOT
/// or `--templates FILE`, one a line with `{}` (or `{c}`) where the name goes, else `defaultTemplates`.
public enum ImageFolderReader {
    /// open_clip's simplest prompt, the one CLIP's paper starts from.
    public static let defaultTemplates = ["a photo of a {}."]
    public static let classNamesText = "classnames.txt"
    public static let classNamesJSON = "classnames.json"
    public static let templatesFile = "templates.txt"
    /// torchvision's IMG_EXTENSIONS; files the decoder cannot read are named and skipped when embedded.
    public static let imageExtensions: Set<String> = ["jpg", "jpeg", "png", "ppm", "bmp", "pgm", "tif", "tiff", "webp"]
    static let maximumDepth = 32

    public static func read(folder: String, classNames: String? = nil, templates: String? = nil) throws -> Benchmark {
        let classes = classFolders(folder)
        guard !classes.isEmpty else {
            throw EvaluationError(file: folder, "no class folders: expected ROOT/CLASS/IMAGE (torchvision ImageFolder)")
        }
        let names = try self.classNames(classes, root: folder, given: classNames)
        let templates = try self.templates(root: folder, given: templates)
        var examples: [ZeroShotTask.Example] = []
        for (label, name) in classes.enumerated() {
            let classFolder = BenchmarkFile.join(folder, name)
            for file in imageFiles(in: classFolder) {
                examples.append(ZeroShotTask.Example(id: "\(name)/\(file)", image: ImageReference(path: BenchmarkFile.join(classFolder, file)),
                                                     label: label))
            }
        }
        let task = ZeroShotTask(classNames: names, templates: templates, examples: examples)
        return Benchmark(name: "zeroshot", kind: .zeroShot, source: folder, corpus: task, skipped: [])
    }

    /// The non-hidden subfolders, sorted by their UTF-8 bytes (Python's `sorted` on names).
    static func classFolders(_ folder: String) -> [String] {
        entries(folder).filter { BenchmarkFile.isFolder(BenchmarkFile.join(folder, $0)) }
    }

    /// Whether `folder` looks like an ImageFolder: at least two class folders holding an image file.
    static func looksLikeImageFolder(_ folder: String) -> Bool {
        classFolders(folder).lazy.filter { !imageFiles(in: BenchmarkFile.join(folder, $0)).isEmpty }.prefix(2).count == 2
    }

    /// Image files under `folder` (recursively), as paths relative to it, in torchvision's order: folders
    /// sorted by path (`sorted(os.walk(...))`), the files of each sorted by name.
    static func imageFiles(in folder: String) -> [String] {
        var folders: [String] = [""], files: [String] = []
        var pending = [""]
        while let relative = pending.popLast() {
            for entry in entries(relative.isEmpty ? folder : BenchmarkFile.join(folder, relative)) {
                let path = relative.isEmpty ? entry : relative + "/" + entry
                // Symbolic links are followed as torchvision does; the depth bound stops a link loop.
                if BenchmarkFile.isFolder(BenchmarkFile.join(folder, path)), path.split(separator: "/").count <= maximumDepth {
                    folders.append(path)
                    pending.append(path)
                }
            }
        }
        folders.sort { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        for relative in folders {
            let path = relative.isEmpty ? folder : BenchmarkFile.join(folder, relative)
            for entry in entries(path) where !BenchmarkFile.isFolder(BenchmarkFile.join(path, entry)) && isImageName(entry) {
                files.append(relative.isEmpty ? entry : relative + "/" + entry)
            }
        }
        return files
    }

    static func isImageName(_ name: String) -> Bool {
        guard name.contains("."), let suffix = name.split(separator: ".").last else { return false }
        return imageExtensions.contains(suffix.lowercased())
    }

    static func entries(_ folder: String) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
        return names.filter { !$0.hasPrefix(".") }.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
    }

    static func classNames(_ folders: [String], root: String, given: String?) throws -> [String] {
        let text = BenchmarkFile.join(root, classNamesText), json = BenchmarkFile.join(root, classNamesJSON)
        let file = given ?? (BenchmarkFile.exists(text) ? text : BenchmarkFile.exists(json) ? json : nil)
        guard let file else { return folders.map { $0.replacingOccurrences(of: "_", with: " ") } }
        let bytes = try BenchmarkFile.bytes(file, what: "class names file")
        if file.lowercased().hasSuffix(".json") {
            guard let mapping = try BenchmarkFile.json(bytes, file: file).objectValue else {
                throw EvaluationError(file: file, "expected a JSON object {\"FOLDER\": \"class name\", …}")
            }
            return try folders.map { folder in
                guard let name = mapping[folder]?.stringValue, !name.isEmpty else {
                    throw EvaluationError(file: file, "no class name (a non-empty string) for the class folder \"\(folder)\"")
                }
                return name
            }
        }
        let names = nonBlankLines(bytes)
        guard names.count == folders.count else {
            throw EvaluationError(file: file, "has \(names.count) class names for \(folders.count) class folders in \(root); "
                                  + "expected one a line, in the sorted order of the folders (\(folders.prefix(3).joined(separator: ", "))…)")
        }
        return names
    }

    static func templates(root: String, given: String?) throws -> [String] {
        let beside = BenchmarkFile.join(root, templatesFile)
        guard let file = given ?? (BenchmarkFile.exists(beside) ? beside : nil) else { return defaultTemplates }
        let templates = nonBlankLines(try BenchmarkFile.bytes(file, what: "templates file"))
        guard !templates.isEmpty else { throw EvaluationError(file: file, "has no templates: expected one a line, with {} for the class name") }
        for (index, template) in templates.enumerated() where !template.contains("{}") && !template.contains("{c}") {
            throw EvaluationError(file: file, "template \(index + 1) \"\(template)\" has no {} for the class name")
        }
        return templates
    }

    /// Lines with surrounding whitespace removed, blank ones dropped.
    static func nonBlankLines(_ bytes: [UInt8]) -> [String] {
        String(decoding: bytes, as: UTF8.self).split(whereSeparator: \.isNewline)
            .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }
}
