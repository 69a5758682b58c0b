import NIOConcurrencyHelpers

/// The long-polling connections' host: ``HubEndpoint/run()`` takes each job and runs it as a child task of its
/// task group, so every connection belongs to a task the application awaits (a long-polling connection outlives
/// the requests that carry it). Jobs are refused while the endpoint does not run.
final class HubConnectionHost: Sendable {
    private struct State {
        var running = false
        var queue: [@Sendable () async -> Void] = []
        var waiter: CheckedContinuation<(@Sendable () async -> Void)?, Never>?
    }

    private let state = NIOLockedValueBox(State())

    var isRunning: Bool { state.withLockedValue { $0.running } }

    func begin() { state.withLockedValue { $0.running = true } }

    /// Queues `job`; false when the host does not run.
    func submit(_ job: @escaping @Sendable () async -> Void) -> Bool {
        let (accepted, waiter) = state.withLockedValue {
            state -> (Bool, CheckedContinuation<(@Sendable () async -> Void)?, Never>?) in
            guard state.running else { return (false, nil) }
            if let waiter = state.waiter {
                state.waiter = nil
                return (true, waiter)
            }
            state.queue.append(job)
            return (true, nil)
        }
        waiter?.resume(returning: job)
        return accepted
    }

    /// The next job; nil once ``finish()`` was called.
    func next() async -> (@Sendable () async -> Void)? {
        await withCheckedContinuation { continuation in
            let ready = state.withLockedValue { state -> (@Sendable () async -> Void)?? in
                if !state.queue.isEmpty { return .some(state.queue.removeFirst()) }
                if !state.running { return .some(nil) }
                state.waiter = continuation
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }

    /// Stops taking jobs.
    func finish() {
        let waiter = state.withLockedValue { state -> CheckedContinuation<(@Sendable () async -> Void)?, Never>? in
            state.running = false
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: nil)
    }
}
