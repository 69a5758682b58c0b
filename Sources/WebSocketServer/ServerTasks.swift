import NIOConcurrencyHelpers
import NIOCore

/// The work that event loops hand to the server's task group: upgrade decisions, plain HTTP answers and async
/// WebSocket routes. ``Server/run()`` takes jobs one by one and runs each as a child task, so every task the
/// server starts belongs to one task group that `run()` awaits.
///
/// The queue holds at most one or two jobs per open connection (a decision, then a route) until `run()` picks
/// them up. Once ``finish()`` is called new jobs are refused: their `cancel` runs instead, at once.
final class ServerTasks: Sendable {
    struct Job: Sendable {
        /// The work, run in a child task of the server's group.
        var run: @Sendable () async -> Void
        /// Called instead of `run` when the server no longer takes work.
        var cancel: @Sendable () -> Void
    }

    private struct State {
        var queue: [Job] = []
        var waiter: CheckedContinuation<Job?, Never>?
        var finished = false
    }

    private let state = NIOLockedValueBox(State())

    /// Queues `job`; when the server stopped taking work, runs `job.cancel` instead.
    func submit(_ job: Job) {
        enum Outcome {
            case resume(CheckedContinuation<Job?, Never>)
            case queued
            case refused
        }
        let outcome = self.state.withLockedValue { state -> Outcome in
            if state.finished { return .refused }
            if let waiter = state.waiter {
                state.waiter = nil
                return .resume(waiter)
            }
            state.queue.append(job)
            return .queued
        }
        switch outcome {
        case .resume(let waiter): waiter.resume(returning: job)
        case .queued: break
        case .refused: job.cancel()
        }
    }

    /// The next job, or nil once ``finish()`` was called and the queue is empty. One caller at a time.
    func next() async -> Job? {
        await withCheckedContinuation { continuation in
            let ready: Job?? = self.state.withLockedValue { state in
                if !state.queue.isEmpty { return .some(state.queue.removeFirst()) }
                if state.finished { return .some(nil) }
                state.waiter = continuation
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }

    /// Stops taking work: queued jobs are still handed out by ``next()``, later ones are cancelled.
    func finish() {
        let waiter = self.state.withLockedValue { state -> CheckedContinuation<Job?, Never>? in
            state.finished = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: nil)
    }

    /// Finishes and cancels every queued job (for a server whose `run()` never ran or has returned).
    func cancelQueued() {
        let jobs = self.state.withLockedValue { state -> [Job] in
            state.finished = true
            defer { state.queue = [] }
            return state.queue
        }
        for job in jobs { job.cancel() }
    }

    /// Runs `work` as a server task that is cancelled when `channel` closes first; the future gets its result,
    /// or fails with `CancellationError` when the server no longer takes work.
    func run<T: Sendable>(
        on channel: any Channel,
        _ work: @escaping @Sendable () async -> T
    ) -> EventLoopFuture<T> {
        let promise = channel.eventLoop.makePromise(of: T.self)
        self.submit(
            Job(
                run: {
                    if let result = await Self.cancellingOnClose(of: channel, work) {
                        promise.succeed(result)
                    } else {
                        promise.fail(CancellationError())
                    }
                },
                cancel: { promise.fail(CancellationError()) }
            )
        )
        return promise.futureResult
    }

    /// Runs `work`, cancelling it if `channel` closes before it returns. Nil only if `work` never returned a
    /// value (it always does; cancellation is cooperative).
    private static func cancellingOnClose<T: Sendable>(
        of channel: any Channel,
        _ work: @escaping @Sendable () async -> T
    ) async -> T? {
        await withTaskGroup(of: T?.self) { group in
            group.addTask { await work() }
            group.addTask {
                await waitForClose(of: channel)
                return nil
            }
            var result: T? = nil
            while let next = await group.next() {
                group.cancelAll()  // the first to end, work or close, ends the other
                if let next { result = next }
            }
            return result
        }
    }
}

/// Returns when `channel` is closed or the task is cancelled.
func waitForClose(of channel: any Channel) async {
    enum State {
        case idle
        case waiting(CheckedContinuation<Void, Never>)
        case done
    }
    let state = NIOLockedValueBox(State.idle)
    let resume: @Sendable () -> Void = {
        let continuation = state.withLockedValue { state -> CheckedContinuation<Void, Never>? in
            defer { state = .done }
            if case .waiting(let continuation) = state { return continuation }
            return nil
        }
        continuation?.resume()
    }
    await withTaskCancellationHandler {
        await withCheckedContinuation { continuation in
            let alreadyDone = state.withLockedValue { state -> Bool in
                if case .done = state { return true }
                state = .waiting(continuation)
                return false
            }
            if alreadyDone {
                continuation.resume()
            } else {
                channel.closeFuture.whenComplete { _ in resume() }
            }
        }
    } onCancel: {
        resume()
    }
}
