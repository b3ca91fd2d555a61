import XCTest
@testable import WeightsIO

/// Deterministic mutation fuzzing of the real fixtures: every mutant must either read or fail with a
/// `WeightsError` (a trap, another error type or a hang fails the run), and a mutant that reads must
/// still hand out records whose views fit their storages.
final class TorchMutationFuzzTests: XCTestCase {
    private struct Generator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return state >> 33
        }
        mutating func below(_ bound: Int) -> Int { Int(next() % UInt64(bound)) }
    }

    private func mutate(_ original: [UInt8], _ generator: inout Generator) -> [UInt8] {
        var bytes = original
        switch generator.below(4) {
        case 0:  // flip one byte
            let index = generator.below(bytes.count)
            bytes[index] ^= UInt8(1 + generator.below(255))
        case 1:  // set a byte to an interesting value
            bytes[generator.below(bytes.count)] = [0x00, 0xFF, 0x7F, 0x80, 0x2E, 0x28, 0x71][generator.below(7)]
        case 2:  // truncate
            bytes.removeLast(1 + generator.below(min(bytes.count - 1, 64)))
        default:  // overwrite 4 bytes with a large little-endian value
            let index = generator.below(bytes.count - 4)
            let value = [UInt32.max, 0x7FFF_FFFF, 0x8000_0000, 0x0001_0000][generator.below(4)]
            withUnsafeBytes(of: value.littleEndian) { for (offset, byte) in $0.enumerated() { bytes[index + offset] = byte } }
        }
        return bytes
    }

    private func fuzz(_ fixture: String, iterations: Int, seed: UInt64) throws {
        let original = try TorchFixtures.bytes(fixture)
        var generator = Generator(state: seed)
        var refused = 0
        for iteration in 0 ..< iterations {
            let mutant = mutate(original, &generator)
            do {
                let store = try TorchCheckpointReader.read(bytes: mutant, file: fixture)
                for record in store.orderedRecords where record.elementCount > 0 {
                    var last = record.storageOffset
                    for (size, stride) in zip(record.shape, record.strides) { last += (size - 1) * stride }
                    XCTAssertLessThanOrEqual((last + 1) * record.dtype.byteSize, record.storage.count, "\(fixture) mutant \(iteration): \(record.name)")
                }
            } catch is WeightsError {
                refused += 1
            } catch {
                XCTFail("\(fixture) mutant \(iteration): non-WeightsError \(error)")
            }
        }
        XCTAssertGreaterThan(refused, iterations / 10, "most damage must be detected in \(fixture)")
    }

    func testMutatedZipCheckpoints() throws {
        try fuzz("state_nocrc.pt", iterations: 400, seed: 1)
        try fuzz("lightning.ckpt", iterations: 300, seed: 2)
    }

    func testMutatedTorchScriptArchive() throws {
        try fuzz("traced.pt", iterations: 300, seed: 3)
    }

    func testMutatedLegacyCheckpoint() throws {
        try fuzz("legacy.pt", iterations: 400, seed: 4)
    }
}
