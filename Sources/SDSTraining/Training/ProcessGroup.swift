/// The processes of one data-parallel job, as the trainer needs them: who am I, how many are we, and an
/// element-wise sum across all of us. `SingleProcess` is the one-process group (every sum is the
/// identity); the MPI group lives in the `DataParallel` target, so this library never links MPI.
public protocol ProcessGroup: AnyObject {
    /// 0 ..< size; rank 0 writes checkpoints, metrics and the plot.
    var rank: Int { get }
    var size: Int { get }
    /// Replaces `values` by their element-wise sum over all ranks (the same result on every rank).
    /// `what` names the collective in a timeout message ("the gradient all-reduce of step 12").
    func sum(_ values: inout [Float], what: String) throws
    func sum(_ values: inout [Double], what: String) throws
}

/// No other process: sums are the identity, so a one-process run does exactly what it did before
/// data parallelism existed.
public final class SingleProcess: ProcessGroup {
    public init() {}
    public var rank: Int { 0 }
    public var size: Int { 1 }
    public func sum(_ values: inout [Float], what: String) throws {}
    public func sum(_ values: inout [Double], what: String) throws {}
}

/// A rank's share of the data: batches `rank, rank + ranks, …` of the global sequence (indexed
/// layouts), or the shards at those places of each epoch's shard order (webdataset).
public struct DataShare: Sendable, Equatable {
    public var rank: Int
    public var ranks: Int
    public init(rank: Int, ranks: Int) {
        self.rank = rank
        self.ranks = max(1, ranks)
    }
    public func owns(_ index: Int) -> Bool { index % ranks == rank }
}
