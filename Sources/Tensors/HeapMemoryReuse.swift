import CTensorKernels

/// Keeps freed activation memory mapped for the next step.
///
/// A UNet step allocates and frees the same large buffers (activations, Winograd and im2col scratch,
/// gradients) every micro-batch. glibc hands each allocation above its mmap threshold (at most 32 MiB)
/// its own mapping, unmapped again on free, and trims the heap top: every step then faults in and
/// zeroes gigabytes of fresh pages (`clear_page` was 6 % of a full SDS step's samples on 2 cores).
/// Serving everything from the heap and not trimming it took the step from 16.9 to 14.4 s (mean of 2
/// alternating runs each) at the same peak RSS: the peak is the same, it is just not given back between
/// steps. The executables apply this once at start; a user who tunes glibc's malloc through
/// `GLIBC_TUNABLES` keeps their own settings.
public enum HeapMemoryReuse {
    /// Whether to apply the setting for this environment: not when `GLIBC_TUNABLES` already names a
    /// `glibc.malloc` tunable.
    public static func applies(environment: [String: String]) -> Bool {
        !(environment["GLIBC_TUNABLES"]?.contains("glibc.malloc.") ?? false)
    }

    /// Applies the setting when `applies(environment:)`; true when glibc took it.
    @discardableResult
    public static func apply(environment: [String: String]) -> Bool {
        guard applies(environment: environment) else { return false }
        return sds_keep_freed_heap_memory() == 1
    }

    /// Gives the system back the heap pages that are free now. For a one-off release of a large block
    /// that will not be allocated again, such as a frozen teacher's float32 weights once it holds bf16
    /// copies: with `apply` in effect those pages would otherwise stay resident for the whole run.
    /// Pages reused later are faulted in again once. Returns whether any were released.
    @discardableResult
    public static func returnFreedPages() -> Bool {
        sds_return_freed_heap_memory() == 1
    }
}
