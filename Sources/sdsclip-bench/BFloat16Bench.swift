import Foundation
import Tensors

// bf16 GEMM routes next to the f32 ones at one shape; tools/bench/bench_bf16.py runs the torch side.
// All compute x [M, K] · Wᵀ (W [N, K], a linear weight): the bf16 routes include rounding x to bf16 on
// every call (the weights are converted once, outside the timing), the f32 ones take x as is.
enum BFloat16Bench {
    static let cases: [BenchCase] = [
        BenchCase(name: "bf16-gemm", summary: "M N K [REPEATS]: GFLOP/s of oneDNN bf16, own AVX512-BF16 kernel, engine f32 gemm, oneDNN f32") { arguments in
            guard arguments.count >= 3, let m = Int(arguments[0]), let n = Int(arguments[1]), let k = Int(arguments[2]),
                  m > 0, n > 0, k > 0 else { throw BenchUsage("bf16-gemm M N K [REPEATS]") }
            let repeats = TensorBench.repeatCount(arguments, at: 3)
            let x = Tensor.randn(shape: [m, k], seed: 1), w = Tensor.randn(shape: [n, k], seed: 2, scale: 0.02)
            let matrix = try BFloat16Matrix(w), probe = try OneDNNFloat32Probe(weight: w)
            let wT = try w.transpose(0, 1)
            var c = Tensor(zeros: [m, n])
            let routes: [(String, () throws -> Void)] = [
                ("onednn-bf16", { _ = try matrix.product(x, route: .oneDNN) }),
                ("kernel-bf16", { _ = try matrix.product(x, route: .kernel) }),
                ("engine-fp32", { try GEMMProbe.engine(x, wT, into: &c) }),
                ("onednn-fp32", { try probe.product(x, into: &c) }),
            ]
            let flops = 2.0 * Double(m) * Double(n) * Double(k)
            for (route, body) in routes {
                let time = try TensorBench.measure(repeats: repeats, body)
                report(["case": "bf16-gemm", "route": route, "m": m, "n": n, "k": k, "seconds": time.wall,
                        "cpu_seconds": time.cpu, "gflops": flops / time.wall / 1e9, "threads": Threading.threadCount])
            }
        },
    ]
}
