import COpenBLAS
import CTensorKernels
import Foundation

/// Keeps OpenBLAS off its generic kernels on CPUs newer than it knows.
///
/// OpenBLAS (Debian ships 0.3.21) picks its kernels from the CPU's model number when it loads, and a
/// model it has never seen (Sapphire and Emerald Rapids among them) gets the generic SSE3 "Prescott"
/// kernels: sgemm at about a sixth of the AVX-512 kernels' speed on the same core (26 against 150
/// GFLOP/s measured on an Emerald Rapids VM). OpenBLAS only reads its choice, `OPENBLAS_CORETYPE`, while
/// it loads, so the executables re-run themselves once with the variable set (`ProcessSetup`). A value the user set,
/// even an empty one, is never touched.
public enum BLASKernelSelection {
    /// The environment variable OpenBLAS reads its kernel choice from.
    public static let variable = "OPENBLAS_CORETYPE"

    /// The kernel set to ask for, or nil to leave OpenBLAS's own choice: only when the user chose
    /// nothing and OpenBLAS fell back to its generic kernels on a CPU with AVX2 (`cpuLevel` 1) or
    /// Skylake-X's AVX-512 (`cpuLevel` 2).
    public static func preferredCore(environment: [String: String], loadedCore: String, cpuLevel: Int) -> String? {
        guard environment[variable] == nil, loadedCore.lowercased() == "prescott" else { return nil }
        switch cpuLevel {
        case 2...: return "SkylakeX"
        case 1: return "Haswell"
        default: return nil
        }
    }

    /// The kernel set OpenBLAS loaded ("Haswell", "SkylakeX", "Prescott", …).
    public static var loadedCore: String {
        guard let name = openblas_get_corename() else { return "" }
        return String(cString: name).trimmingCharacters(in: .whitespaces)
    }
}
