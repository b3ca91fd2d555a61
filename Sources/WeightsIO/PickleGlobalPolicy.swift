/// Globals that load or run code if Python unpickles the file. We never call anything, but a file
/// that names one of these is hostile or broken, so the whole file is refused (kind `.unsafe`).
/// The list follows picklescan's `_unsafe_globals` plus the bypasses documented in formats.md §5.2;
/// a blocklist is never complete, which is why everything else stays inert rather than "allowed".
enum PickleGlobalPolicy {
    /// Every global in these modules (and their submodules) is refused.
    static let forbiddenModules: Set<String> = [
        "os", "posix", "nt", "posixpath", "ntpath", "sys", "subprocess", "_posixsubprocess", "socket", "ssl",
        "runpy", "pickle", "_pickle", "cPickle", "pickletools", "shelve", "marshal", "shutil", "asyncio",
        "bdb", "pdb", "pty", "ctypes", "commands", "code", "codeop", "importlib", "imp", "zipimport",
        "webbrowser", "httplib", "http", "urllib", "urllib2", "requests", "aiohttp", "ftplib", "smtplib",
        "telnetlib", "pip", "ensurepip", "venv", "timeit", "cProfile", "profile", "pydoc", "uuid", "idlelib",
        "lib2to3", "multiprocessing", "cloudpickle", "dill", "joblib", "_osx_support", "_aix_support", "_pyrepl",
        "numpy.f2py", "numpy.testing", "distutils", "setuptools", "test", "torch.jit.unsupported_tensor_ops",
        "torch.utils.bottleneck", "tempfile", "glob", "signal", "threading", "_thread",
    ]

    /// Single globals that are refused.
    static let forbiddenGlobals: Set<String> = {
        let builtins = ["eval", "exec", "execfile", "compile", "getattr", "setattr", "delattr", "apply", "open",
                        "breakpoint", "__import__", "globals", "locals", "vars", "input", "reload", "file", "help"]
        var names = Set(builtins.flatMap { ["builtins.\($0)", "__builtin__.\($0)"] })
        names.formUnion([
            "operator.attrgetter", "operator.itemgetter", "operator.methodcaller",
            "_operator.attrgetter", "_operator.itemgetter", "_operator.methodcaller",
            "functools.partial", "functools.reduce", "_functools.partial", "_functools.reduce",
            "types.CodeType", "types.FunctionType", "types.MethodType", "types.LambdaType",
            "logging.FileHandler", "_io.FileIO", "io.FileIO", "io.open", "_io.open",
            "pkgutil.resolve_name", "pkgutil.get_data", "doctest.debug_script", "doctest.script_from_examples",
            "imaplib.IMAP4_stream", "trace.Trace.run", "trace.Trace.runctx",
            "numpy.load", "numpy.ctypeslib.load_library", "numpy.lib.npyio.load", "pandas.read_pickle", "pandas.read_csv",
            "torch.load", "torch.serialization.load", "torch.hub.load", "torch.hub.load_state_dict_from_url",
            "torch.jit.load", "torch._inductor.codecache.compile_file", "torch.utils.collect_env.run",
            "torch._dynamo.guards.GuardBuilder.get", "torch.fx.experimental.symbolic_shapes.ShapeEnv.evaluate_guards_expression",
            "torch.utils._config_module.ConfigModule.load_config", "torch.utils.data.datapipes.utils.decoder.basichandlers",
            "copyreg._reconstructor_unsafe",
        ])
        return names
    }()

    /// Why `symbol` is refused, or nil when it may stay an inert symbol.
    static func refusal(for symbol: PickleSymbol) -> String? {
        let module = symbol.module
        var prefix = Substring(module)
        while true {
            if forbiddenModules.contains(String(prefix)) {
                return "global '\(symbol)' belongs to module '\(prefix)', which can run code or touch the system"
            }
            guard let dot = prefix.lastIndex(of: ".") else { break }
            prefix = prefix[..<dot]
        }
        if forbiddenGlobals.contains(symbol.description) {
            return "global '\(symbol)' can run code when unpickled"
        }
        // Protocol 4 resolves dotted names attribute by attribute; dunder steps reach interpreter internals.
        let parts = symbol.name.split(separator: ".", omittingEmptySubsequences: false)
        if parts.count > 1, parts.dropFirst().contains(where: { $0.hasPrefix("__") || $0.isEmpty }) {
            return "global '\(symbol)' walks private attributes"
        }
        return nil
    }
}
