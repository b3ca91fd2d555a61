@testable import Tensors
import XCTest

final class OpenMPThreadsTests: XCTestCase {
    /// oneDNN's team follows the engine's thread count, whatever OMP_NUM_THREADS said at load.
    func testAOneDNNCallSizesTheTeamToTheEngineThreadCount() throws {
        let original = Threading.threadCount
        defer { Threading.setThreadCount(original) }
        XCTAssertTrue(OpenMPThreads.match(5), "libgomp is loaded with oneDNN")
        XCTAssertEqual(OpenMPThreads.current, 5)

        Threading.setThreadCount(1)
        let probe = try OneDNNFloat32Probe(weight: Tensor.randn(shape: [8, 16], seed: 1))
        var c = Tensor(zeros: [4, 8])
        try probe.product(Tensor.randn(shape: [4, 16], seed: 2), into: &c)
        XCTAssertEqual(OpenMPThreads.current, 1)
        Threading.setThreadCount(3)
        try probe.product(Tensor.randn(shape: [4, 16], seed: 2), into: &c)
        XCTAssertEqual(OpenMPThreads.current, 3)
    }
}
