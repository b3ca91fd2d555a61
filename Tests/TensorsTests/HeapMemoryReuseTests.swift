import Tensors
import XCTest

final class HeapMemoryReuseTests: XCTestCase {
    func testTheUsersMallocTunablesWin() {
        XCTAssertTrue(HeapMemoryReuse.applies(environment: [:]))
        XCTAssertTrue(HeapMemoryReuse.applies(environment: ["GLIBC_TUNABLES": "glibc.pthread.rseq=0"]),
                      "tunables of other parts of glibc do not touch malloc")
        XCTAssertFalse(HeapMemoryReuse.applies(environment: ["GLIBC_TUNABLES": "glibc.malloc.mmap_max=4"]))
        XCTAssertFalse(HeapMemoryReuse.apply(environment: ["GLIBC_TUNABLES": "glibc.pthread.rseq=0:glibc.malloc.trim_threshold=1"]))
    }

    func testGlibcTakesTheSettingAndLargeBuffersStillWork() throws {
        #if canImport(Glibc)
        XCTAssertTrue(HeapMemoryReuse.apply(environment: [:]))
        #endif
        // 64 MiB tensors (above glibc's largest mmap threshold) allocated, written and freed repeatedly.
        for round in 0..<3 {
            let t = Tensor(zeros: [16 << 20]) + Float(round)
            XCTAssertEqual(try t.sum().item, Float(round) * Float(16 << 20), accuracy: 1)
        }
    }
}
