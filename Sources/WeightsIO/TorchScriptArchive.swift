/// The `__parameters__` / `__buffers__` lists TorchScript writes per class into `code/**/*.py`,
/// keyed by qualified class name (`__torch__.torch.nn.modules.linear.Linear`). Read as text, never run.
struct TorchScriptDeclarations {
    private(set) var stateNames: [String: Set<String>] = [:]

    static func read(_ archive: ZipArchive, prefix: String, limits: PickleLimits) throws -> TorchScriptDeclarations {
        var declarations = TorchScriptDeclarations()
        let codeFolder = prefix + "/code/"
        var budget = limits.maxPickleBytes  // total bytes inflated across all sources
        for entry in archive.entries where entry.name.hasPrefix(codeFolder) && entry.name.hasSuffix(".py") {
            let cap = min(limits.zip.maxInflatedBytes, budget)
            let source = try archive.contents(entry, maxBytes: cap)
            budget -= source.count
            let module = entry.name.dropFirst(codeFolder.count).dropLast(3).replacingOccurrences(of: "/", with: ".")
            declarations.parse(String(decoding: source, as: UTF8.self), module: module)
        }
        return declarations
    }

    /// Names the class declares as parameters or buffers, or nil when its source was not found.
    func stateNames(of symbol: PickleSymbol) -> Set<String>? {
        stateNames[symbol.module + "." + symbol.name]
    }

    mutating func parse(_ source: String, module: String) {
        var currentClass: String?
        var collecting = false
        for line in source.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("class ") {
                let name = line.dropFirst(6).prefix { $0 != "(" && $0 != ":" }
                currentClass = module + "." + name
                collecting = false
                continue
            }
            guard let className = currentClass else { continue }
            let trimmed = line.drop { $0 == " " }
            if trimmed.hasPrefix("__parameters__ = [") || trimmed.hasPrefix("__buffers__ = [") {
                if stateNames[className] == nil { stateNames[className] = [] }  // declared, possibly empty
                collecting = true
            }
            guard collecting else { continue }
            stateNames[className, default: []].formUnion(Self.quotedNames(in: trimmed))
            if trimmed.contains("]") { collecting = false }
        }
    }

    private static func quotedNames(in text: Substring) -> [String] {
        var names: [String] = []
        var current: String?
        for character in text {
            if character == "\"" || character == "'" {
                if let name = current { names.append(name); current = nil } else { current = "" }
            } else if current != nil {
                current?.append(character)
            }
        }
        return names
    }
}

/// Walks a TorchScript module tree: each module is an inert object whose BUILD state is a dict of
/// attributes. Tensor attributes become `path.name`; child modules are walked with `path.name`.
struct TorchScriptWalker {
    let file: String
    let limits: PickleLimits
    let declarations: TorchScriptDeclarations
    private(set) var tensors: [(name: String, tensor: TorchTensorRef)] = []
    private var visited = 0

    init(file: String, limits: PickleLimits, declarations: TorchScriptDeclarations) {
        self.file = file
        self.limits = limits
        self.declarations = declarations
    }

    mutating func walk(root: PickleValue) throws {
        guard case .object(let module) = root else {
            throw WeightsError(.format, file: file, at: "data.pkl", "TorchScript root is a \(root.kindName), not a module object")
        }
        try walk(module, path: "", depth: 1)
    }

    private mutating func walk(_ module: PickleObject, path: String, depth: Int) throws {
        guard depth <= limits.maxNesting else {
            throw WeightsError(.limit, file: file, at: "module '\(path)'", "modules nested more than \(limits.maxNesting) deep")
        }
        guard case .dict(let attributes)? = module.state else { return }  // custom __getstate__: no weights we can name
        let keep = module.classSymbol.flatMap { declarations.stateNames(of: $0) }
        for (key, value) in attributes.entries {
            visited += 1
            guard visited <= limits.maxNodes else {
                throw WeightsError(.limit, file: file, at: "module '\(path)'", "more than \(limits.maxNodes) attributes visited")
            }
            guard let name = key.stringValue else { continue }
            let fullName = path.isEmpty ? name : path + "." + name
            switch value {
            case .tensor(let tensor):
                if keep == nil || keep?.contains(name) == true { tensors.append((fullName, tensor)) }
            case .object(let child):
                try walk(child, path: fullName, depth: depth + 1)
            default:
                continue
            }
        }
    }
}
