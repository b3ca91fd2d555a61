import CDNNLShim

/// Keeps oneDNN's OpenMP thread team at the engine's thread count.
///
/// oneDNN runs its primitives on libgomp's team, whose size comes from `OMP_NUM_THREADS` (default: every
/// core), not from `SDSCLIP_THREADS` or `Threading.setThreadCount`. The team size is an OpenMP setting
/// of the thread that starts the parallel region, so it is set on the calling thread right before each
/// oneDNN call (a plain store in libgomp; far cheaper than any primitive).
enum OpenMPThreads {
    /// Sets the calling thread's OpenMP team size to `count`; false when no OpenMP runtime is loaded.
    @discardableResult
    static func match(_ count: Int = Threading.threadCount) -> Bool {
        sds_openmp_set_threads(Int32(clamping: max(1, count))) != 0
    }

    /// The calling thread's OpenMP team size, or 0 without an OpenMP runtime.
    static var current: Int { Int(sds_openmp_max_threads()) }
}
