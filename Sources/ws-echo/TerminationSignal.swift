import Dispatch
import NIOConcurrencyHelpers

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Waits for SIGINT or SIGTERM (their default action, terminating at once, is turned off).
enum TerminationSignal {
    /// Returns "SIGINT" or "SIGTERM" once one of them arrives.
    static func wait() async -> String {
        await withCheckedContinuation { (continuation: CheckedContinuation<String, Never>) in
            let pending = NIOLockedValueBox<CheckedContinuation<String, Never>?>(continuation)
            let queue = DispatchQueue(label: "ws-echo.signals")
            for (number, name) in [(SIGINT, "SIGINT"), (SIGTERM, "SIGTERM")] {
                signal(number, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
                // The handler keeps its source alive for the rest of the process.
                source.setEventHandler {
                    _ = source
                    pending.withLockedValue { waiting in
                        waiting?.resume(returning: name)
                        waiting = nil
                    }
                }
                source.resume()
            }
        }
    }
}
