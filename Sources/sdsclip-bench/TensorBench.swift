import Foundation
import Models
import Tensors

// Tensor-engine cases; tools/bench/bench_tensors.py runs each next to its PyTorch equivalent at the same
// thread count (SDSCLIP_THREADS here, torch.set_num_threads there) and prints torch/Swift ratios.
//
// Shapes are the "Tensor engine" issue's: linear 768→3072 on 8×50 tokens; attention with 8 heads, 4096
// tokens, head dim 40 (SD's 64² latent self-attention); conv 3×3 320→320 at 64×64 (padding 1, bias);
// group norm with 32 groups on 320×64×64 (affine); forward + backward of a 12-layer ViT-B/32 encoder
// stack at batch 8 (50 tokens, width 768, 12 heads, MLP 3072, QuickGELU, pre-LN), gradients for every
// parameter and the input. Each reports the best of REPEATS runs after one warm-up (wall seconds and the
// process CPU seconds of that run), and GFLOP/s where the op is GEMM-shaped. Inputs are seeded random
// values; timings do not depend on them.
enum TensorBench {
    static let cases: [BenchCase] = [
        BenchCase(name: "sgemm-rate", summary: "M N K [REPEATS]: raw sgemm GFLOP/s: OpenBLAS 1 thread, OpenBLAS N threads, engine split") { arguments in
            guard arguments.count >= 3, let m = Int(arguments[0]), let n = Int(arguments[1]), let k = Int(arguments[2]),
                  m > 0, n > 0, k > 0 else { throw BenchUsage("sgemm-rate M N K [REPEATS]") }
            let repeats = repeatCount(arguments, at: 3)
            let a = Tensor.randn(shape: [m, k], seed: 1), b = Tensor.randn(shape: [k, n], seed: 2)
            var c = Tensor(zeros: [m, n])
            let flops = 2.0 * Double(m) * Double(n) * Double(k)
            let threads = Threading.threadCount
            let routes: [(String, Int, () throws -> Void)] = [
                ("openblas", 1, { try GEMMProbe.openBLAS(a, b, into: &c, threads: 1) }),
                ("openblas", threads, { try GEMMProbe.openBLAS(a, b, into: &c, threads: threads) }),
                ("engine", threads, { try GEMMProbe.engine(a, b, into: &c) }),
            ]
            for (route, routeThreads, body) in routes where route == "engine" || routeThreads == 1 || threads > 1 {
                let time = try measure(repeats: repeats, body)
                report(["case": "sgemm-rate", "route": route, "m": m, "n": n, "k": k, "seconds": time.wall,
                        "cpu_seconds": time.cpu, "gflops": flops / time.wall / 1e9, "threads": routeThreads])
            }
        },
        BenchCase(name: "linear", summary: "[REPEATS]: linear 768→3072 (+bias) on [8, 50, 768], forward") { arguments in
            let x = Tensor.randn(shape: [8, 50, 768], seed: 1)
            let weight = Tensor.randn(shape: [3072, 768], seed: 2, scale: 0.02), bias = Tensor.randn(shape: [3072], seed: 3)
            try timeForward("linear", flops: 2.0 * 400 * 3072 * 768, repeats: repeatCount(arguments, at: 0)) {
                _ = try Tensors.linear(x, weight: weight, bias: bias)
            }
        },
        BenchCase(name: "attention", summary: "[REPEATS] [bf16]: attention q, k, v [1, 8, 4096, 40], forward (bf16: bf16 products)") { arguments in
            let q = Tensor.randn(shape: [1, 8, 4096, 40], seed: 1), k = Tensor.randn(shape: [1, 8, 4096, 40], seed: 2)
            let v = Tensor.randn(shape: [1, 8, 4096, 40], seed: 3)
            // Two GEMMs of 4096×4096×40 per head.
            try timeForward("attention", flops: 2 * 2.0 * 8 * 4096 * 4096 * 40, repeats: repeatCount(arguments, at: 0)) {
                _ = try Tensors.attention(q, k, v, bfloat16Products: arguments.dropFirst().first == "bf16")
            }
        },
        BenchCase(name: "attention-backward", summary: "[REPEATS] [bf16]: attention q, k, v [1, 8, 4096, 40], forward + backward to q, k and v") { arguments in
            let inputs = (1...3).map { Parameter(Tensor.randn(shape: [1, 8, 4096, 40], seed: UInt64($0)), requiresGrad: true, name: "qkv\($0)") }
            let outputGradient = Tensor.randn(shape: [1, 8, 4096, 40], seed: 4)
            let time = try measure(repeats: repeatCount(arguments, at: 0)) {
                for input in inputs { input.zeroGrad() }
                try Tensors.attention(inputs[0].tensor, inputs[1].tensor, inputs[2].tensor,
                                      bfloat16Products: arguments.dropFirst().first == "bf16").backward(gradient: outputGradient)
            }
            // Forward: two 4096×4096×40 GEMMs per head; backward: five (the scores are recomputed).
            report(["case": "attention-backward", "seconds": time.wall, "cpu_seconds": time.cpu,
                    "gflops": 7 * 2.0 * 8 * 4096 * 4096 * 40 / time.wall / 1e9, "threads": Threading.threadCount])
        },
        BenchCase(name: "conv3x3", summary: "[REPEATS]: conv2d 3×3 320→320, padding 1, bias, on [1, 320, 64, 64], forward") { arguments in
            let x = Tensor.randn(shape: [1, 320, 64, 64], seed: 1)
            let weight = Tensor.randn(shape: [320, 320, 3, 3], seed: 2, scale: 0.02), bias = Tensor.randn(shape: [320], seed: 3)
            try timeForward("conv3x3", flops: 2.0 * 320 * 4096 * 320 * 9, repeats: repeatCount(arguments, at: 0)) {
                _ = try conv2d(x, weight: weight, bias: bias, stride: 1, padding: 1)
            }
        },
        BenchCase(name: "conv3x3-shape", summary: "C SIDE ALGORITHM [REPEATS]: conv2d 3×3 C→C, padding 1, on [1, C, SIDE, SIDE]; ALGORITHM auto|winograd|shifted|im2col") { arguments in
            guard arguments.count >= 3, let c = Int(arguments[0]), let side = Int(arguments[1]) else {
                throw BenchUsage("conv3x3-shape C SIDE auto|winograd|shifted|im2col [REPEATS]")
            }
            let routing: ConvRouting
            switch arguments[2] {
            case "auto": routing = .standard
            case "winograd": routing = .fastPaths
            case "shifted": routing = .shiftedOnly
            case "im2col": routing = .im2colOnly
            default: throw BenchUsage("conv3x3-shape C SIDE auto|winograd|shifted|im2col [REPEATS]")
            }
            let x = Tensor.randn(shape: [1, c, side, side], seed: 1)
            let weight = Tensor.randn(shape: [c, c, 3, 3], seed: 2, scale: 0.02), bias = Tensor.randn(shape: [c], seed: 3)
            try timeForward("conv3x3-shape", flops: 2.0 * Double(c * c * 9 * side * side), repeats: repeatCount(arguments, at: 3)) {
                _ = try conv2d(x, weight: weight, bias: bias, stride: 1, padding: 1, routing: routing)
            }
        },
        BenchCase(name: "conv3x3-backward", summary: "C SIDE auto|im2col [REPEATS]: input gradient of a frozen conv2d 3×3 C→C, padding 1, on [1, C, SIDE, SIDE]") { arguments in
            guard arguments.count >= 3, let c = Int(arguments[0]), let side = Int(arguments[1]), ["auto", "im2col"].contains(arguments[2]) else {
                throw BenchUsage("conv3x3-backward C SIDE auto|im2col [REPEATS]")
            }
            let routing: ConvRouting = arguments[2] == "im2col" ? .im2colOnly : .standard
            let input = Parameter(Tensor.randn(shape: [1, c, side, side], seed: 1), requiresGrad: true, name: "x")
            let weight = Tensor.randn(shape: [c, c, 3, 3], seed: 2, scale: 0.02), outputGradient = Tensor.randn(shape: [1, c, side, side], seed: 3)
            // Forward (same route in both modes) + backward; the forward alone is `conv3x3-shape`.
            let time = try measure(repeats: repeatCount(arguments, at: 3)) {
                input.zeroGrad()
                try conv2d(input.tensor, weight: weight, stride: 1, padding: 1, routing: routing).backward(gradient: outputGradient)
            }
            report(["case": "conv3x3-backward", "seconds": time.wall, "cpu_seconds": time.cpu, "threads": Threading.threadCount])
        },
        BenchCase(name: "groupnorm", summary: "[REPEATS]: group norm, 32 groups, affine, on [1, 320, 64, 64], forward") { arguments in
            let x = Tensor.randn(shape: [1, 320, 64, 64], seed: 1)
            let weight = Tensor.randn(shape: [320], seed: 2), bias = Tensor.randn(shape: [320], seed: 3)
            try timeForward("groupnorm", flops: nil, repeats: repeatCount(arguments, at: 0)) {
                _ = try groupNorm(x, groups: 32, weight: weight, bias: bias, eps: 1e-5)
            }
        },
        BenchCase(name: "vit-stack", summary: "[REPEATS]: 12-layer ViT-B/32 encoder stack, batch 8 × 50 tokens, forward + backward (all parameters and the input)") { arguments in
            let source = RandomParameterSource(seed: 1)
            let stack = try CLIPEncoder(ParameterScope(source), count: 12, width: 768, heads: 12, mlpWidth: 3072,
                                        activation: .quickGELU, epsilon: 1e-5)
            source.registry.unfreeze(source.registry.entries)
            let parameters = source.registry.entries.map(\.parameter)
            let input = Parameter(Tensor.randn(shape: [8, 50, 768], seed: 2), requiresGrad: true, name: "input")
            let outputGradient = Tensor.randn(shape: [8, 50, 768], seed: 3)
            let time = try measure(repeats: repeatCount(arguments, at: 0)) {
                for parameter in parameters + [input] { parameter.zeroGrad() }
                try stack(input.tensor, mask: .none).backward(gradient: outputGradient)
            }
            // Forward GEMMs: per layer 4 projections (2·400·768²) and the MLP (2·2·400·768·3072), attention
            // 2·2·8·12·50²·64; backward does twice the forward's GEMM work.
            let perLayer = 4 * 2.0 * 400 * 768 * 768 + 2 * 2.0 * 400 * 768 * 3072 + 2 * 2.0 * 8 * 12 * 50 * 50 * 64
            let flops = 3 * 12 * perLayer
            report(["case": "vit-stack", "seconds": time.wall, "cpu_seconds": time.cpu, "gflops": flops / time.wall / 1e9,
                    "threads": Threading.threadCount, "parameters": source.registry.elementCount()])
        },
    ]

    static func repeatCount(_ arguments: [String], at index: Int) -> Int {
        index < arguments.count ? max(Int(arguments[index]) ?? 10, 1) : 10
    }

    /// Times `body` under withNoGrad and reports seconds (and GFLOP/s when `flops` is given).
    static func timeForward(_ name: String, flops: Double?, repeats: Int, _ body: () throws -> Void) throws {
        let time = try withNoGrad { try measure(repeats: repeats, body) }
        var fields: [String: Any] = ["case": name, "seconds": time.wall, "cpu_seconds": time.cpu, "threads": Threading.threadCount]
        if let flops { fields["gflops"] = flops / time.wall / 1e9 }
        report(fields)
    }

    /// The fastest of `repeats` runs after one warm-up: its wall-clock seconds and the process CPU seconds
    /// it used (all threads). On a shared machine the CPU time is the steadier figure.
    static func measure(repeats: Int, _ body: () throws -> Void) rethrows -> (wall: Double, cpu: Double) {
        try body()
        var best = (wall: Double.infinity, cpu: Double.infinity)
        for _ in 0..<max(repeats, 1) {
            let (wallStart, cpuStart) = (clockSeconds(CLOCK_MONOTONIC), clockSeconds(CLOCK_PROCESS_CPUTIME_ID))
            try body()
            let wall = clockSeconds(CLOCK_MONOTONIC) - wallStart, cpu = clockSeconds(CLOCK_PROCESS_CPUTIME_ID) - cpuStart
            if wall < best.wall { best = (wall, cpu) }
        }
        return best
    }

    static func clockSeconds(_ clock: clockid_t) -> Double {
        var time = timespec()
        clock_gettime(clock, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
    }
}
