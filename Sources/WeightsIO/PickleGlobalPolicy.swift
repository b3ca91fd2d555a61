/// What a pickle global would be if Python unpickled the file. We never import or call anything;
/// the verdict is for the person deciding whether the file may be given to `torch.load`.
public enum PickleGlobalVerdict: Equatable, Sendable {
    /// On the allowlist of inert data constructors (torch's `weights_only` set and the few extras
    /// our readers interpret).
    case safe
    /// Not known to be harmful, not known to be inert: `torch.load(weights_only=False)` would import
    /// and maybe call it (Lightning callbacks, `argparse.Namespace`, omegaconf nodes, TorchScript classes).
    case unknown
    /// Resolves to something that can run code, load native code, import modules, reach the
    /// network or write files. The reason names the global.
    case dangerous(String)
}

/// Classifies `module` + `name` the way Python resolves them: the module (Python 2 names mapped as
/// `fix_imports` does), then each dotted step of the name as an attribute (protocol 4 qualnames),
/// so `genericpath.os.system` is `os.system`. Three layers: an allowlist for "safe", a classifier of
/// dangerous modules, names and attribute walks, and "unknown" for everything else.
public enum PickleGlobalPolicy {
    public static func verdict(for symbol: PickleSymbol) -> PickleGlobalVerdict {
        let module = pythonThreeModule(symbol.module)
        if PickleGlobalAllowlist.contains(module: module, name: symbol.name) { return .safe }
        if let reason = PickleDangerClassifier.reason(module: module, name: symbol.name, written: symbol) {
            return .dangerous(reason)
        }
        return .unknown
    }

    /// `_compat_pickle.IMPORT_MAPPING` for the modules that matter here: Python 3 unpickles protocol
    /// 0–2 files with these renamed, so `__builtin__.eval` is `builtins.eval`.
    static func pythonThreeModule(_ module: String) -> String {
        let head = module.prefix { $0 != "." }
        guard let mapped = pythonTwoModules[String(head)] else { return module }
        return mapped + module.dropFirst(head.count)
    }

    private static let pythonTwoModules: [String: String] = [
        "__builtin__": "builtins", "exceptions": "builtins", "copy_reg": "copyreg", "cPickle": "pickle",
        "commands": "subprocess", "thread": "_thread", "dummy_thread": "_dummy_thread", "urllib2": "urllib.request",
        "httplib": "http.client", "SocketServer": "socketserver", "cStringIO": "io", "StringIO": "io",
        "Queue": "queue", "UserDict": "collections", "UserList": "collections",
    ]
}

/// Names known to be inert data constructors, in the spirit of torch's `weights_only` unpickler
/// (`torch/_weights_only_unpickler.py`, formats.md §5.1) plus what the TorchScript pickler writes.
enum PickleGlobalAllowlist {
    static func contains(module: String, name: String) -> Bool {
        guard !name.contains(".") else { return false }  // an attribute walk is never on the list
        switch module {
        case "torch":
            return name.hasSuffix("Storage") && !name.hasPrefix("_") || torchNames.contains(name)
                || TorchTypeNames.dtypes[name] != nil || extraTorchDTypes.contains(name)
        case "torch.cuda":
            return name.hasSuffix("Storage") && !name.hasPrefix("_")
        case "torch.storage":
            return ["UntypedStorage", "TypedStorage", "_UntypedStorage", "_LegacyStorage"].contains(name)
        case "torch._utils":
            return rebuildFunctions.contains(name)
        case "torch._tensor":
            return name == "_rebuild_from_type_v2"
        case "torch.nn.parameter":
            return name == "Parameter" || name == "UninitializedParameter" || name == "Buffer"
        case "torch.serialization":
            return name == "_get_layout"
        case "torch.jit._pickle":
            return name == "restore_type_tag" || name.hasPrefix("build_")
        case "collections":
            return name == "OrderedDict" || name == "Counter"
        case "_codecs":
            return name == "encode"
        case "builtins":
            return ["set", "frozenset", "bytearray", "complex", "slice", "range"].contains(name)
        case "numpy":
            return numpyScalarTypes.contains(name) || name == "ndarray" || name == "dtype"
        case "numpy.core.multiarray", "numpy._core.multiarray":
            return name == "_reconstruct" || name == "scalar"
        case "numpy.dtypes":  // `Float32DType` and friends (numpy ≥ 1.25)
            return name.hasSuffix("DType") && !name.hasPrefix("_") && name.allSatisfy { $0.isLetter || $0.isNumber }
        default:
            return false
        }
    }

    static let rebuildFunctions: Set<String> = [
        "_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_tensor_v3", "_rebuild_parameter",
        "_rebuild_parameter_with_state", "_rebuild_qtensor", "_rebuild_sparse_tensor",
        "_rebuild_meta_tensor_no_storage", "_rebuild_nested_tensor", "_rebuild_wrapper_subclass",
        "_rebuild_device_tensor_from_numpy", "_rebuild_device_tensor_from_cpu_tensor",
    ]

    /// `torch.Size`, `torch.Tensor`, the tensor classes, layouts, memory formats and qschemes.
    static let torchNames: Set<String> = [
        "Size", "Tensor", "device", "dtype", "layout", "memory_format", "strided", "sparse_coo", "sparse_csr",
        "sparse_csc", "sparse_bsr", "sparse_bsc", "_mkldnn", "contiguous_format", "channels_last",
        "channels_last_3d", "preserve_format", "per_tensor_affine", "per_tensor_symmetric", "per_channel_affine",
        "per_channel_symmetric", "per_channel_affine_float_qparams",
        "FloatTensor", "DoubleTensor", "HalfTensor", "BFloat16Tensor", "ByteTensor", "CharTensor", "ShortTensor",
        "IntTensor", "LongTensor", "BoolTensor",
    ]

    /// dtypes torch allows that our readers cannot hold (they fail later as unsupported, not as unsafe).
    static let extraTorchDTypes: Set<String> = [
        "complex128", "cdouble", "complex32", "chalf", "qint8", "quint8", "qint32", "quint4x2", "quint2x4",
        "float8_e4m3fnuz", "float8_e5m2fnuz", "float8_e8m0fnu", "float4_e2m1fn_x2", "bits8", "bits16",
        "bits1x8", "bits2x4", "bits4x2", "uint1", "uint2", "uint3", "uint4", "uint5", "uint6", "uint7",
        "int1", "int2", "int3", "int4", "int5", "int6", "int7",
    ]

    /// numpy scalar types, beside `numpy.ndarray`, `numpy.dtype` and `multiarray._reconstruct` / `scalar`
    /// (array and scalar reconstruction: what SD's Lightning checkpoints carry).
    static let numpyScalarTypes: Set<String> = [
        "bool_", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float16", "float32",
        "float64", "complex64", "complex128", "longlong", "ulonglong", "intc", "uintc", "half", "single",
        "double", "longdouble", "csingle", "cdouble", "str_", "bytes_",
    ]
}

/// The refusal side: modules whose every global is dangerous, single dangerous names, and the rule
/// for dotted attribute walks. Incomplete by nature (it is a blocklist), which is why anything it does
/// not know stays "unknown", never "safe".
enum PickleDangerClassifier {
    static func reason(module: String, name: String, written: PickleSymbol) -> String? {
        let steps = name.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        if let capability = moduleCapability(module) {
            return "global '\(written)' is in module '\(capability.module)', which \(capability.what)"
        }
        if let what = dangerousNames["\(module).\(steps[0])"] {
            return "global '\(written)' \(what)"
        }
        if module == "uuid", steps[0].hasPrefix("_") {  // uuid's helpers run ifconfig & co.; uuid.UUID is data
            return "global '\(written)' is a private helper of 'uuid', which \(processes)"
        }
        if module == "builtins", !inertBuiltins.contains(steps[0]) {
            return "global '\(written)' is a builtin other than the inert types (builtins holds eval, exec, open, getattr and __import__)"
        }
        if steps[0].hasPrefix("__"), steps[0].hasSuffix("__"), !["__newobj__", "__newobj_ex__"].contains(steps[0]) {
            return "global '\(written)' reaches the interpreter internal '\(steps[0])'"
        }
        guard steps.count > 1 else { return nil }
        return attributeWalkReason(module: module, steps: steps, written: written)
    }

    /// Protocol 4 resolves `a.b.c` attribute by attribute, so a dotted name reaches whatever a module
    /// imported (`torch.os`, `collections._sys`) or a class's methods (`pathlib.Path.write_text`).
    /// Only nested classes (every step a public CapWords name) are left as unknown.
    static func attributeWalkReason(module: String, steps: [String], written: PickleSymbol) -> String? {
        for (index, step) in steps.enumerated() {
            let alias = String(step.drop { $0 == "_" })
            if let capability = moduleCapability(alias) {
                let target = ([alias] + steps[(index + 1)...]).joined(separator: ".")
                return "global '\(written)' resolves through the attribute '\(step)' to '\(target)'; module '\(capability.module)' \(capability.what)"
            }
        }
        guard steps.allSatisfy({ $0.first?.isUppercase == true }) else {
            return "global '\(written)' walks past '\(module).\(steps[0])' to \(steps.dropFirst().map { "'\($0)'" }.joined(separator: ", ")): a dotted name that is not a nested class is a method or a module's import, which can run code or write files"
        }
        return nil
    }

    struct Capability {
        let module: String
        let what: String
    }

    /// The dangerous module that `module` is, or lies inside, with what it can do.
    static func moduleCapability(_ module: String) -> Capability? {
        var prefix = Substring(module)
        while true {
            if let what = dangerousModules[String(prefix)] { return Capability(module: String(prefix), what: what) }
            guard let dot = prefix.lastIndex(of: ".") else { return nil }
            prefix = prefix[..<dot]
        }
    }

    private static let runsCode = "can run code"
    private static let processes = "can start processes or control this one"
    private static let nativeCode = "can load native code"
    private static let imports = "can import modules"
    private static let files = "can write or delete files"
    private static let network = "can reach the network"
    private static let unpickles = "unpickles more data with code execution"

    static let dangerousModules: [String: String] = {
        var table: [String: String] = [:]
        func add(_ names: [String], _ what: String) { for name in names { table[name] = what } }
        add(["os", "posix", "nt", "posixpath", "ntpath", "subprocess", "_posixsubprocess", "pty", "sys", "signal",
             "multiprocessing", "_multiprocessing", "concurrent", "threading", "_thread", "_dummy_thread", "asyncio",
             "_winapi", "msvcrt", "resource", "fcntl", "termios", "platform", "_osx_support", "_aix_support"], processes)
        add(["runpy", "code", "codeop", "bdb", "pdb", "timeit", "cProfile", "profile", "trace", "doctest", "pydoc",
             "idlelib", "lib2to3", "_pyrepl", "_xxsubinterpreters", "_interpreters", "_xxinterpchannels",
             "_interpchannels", "interpreters", "unittest", "test", "ensurepip", "pip", "venv", "distutils",
             "setuptools", "numpy.f2py", "numpy.testing", "numpy.distutils", "torch.utils.cpp_extension",
             "torch.utils.bottleneck", "torch._inductor", "torch._dynamo", "torch.fx", "torch.package",
             "torch.jit", "torch._ops", "torch.ops", "torch.library", "torch.hub", "torch.utils.collect_env",
             "torch.jit.unsupported_tensor_ops", "logging.config", "webbrowser", "antigravity"], runsCode)
        add(["ctypes", "_ctypes", "cffi", "_cffi_backend", "numpy.ctypeslib"], nativeCode)
        add(["importlib", "_frozen_importlib", "_frozen_importlib_external", "_imp", "imp", "zipimport",
             "pkgutil", "site", "modulefinder"], imports)
        add(["pickle", "_pickle", "pickletools", "shelve", "marshal", "dill", "cloudpickle", "joblib",
             "torch.serialization", "numpy.lib.npyio", "numpy.lib._npyio_impl", "numpy.lib.format",
             "numpy.lib.format_impl", "numpy.lib._format_impl", "pandas.io"], unpickles)
        add(["shutil", "tempfile", "glob", "io", "_io", "_pyio", "fileinput", "mmap", "zipfile", "tarfile",
             "gzip", "bz2", "lzma", "sqlite3", "_sqlite3", "dbm", "logging.handlers", "numpy.lib._datasource",
             "filecmp", "mailbox"], files)
        add(["socket", "_socket", "ssl", "_ssl", "socketserver", "http", "urllib", "urllib3", "requests", "httpx",
             "aiohttp", "ftplib", "smtplib", "poplib", "imaplib", "nntplib", "telnetlib", "xmlrpc", "select",
             "selectors"], network)
        return table
    }()

    /// Single globals outside the modules above.
    static let dangerousNames: [String: String] = {
        var table: [String: String] = [:]
        func add(_ names: [String], _ what: String) { for name in names { table[name] = what } }
        add(["operator.attrgetter", "operator.itemgetter", "operator.methodcaller", "_operator.attrgetter",
             "_operator.itemgetter", "_operator.methodcaller", "functools.partial", "functools.reduce",
             "_functools.partial", "_functools.reduce", "types.CodeType", "types.FunctionType", "types.MethodType",
             "types.LambdaType", "types.ModuleType", "copyreg._reconstructor_unsafe", "pandas.read_pickle",
             "pandas.eval", "torch.storage._load_from_bytes", "torch.load", "torch.save",
             "torch.utils.data.datapipes.utils.decoder.basichandlers"],
            "can run code when unpickled")
        add(["logging.FileHandler", "logging.basicConfig", "codecs.open", "numpy.save", "numpy.savez",
             "numpy.savez_compressed", "numpy.savetxt", "numpy.memmap", "numpy.lib.format.open_memmap", "torch.from_file",
             "pandas.to_pickle"], "can write files")
        add(["numpy.load", "numpy.loadtxt", "numpy.genfromtxt", "numpy.fromfile", "numpy.fromregex",
             "numpy.DataSource", "pandas.read_csv", "pandas.read_json", "pandas.read_html", "pandas.read_table",
             "pandas.read_excel", "pandas.read_sql", "pandas.read_parquet"],
            "reads files or URLs (and numpy.load / pandas.read_pickle unpickle them)")
        return table
    }()

    /// Builtins that only build plain data.
    static let inertBuiltins: Set<String> = [
        "set", "frozenset", "bytearray", "complex", "slice", "range", "tuple", "list", "dict", "int", "float",
        "bool", "str", "bytes", "object", "NotImplemented", "Ellipsis", "None", "True", "False",
    ]
}
