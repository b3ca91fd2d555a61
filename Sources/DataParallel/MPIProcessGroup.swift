import CMPIShim
import Foundation
import SDSTraining

/// A failed or timed-out collective, naming it, the step and the rank that saw it.
public struct CollectiveError: Error, CustomStringConvertible, Sendable {
    public let description: String
}

/// The ranks of an `mpirun` job (MPI_COMM_WORLD). Sums are non-blocking all-reduces polled with
/// MPI_Test against a deadline, so a rank stuck or gone stops the job with a message instead of
/// leaving the others in a collective forever. Large buffers go in buckets, all in flight at once
/// (Open MPI pipelines them); the MPI calls are made from one thread at a time.
public final class MPIProcessGroup: ProcessGroup {
    public let rank: Int
    public let size: Int
    /// Seconds one sum may take (`collective-timeout`).
    public var timeout: Double = 600
    /// Elements per all-reduce bucket: 4 MiB of floats.
    public var bucketElements = 1 << 20
    private var finished = false

    /// True when an MPI launcher started this process (Open MPI's mpirun sets OMPI_COMM_WORLD_SIZE;
    /// PMIx-based launchers, srun among them, set PMIX_RANK). Without one, sdsclip never calls MPI.
    public static func isLaunched(environment: [String: String] = ProcessInfo.processInfo.environment) -> Bool {
        environment["OMPI_COMM_WORLD_SIZE"] != nil || environment["PMIX_RANK"] != nil
    }

    public init() throws {
        var rank: Int32 = 0, size: Int32 = 1
        let status = sds_mpi_init(&rank, &size)
        guard status == 0 else { throw CollectiveError(description: "MPI_Init failed: \(Self.message(status))") }
        self.rank = Int(rank)
        self.size = Int(size)
    }

    /// The host's name, for the start-up line.
    public var hostName: String {
        var text = [CChar](repeating: 0, count: 256)
        sds_mpi_processor_name(&text, text.count)
        return Self.string(text)
    }

    public func sum(_ values: inout [Float], what: String) throws {
        try values.withUnsafeMutableBufferPointer { buffer in
            try reduce(count: buffer.count, what: what) { offset, count, error in
                sds_mpi_isum_float(buffer.baseAddress.map { $0 + offset }, Int32(count), &error)
            }
        }
    }

    public func sum(_ values: inout [Double], what: String) throws {
        try values.withUnsafeMutableBufferPointer { buffer in
            try reduce(count: buffer.count, what: what) { offset, count, error in
                sds_mpi_isum_double(buffer.baseAddress.map { $0 + offset }, Int32(count), &error)
            }
        }
    }

    /// Starts one all-reduce per bucket, then polls them all until done or the deadline.
    private func reduce(count: Int, what: String, start: (Int, Int, inout Int32) -> OpaquePointer?) throws {
        guard count > 0 else { return }
        var pending: [OpaquePointer] = []
        var offset = 0
        while offset < count {
            let length = min(bucketElements, count - offset)
            var error: Int32 = 0
            guard let request = start(offset, length, &error) else {
                throw CollectiveError(description: "rank \(rank): \(what) could not start: \(Self.message(error))")
            }
            pending.append(request)
            offset += length
        }
        let deadline = Date().addingTimeInterval(timeout)
        while !pending.isEmpty {
            var index = 0
            while index < pending.count {
                var done: Int32 = 0
                let status = sds_mpi_test(pending[index], &done)
                guard status == 0 else { throw CollectiveError(description: "rank \(rank): \(what) failed: \(Self.message(status))") }
                if done != 0 { pending.remove(at: index) } else { index += 1 }
            }
            guard !pending.isEmpty else { break }
            guard Date() < deadline else {
                throw CollectiveError(description: "rank \(rank): \(what) did not complete within \(Int(timeout)) s (collective-timeout): another rank is stuck or gone")
            }
            usleep(50)  // the other ranks (perhaps on the same cores) get the CPU
        }
    }

    /// Ends the whole job: every rank, with `code` as mpirun's status.
    public func abort(code: Int32) -> Never {
        sds_mpi_abort(code)
        exit(code)  // not reached
    }

    /// MPI_Finalize, once.
    public func finish() {
        guard !finished else { return }
        finished = true
        _ = sds_mpi_finalize()
    }

    static func message(_ code: Int32) -> String {
        var text = [CChar](repeating: 0, count: 512)
        sds_mpi_error_string(code, &text, text.count)
        return string(text)
    }

    /// A NUL-terminated C buffer as text.
    static func string(_ text: [CChar]) -> String {
        String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
