import Foundation
import WeightsIO
#if canImport(Glibc)
import Glibc
#endif

/// The write end of the pipe `reportInterrupt` writes to. A signal handler receives no context, so
/// this one value has to be global; `InterruptCleanup` sets it before it installs the handler and
/// clears it after restoring the previous handlers (one `InterruptCleanup` is active at a time).
nonisolated(unsafe) private var interruptReportPipe: Int32 = -1

/// The signal handler: only write(2), which is async-signal-safe; the cleanup runs on a thread.
private func reportInterrupt(_ number: Int32) {
    var byte = UInt8(truncatingIfNeeded: number)
    _ = write(interruptReportPipe, &byte, 1)  // a full pipe already holds a report
}

/// Removes a writing command's temp files when SIGINT, SIGTERM, SIGHUP or SIGPIPE stops it, then lets
/// that signal end the process as it would have (the shell sees 128 + N).
///
/// The handler only writes the signal's number to a pipe; a dedicated thread reads it, removes what
/// the `TemporaryFiles` registry holds (ordinary code: locks, recursive folder removal, which a
/// signal handler may not do), restores the default action and raises the signal again. Signals
/// that were ignored when the command started (nohup, background jobs) stay ignored.
final class InterruptCleanup: @unchecked Sendable {
    static let signals: [Int32] = [SIGINT, SIGTERM, SIGHUP, SIGPIPE]

    let temporaries = TemporaryFiles()
    private let readEnd: Int32
    private let writeEnd: Int32
    private var previous: [Int32: sigaction] = [:]
    private let finished = DispatchSemaphore(value: 0)

    /// Runs `body` with a registry that is cleaned on those signals.
    static func during<T>(_ body: (TemporaryFiles) throws -> T) throws -> T {
        let cleanup = try InterruptCleanup()
        defer { cleanup.stop() }
        return try body(cleanup.temporaries)
    }

    private init() throws {
        var ends: [Int32] = [-1, -1]
        guard pipe(&ends) == 0 else {
            throw WeightsError(.io, file: "", "cannot create the pipe signals are reported on: \(String(cString: strerror(errno)))")
        }
        (readEnd, writeEnd) = (ends[0], ends[1])
        _ = fcntl(readEnd, F_SETFD, FD_CLOEXEC)
        _ = fcntl(writeEnd, F_SETFD, FD_CLOEXEC)
        _ = fcntl(writeEnd, F_SETFL, O_NONBLOCK)  // the handler never blocks
        interruptReportPipe = writeEnd
        let thread = Thread { [self] in watch() }
        thread.name = "sdsclip-signals"
        thread.start()
        for number in Self.signals {
            var old = sigaction()
            sigaction(number, nil, &old)
            guard unsafeBitCast(old.__sigaction_handler.sa_handler, to: Int.self) != unsafeBitCast(SIG_IGN, to: Int.self) else { continue }
            var action = sigaction()
            action.__sigaction_handler.sa_handler = reportInterrupt
            sigemptyset(&action.sa_mask)
            action.sa_flags = Int32(SA_RESTART)
            sigaction(number, &action, nil)
            previous[number] = old
        }
    }

    /// Waits for a report: a signal's number, or 0 from `stop`.
    private func watch() {
        var byte: UInt8 = 0
        while true {
            let count = read(readEnd, &byte, 1)
            if count < 0, errno == EINTR { continue }
            if count == 1, byte != 0 { terminate(by: Int32(byte)) }
            break
        }
        finished.signal()
    }

    /// Removes the temp files, then dies of the signal: its default action, unblocked in this thread.
    private func terminate(by number: Int32) -> Never {
        temporaries.removeAll()
        signal(number, SIG_DFL)
        var only = sigset_t()
        sigemptyset(&only)
        sigaddset(&only, number)
        pthread_sigmask(SIG_UNBLOCK, &only, nil)
        raise(number)
        _exit(128 + number)  // not reached: the default action of all four ends the process
    }

    /// Restores the previous handlers and ends the thread.
    private func stop() {
        for (number, old) in previous {
            var old = old
            sigaction(number, &old, nil)
        }
        var stopByte: UInt8 = 0
        _ = write(writeEnd, &stopByte, 1)
        finished.wait()
        interruptReportPipe = -1
        close(readEnd)
        close(writeEnd)
    }
}

/// stderr without Foundation's FileHandle, which traps on EPIPE (`convert … 2>&1 | head -1`). The
/// write(2) to a closed pipe has raised SIGPIPE already (handled by `InterruptCleanup`, or its
/// default action); when it is ignored, the message is dropped.
enum StandardError {
    static func write(_ text: String) {
        let bytes = Array(text.utf8)
        bytes.withUnsafeBytes { raw in
            guard var next = raw.baseAddress else { return }
            var left = raw.count
            while left > 0 {
                let written = Glibc.write(STDERR_FILENO, next, left)
                if written > 0 {
                    next += written
                    left -= written
                } else if written < 0, errno == EINTR {
                    continue
                } else {
                    return
                }
            }
        }
    }
}
