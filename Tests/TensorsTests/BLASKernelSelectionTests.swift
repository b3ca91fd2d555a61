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

final class ProcessSetupTests: XCTestCase {
    func testLibgompSleepsWhenIdleOnlyWhereOneDNNMayRunAndTheUserChoseNothing() {
        XCTAssertEqual(OpenMPWaitPolicy.preferred(environment: [:], hasBFloat16Units: true), "passive")
        XCTAssertNil(OpenMPWaitPolicy.preferred(environment: [:], hasBFloat16Units: false),
                     "without bf16 units no oneDNN route runs, so no re-run is worth it")
        XCTAssertNil(OpenMPWaitPolicy.preferred(environment: ["OMP_WAIT_POLICY": "active"], hasBFloat16Units: true))
        XCTAssertNil(OpenMPWaitPolicy.preferred(environment: ["OMP_WAIT_POLICY": ""], hasBFloat16Units: true))
        XCTAssertNil(OpenMPWaitPolicy.preferred(environment: ["GOMP_SPINCOUNT": "20000"], hasBFloat16Units: true),
                     "a spin count the user set is their wait policy")
    }

    func testAdditionsCombineBothSettingsAndAreEmptyOnceSet() {
        let first = ProcessSetup.additions(environment: [:], loadedCore: "Prescott", cpuLevel: 2, hasBFloat16Units: true)
        XCTAssertEqual(first.map(\.name), ["OPENBLAS_CORETYPE", "OMP_WAIT_POLICY"])
        XCTAssertEqual(first.map(\.value), ["SkylakeX", "passive"])
        // The re-run process sees its own additions and must find nothing more to do (no exec loop).
        let rerun = Dictionary(uniqueKeysWithValues: first.map { ($0.name, $0.value) })
        XCTAssertTrue(ProcessSetup.additions(environment: rerun, loadedCore: "Prescott", cpuLevel: 2, hasBFloat16Units: true).isEmpty)
        XCTAssertTrue(ProcessSetup.additions(environment: [:], loadedCore: "Zen", cpuLevel: 1, hasBFloat16Units: false).isEmpty)
    }
}
