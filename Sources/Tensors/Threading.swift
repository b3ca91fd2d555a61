import COpenBLAS
import Dispatch
import Foundation

/// How many threads the engine uses: the width of `parallelFor`, which also splits large GEMMs into
/// blocks (OpenBLAS itself runs single-threaded inside each block; see `gemm`).
/// The default is `SDSCLIP_THREADS` when set to a positive integer, otherwise the core count.
public enum Threading {
    private final class Settings: @unchecked Sendable {
        let lock = NSLock()
        var count: Int
        var blasConfigured = false
        init() {
            let environment = ProcessInfo.processInfo.environment["SDSCLIP_THREADS"].flatMap { Int($0) }
            count = max(1, environment ?? ProcessInfo.processInfo.activeProcessorCount)
        }
    }

    private static let settings = Settings()

    public static var threadCount: Int {
        settings.lock.lock()
        defer { settings.lock.unlock() }
        return settings.count
    }

    /// Sets the number of worker threads for parallel loops and GEMM blocks (values below 1 mean 1).
    public static func setThreadCount(_ count: Int) {
        settings.lock.lock()
        defer { settings.lock.unlock() }
        settings.count = max(1, count)
    }

    /// Called before every GEMM: turns OpenBLAS's own threading off once (the engine splits GEMMs itself).
    static func configureBLASIfNeeded() {
        settings.lock.lock()
        defer { settings.lock.unlock() }
        if !settings.blasConfigured {
            openblas_set_num_threads(1)
            settings.blasConfigured = true
        }
    }
}

/// Runs `body` over `0..<count` split into contiguous ranges, one per worker. Work smaller than
/// `grain` elements per worker stays on the calling thread, where dispatch would cost more than it saves.
/// `body` must not start another parallelFor (GEMM calls inside are fine only through `gemm` on
/// a single worker's block; `gemm` itself splits work, so call it from the calling thread).
@inline(__always)
func parallelFor(_ count: Int, grain: Int = 1, _ body: (Range<Int>) -> Void) {
    let workers = min(Threading.threadCount, count / max(grain, 1))
    if workers <= 1 {
        if count > 0 { body(0..<count) }
        return
    }
    // The workers only run while this call is on the stack, so handing the non-escaping body to
    // dispatch's @Sendable closure is safe; each worker touches a disjoint range.
    withoutActuallyEscaping(body) { escapable in
        let shared = UncheckedSendable(escapable)
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            let start = count * worker / workers
            let end = count * (worker + 1) / workers
            if start < end { shared.value(start..<end) }
        }
    }
}

struct UncheckedSendable<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}

/// Runs `body` once per worker; each worker pulls ranges of up to `batch` indices of `0..<count` from a
/// shared counter until none are left. Unlike `parallelFor`'s fixed split, a worker that the OS delays
/// (the machine is shared) simply takes fewer ranges, so the others are not left waiting for it.
/// `body` can set up per-worker scratch once and then loop `while let range = next() { … }`.
func parallelWorkers(_ count: Int, batch: Int, _ body: (_ next: () -> Range<Int>?) -> Void) {
    let batch = max(batch, 1)
    let workers = min(Threading.threadCount, (count + batch - 1) / batch)
    let counter = WorkCounter(count: count, batch: batch)
    if workers <= 1 {
        if count > 0 { body(counter.next) }
        return
    }
    withoutActuallyEscaping(body) { escapable in
        let shared = UncheckedSendable(escapable)
        DispatchQueue.concurrentPerform(iterations: workers) { _ in shared.value(counter.next) }
    }
}

/// The shared cursor of `parallelWorkers` (a lock is plenty: each range is far more work than a lock).
private final class WorkCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var position = 0
    private let count: Int, batch: Int

    init(count: Int, batch: Int) { (self.count, self.batch) = (count, batch) }

    func next() -> Range<Int>? {
        lock.lock()
        defer { lock.unlock() }
        guard position < count else { return nil }
        let start = position
        position = min(count, position + batch)
        return start..<position
    }
}
