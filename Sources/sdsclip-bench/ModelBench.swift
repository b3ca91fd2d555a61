// Benchmark cases of this area; see main.swift for the protocol.
enum ModelBench {
    static let cases: [BenchCase] = []
}
