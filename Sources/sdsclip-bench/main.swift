import Foundation
import Tensors

// sdsclip-bench: the Swift side of the benchmarks in tools/bench/. Each case prints one JSON object
// per measurement on stdout ({"case": …, "seconds": …, …}); the Python drivers run the PyTorch
// reference in the same run and print the ratios. Build with `swift build -c release`.

/// A benchmark case: a name, a one-line description, and a body taking the remaining arguments.
struct BenchCase: Sendable {
    let name: String
    let summary: String
    let run: @Sendable ([String]) throws -> Void
}

/// Every case, gathered from the per-area files.
let allCases: [BenchCase] = WeightsBench.cases + TensorBench.cases + ModelBench.cases + StableDiffusionBench.cases + SDSBench.cases
    + DiffusionScoreBench.cases + BFloat16Bench.cases

func usage() -> String {
    "usage: sdsclip-bench CASE [ARGS…]\n\ncases:\n" + allCases.map { "  \($0.name.padding(toLength: 24, withPad: " ", startingAt: 0)) \($0.summary)" }.joined(separator: "\n")
}

/// Emits one measurement as a JSON line.
func report(_ fields: [String: Any]) {
    if let data = try? JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys]) {
        print(String(decoding: data, as: UTF8.self))
        fflush(nil)  // flushes every stream; avoids touching the global `stdout` under strict concurrency
    }
}

/// Wall-clock seconds of the fastest of `repeats` runs (after one warm-up unless `warmup` is false).
func bestTime(repeats: Int, warmup: Bool = true, _ body: () throws -> Void) rethrows -> Double {
    if warmup { try body() }
    var best = Double.infinity
    for _ in 0..<max(repeats, 1) {
        let start = DispatchTime.now().uptimeNanoseconds
        try body()
        best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
    }
    return best
}

/// Peak resident set size of this process so far, in bytes (VmHWM).
func peakResidentBytes() -> Int {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
    for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
        let kb = line.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
        return kb * 1024
    }
    return 0
}

// As sdsclip does: OpenBLAS's generic kernels on a CPU it does not know, or libgomp's spinning threads
// beside the engine's workers, would distort every figure.
ProcessSetup.reexecIfNeeded()
// As sdsclip does: freed activation buffers stay mapped for the next step.
HeapMemoryReuse.apply(environment: ProcessInfo.processInfo.environment)
let arguments = Array(CommandLine.arguments.dropFirst())
guard let name = arguments.first, let benchCase = allCases.first(where: { $0.name == name }) else {
    FileHandle.standardError.write(Data((usage() + "\n").utf8))
    exit(arguments.isEmpty ? 0 : 64)
}
do {
    try benchCase.run(Array(arguments.dropFirst()))
} catch {
    FileHandle.standardError.write(Data("sdsclip-bench \(name): \(error)\n".utf8))
    exit(1)
}
