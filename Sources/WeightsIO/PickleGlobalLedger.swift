/// The verdict on the pickle globals of a file that was read. Dangerous globals never get here: they
/// refuse the file while it is read.
public struct PickleGlobalsReport: Sendable, Equatable {
    /// Globals neither allowlisted nor dangerous, sorted: what `torch.load(weights_only=False)` would
    /// import. Empty means every global is on the allowlist ("safe").
    public let unknown: [String]

    public init(unknown: [String]) { self.unknown = Array(Set(unknown)).sorted() }

    public var isSafe: Bool { unknown.isEmpty }

    /// The unknown globals for people: TorchScript module classes (`__torch__.*`, compiled from the
    /// archive's own code/, one per mangled variant) are counted instead of listed.
    public var summary: String {
        let scripted = unknown.filter { $0.hasPrefix("__torch__.") }
        let listed = unknown.filter { !$0.hasPrefix("__torch__.") }
            + (scripted.isEmpty ? [] : ["__torch__.* (\(scripted.count) TorchScript classes from the archive's code/)"])
        return listed.joined(separator: ", ")
    }

    /// One report for several files (a pipeline folder); nil when none of them had a pickle.
    public static func merging(_ reports: [PickleGlobalsReport?]) -> PickleGlobalsReport? {
        let present = reports.compactMap { $0 }
        return present.isEmpty ? nil : PickleGlobalsReport(unknown: present.flatMap(\.unknown))
    }
}

/// Collects the unknown globals (`PickleGlobalVerdict.unknown`) seen by every pickle of one file.
final class PickleGlobalLedger {
    private var names: Set<String> = []

    func note(_ symbol: PickleSymbol) { names.insert(symbol.description) }

    var report: PickleGlobalsReport { PickleGlobalsReport(unknown: Array(names)) }
}
