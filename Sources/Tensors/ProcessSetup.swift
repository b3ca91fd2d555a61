import CTensorKernels
import Foundation

/// libgomp's idle threads spin after each parallel region before they sleep (with `OMP_WAIT_POLICY`
/// unset, GOMP_SPINCOUNT's 300 000 rounds). oneDNN's bf16 routes run on that team; between oneDNN calls
/// sdsclip's own workers run on the same cores, and the spinning took 10–13 % of a bf16 SDS step's
/// CPU samples on a 2-vCPU AMX VM. `passive` makes them sleep at once: the step ran ~5 % faster.
public enum OpenMPWaitPolicy {
    public static let variable = "OMP_WAIT_POLICY"

    /// "passive" when oneDNN may run (the CPU has bf16 units) and the user set neither the policy nor
    /// libgomp's spin count; nil otherwise (a value the user set, even an empty one, is never touched).
    public static func preferred(environment: [String: String], hasBFloat16Units: Bool) -> String? {
        guard hasBFloat16Units, environment[variable] == nil, environment["GOMP_SPINCOUNT"] == nil else { return nil }
        return "passive"
    }
}

/// Settings that libraries read only while they load (OpenBLAS's kernel choice, libgomp's wait policy),
/// applied by re-running the process once with them in its environment.
public enum ProcessSetup {
    /// The variables to add, in a fixed order; empty when the process can go on as it is.
    public static func additions(environment: [String: String], loadedCore: String, cpuLevel: Int,
                                 hasBFloat16Units: Bool) -> [(name: String, value: String)] {
        var result: [(name: String, value: String)] = []
        if let core = BLASKernelSelection.preferredCore(environment: environment, loadedCore: loadedCore, cpuLevel: cpuLevel) {
            result.append((BLASKernelSelection.variable, core))
        }
        if let policy = OpenMPWaitPolicy.preferred(environment: environment, hasBFloat16Units: hasBFloat16Units) {
            result.append((OpenMPWaitPolicy.variable, policy))
        }
        return result
    }

    /// Re-executes this process (same arguments, same PID) with `additions` set; returns when there is
    /// nothing to add or the exec fails (the run then goes on as it is). Every addition is a variable
    /// that was unset, so the re-run process finds nothing to add. Call it first thing in `main`,
    /// before any thread starts.
    public static func reexecIfNeeded() {
        let additions = additions(environment: ProcessInfo.processInfo.environment, loadedCore: BLASKernelSelection.loadedCore,
                                  cpuLevel: Int(sds_cpu_blas_level()), hasBFloat16Units: BFloat16Hardware.isPresent)
        guard !additions.isEmpty else { return }
        for (name, value) in additions { setenv(name, value, 1) }
        execv("/proc/self/exe", CommandLine.unsafeArgv)
        for (name, _) in additions { unsetenv(name) }   // exec failed: leave the environment as it was for child processes
    }
}
