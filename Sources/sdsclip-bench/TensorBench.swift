// Benchmark cases of this area; see main.swift for the protocol.
enum TensorBench {
    static let cases: [BenchCase] = []
}
