/// The `__parameters__` / `__buffers__` lists TorchScript writes per class into `code/**/*.py`,
/// keyed by qualified class name (`__torch__.torch.nn.modules.linear.Linear`). Read as text, never run.
struct TorchScriptDeclarations {
    private(set) var stateNames: [String: Set<String>] = [:]

    static func read(_ archive: ZipArchive, prefix: String, limits: PickleLimits) throws -> TorchScriptDeclarations {
        var declarations = TorchScriptDeclarations()
        let codeFolder = prefix + "/code/"
        // Total bytes inflated across all sources, bounded by the archive's own size: torch stores
        // sources uncompressed, and a few KB of DEFLATE must not become hundreds of MB of text.
        let (scaled, overflow) = archive.owner.bytes.count.multipliedReportingOverflow(by: limits.codeBytesPerArchiveByte)
        var budget = min(limits.maxPickleBytes, overflow ? Int.max : TensorShape.saturatingSum(scaled, 1 << 20))
        for entry in archive.entries where entry.name.hasPrefix(codeFolder) && entry.name.hasSuffix(".py") {
            guard entry.uncompressedSize <= budget else {
                throw WeightsError(.limit, file: archive.file, at: "zip member '\(entry.name)'",
                                   "TorchScript sources would inflate past \(budget) more bytes (the budget is \(limits.codeBytesPerArchiveByte)× the archive's size plus 1 MiB)")
            }
            let source = try archive.contents(entry, maxBytes: min(limits.zip.maxInflatedBytes, budget))
            budget -= source.count
            let module = entry.name.dropFirst(codeFolder.count).dropLast(3).replacingOccurrences(of: "/", with: ".")
            declarations.parse(source, module: module)
        }
        return declarations
    }

    /// Names the class declares as parameters or buffers, or nil when its source was not found.
    func stateNames(of symbol: PickleSymbol) -> Set<String>? {
        stateNames[symbol.module + "." + symbol.name]
    }

    mutating func parse(_ source: String, module: String) {
        parse(Array(source.utf8), module: module)
    }

    /// One pass over the bytes, line by line, without splitting the source into an array of lines
    /// or decoding it as text: the work is linear in the source's size.
    mutating func parse(_ source: [UInt8], module: String) {
        var currentClass: String?
        var collecting = false
        var lineStart = 0
        while lineStart <= source.count {
            let lineEnd = source[lineStart...].firstIndex(of: UInt8(ascii: "\n")) ?? source.count
            let line = source[lineStart..<lineEnd]
            lineStart = lineEnd + 1
            if line.starts(with: Self.classKeyword) {
                let name = line.dropFirst(Self.classKeyword.count).prefix { $0 != UInt8(ascii: "(") && $0 != UInt8(ascii: ":") }
                currentClass = module + "." + String(decoding: name, as: UTF8.self)
                collecting = false
                continue
            }
            guard let className = currentClass else { continue }
            let trimmed = line.drop { $0 == UInt8(ascii: " ") }
            if trimmed.starts(with: Self.parametersDeclaration) || trimmed.starts(with: Self.buffersDeclaration) {
                if stateNames[className] == nil { stateNames[className] = [] }  // declared, possibly empty
                collecting = true
            }
            guard collecting else { continue }
            stateNames[className, default: []].formUnion(Self.quotedNames(in: trimmed))
            if trimmed.contains(UInt8(ascii: "]")) { collecting = false }
        }
    }

    private static let classKeyword = Array("class ".utf8)
    private static let parametersDeclaration = Array("__parameters__ = [".utf8)
    private static let buffersDeclaration = Array("__buffers__ = [".utf8)

    private static func quotedNames(in text: ArraySlice<UInt8>) -> [String] {
        var names: [String] = []
        var start: Int?
        for index in text.indices where text[index] == UInt8(ascii: "\"") || text[index] == UInt8(ascii: "'") {
            if let open = start {
                names.append(String(decoding: text[(open + 1)..<index], as: UTF8.self))
                start = nil
            } else {
                start = index
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
    private var budget: FlattenBudget

    init(file: String, limits: PickleLimits, declarations: TorchScriptDeclarations, pickleBytes: Int) {
        self.file = file
        self.limits = limits
        self.declarations = declarations
        self.budget = FlattenBudget(file: file, limits: limits, pickleBytes: pickleBytes)
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
            try budget.visit(at: path)
            guard let name = key.stringValue else { continue }
            switch value {
            case .tensor(let tensor):
                if keep == nil || keep?.contains(name) == true {
                    try budget.name(at: path)
                    tensors.append((try budget.join(path, name), tensor))
                }
            case .object(let child):
                try walk(child, path: try budget.join(path, name), depth: depth + 1)
            default:
                continue
            }
        }
    }
}
