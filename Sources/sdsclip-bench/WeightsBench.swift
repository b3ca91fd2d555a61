// Benchmark cases of this area; see main.swift for the protocol.
enum WeightsBench {
    static let cases: [BenchCase] = []
}
