import ArgumentParser
import WeightsIO

/// `--strict`, shared by every command that reads weights. Dangerous pickle globals are always
/// refused; with --strict so are unknown ones, leaving only files whose every global is on the
/// allowlist of inert data constructors.
struct WeightSafetyOptions: ParsableArguments {
    @Flag(help: "Refuse torch pickles with unknown globals too (not on the allowlist of inert data constructors, e.g. Lightning callbacks), not only dangerous ones.")
    var strict = false

    var readOptions: ReadOptions { ReadOptions(strictGlobals: strict) }

    /// For commands whose model loaders open the weights themselves: under --strict, read each given
    /// path first (pickles are parsed, tensor data is not touched) so a refusal comes before any work.
    func admit(_ paths: [String?]) throws {
        guard strict else { return }
        for path in paths.compactMap({ $0 }) {
            _ = try WeightsReader.open(path, options: readOptions)
        }
    }
}
