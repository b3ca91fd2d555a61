import Tensors
import XCTest

final class BLASKernelSelectionTests: XCTestCase {
    func testGenericFallbackGetsTheWidestKernelsTheCPUCanRun() {
        XCTAssertEqual(BLASKernelSelection.preferredCore(environment: [:], loadedCore: "Prescott", cpuLevel: 2), "SkylakeX")
        XCTAssertEqual(BLASKernelSelection.preferredCore(environment: [:], loadedCore: "Prescott", cpuLevel: 1), "Haswell")
        XCTAssertNil(BLASKernelSelection.preferredCore(environment: [:], loadedCore: "Prescott", cpuLevel: 0),
                     "without AVX2 the generic kernels are the right ones")
    }

    func testAKnownCoreOrTheUsersChoiceIsLeftAlone() {
        XCTAssertNil(BLASKernelSelection.preferredCore(environment: [:], loadedCore: "Haswell", cpuLevel: 2))
        XCTAssertNil(BLASKernelSelection.preferredCore(environment: [:], loadedCore: "Zen", cpuLevel: 1))
        XCTAssertNil(BLASKernelSelection.preferredCore(environment: ["OPENBLAS_CORETYPE": "Prescott"], loadedCore: "Prescott", cpuLevel: 2))
        XCTAssertNil(BLASKernelSelection.preferredCore(environment: ["OPENBLAS_CORETYPE": ""], loadedCore: "Prescott", cpuLevel: 2),
                     "an empty value is still the user's")
    }

    func testTheLoadedCoreIsNamed() {
        XCTAssertFalse(BLASKernelSelection.loadedCore.isEmpty)
    }
}
