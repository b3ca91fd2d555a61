import Checkpoints
import Foundation
import Models
import Tensors

// CLIP throughput cases; tools/bench/bench_clip.py runs them next to open_clip on PyTorch CPU.
//
// The model is a released size (b32 = ViT-B/32, b16 = ViT-B/16, QuickGELU as OpenAI's) with seeded random
// weights at real size; inputs are random pixels [B, 3, 224, 224] or B rows of 77 token ids (the full
// context, as open_clip's encode_text always runs). Timed: encodeImage / encodeText under withNoGrad,
// best of REPEATS after one warm-up. Threads: SDSCLIP_THREADS (GEMM and parallel loops).
// clip-text is the embedding path (causal attention lets it stop at the last end token);
// clip-text-states runs all 77 positions, the same work as open_clip's encode_text.
enum ModelBench {
    static let cases: [BenchCase] = [
        BenchCase(name: "clip-image", summary: "b32|b16 BATCH [REPEATS]: CLIP image embeddings; images/s") { arguments in
            let (known, batch, repeats) = try parse(arguments, usage: "clip-image b32|b16 BATCH [REPEATS]")
            let model = try CLIPModel(RandomParameterSource(seed: 1), configuration: known.configuration)
            let size = known.imageSize
            let pixels = Tensor.randn(shape: [batch, 3, size, size], seed: 2)
            var shape: [Int] = []
            let seconds = try withNoGrad {
                try bestTime(repeats: repeats) { shape = try model.encodeImage(pixels).shape }
            }
            report(["case": "clip-image", "model": known.name, "batch": batch, "seconds": seconds,
                    "throughput": Double(batch) / seconds, "unit": "images/s", "output": shape, "threads": Threading.threadCount])
        },
        BenchCase(name: "clip-text", summary: "b32|b16 BATCH [REPEATS]: CLIP text embeddings (77 tokens); texts/s") { arguments in
            let (known, batch, repeats) = try parse(arguments, usage: "clip-text b32|b16 BATCH [REPEATS]")
            let model = try CLIPModel(RandomParameterSource(seed: 1), configuration: known.configuration)
            let ids = tokenRows(batch: batch, context: known.configuration.text.contextLength)
            var shape: [Int] = []
            let seconds = try withNoGrad {
                try bestTime(repeats: repeats) { shape = try model.encodeText(ids).shape }
            }
            report(["case": "clip-text", "model": known.name, "batch": batch, "seconds": seconds,
                    "throughput": Double(batch) / seconds, "unit": "texts/s", "output": shape, "threads": Threading.threadCount])
        },
        BenchCase(name: "clip-text-states", summary: "b32|b16 BATCH [REPEATS]: all 77 text hidden states (no pooling shortcut); texts/s") { arguments in
            let (known, batch, repeats) = try parse(arguments, usage: "clip-text-states b32|b16 BATCH [REPEATS]")
            let model = try CLIPModel(RandomParameterSource(seed: 1), configuration: known.configuration)
            let ids = tokenRows(batch: batch, context: known.configuration.text.contextLength)
            var shape: [Int] = []
            let seconds = try withNoGrad {
                try bestTime(repeats: repeats) { shape = try model.text.hiddenStates(ids).shape }
            }
            report(["case": "clip-text-states", "model": known.name, "batch": batch, "seconds": seconds,
                    "throughput": Double(batch) / seconds, "unit": "texts/s", "output": shape, "threads": Threading.threadCount])
        },
    ]

    static let models = ["b32": "ViT-B/32", "b16": "ViT-B/16"]

    static func parse(_ arguments: [String], usage: String) throws -> (KnownCLIP, Int, Int) {
        guard arguments.count >= 2, let name = models[arguments[0]],
              let known = CLIPArchitecture.known.first(where: { $0.name == name }),
              let batch = Int(arguments[1]), batch > 0 else { throw BenchUsage(usage) }
        let repeats = arguments.count > 2 ? max(Int(arguments[2]) ?? 5, 1) : 5
        return (known, batch, repeats)
    }

    /// SOT, a few words of varying length, EOT (the largest id, where pooling happens), zero padding.
    static func tokenRows(batch: Int, context: Int) -> [[Int]] {
        (0..<batch).map { row in
            let words = 5 + (row * 7) % 20
            var ids = [49406] + (0..<words).map { 400 + ($0 * 131 + row * 17) % 40000 } + [49407]
            ids += Array(repeating: 0, count: context - ids.count)
            return ids
        }
    }
}
