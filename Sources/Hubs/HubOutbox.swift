import NIOConcurrencyHelpers
import NIOCore
import WebSocketCore
import WebSocketServer

/// One connection's outbound queue: framed hub messages waiting for the connection's writer task.
///
/// Bounded in bytes: the bytes queued plus the bytes handed to the WebSocket but not yet written may not exceed
/// `limit`. ``enqueue(_:_:)`` never waits; when a message would pass the limit the outbox overflows: everything
/// queued is dropped, the writer stops, and `onOverflow` runs (the connection closes: a client that does not read
/// cannot grow server memory). Producers that can wait (streams) call ``waitForSpace()`` first.
///
/// With stateful reconnect, ``requestResume()`` makes the writer's next ``next()`` answer ``Next/resume`` before
/// any queued message (the transport was replaced: the `Sequence` and the replay go first).
final class HubOutbox: Sendable {
    /// One framed hub message.
    struct Item: Sendable {
        var kind: MessageKind
        var bytes: ByteBuffer
        /// A trackable message (types 1-5): numbered and kept for replay under stateful reconnect.
        var tracked: Bool
        /// The WebSocket frame around `bytes` shared with other connections (a message to several), if any.
        var shared: WebSocketSharedMessage? = nil
    }

    /// What the writer does next.
    enum Next: Sendable {
        /// One or more messages, in queue order (at most ``HubOutbox/maxBatchCount`` messages, and past the first
        /// one at most ``HubOutbox/maxBatchBytes``): written together, with one flush.
        case messages([Item])
        /// Send the `Sequence` and replay on the new transport.
        case resume
    }

    private struct State {
        var items: [Item] = []
        var resumeRequested = false
        var head = 0
        var pendingBytes = 0
        var finished = false
        var overflowed = false
        var writerDone = false
        var writer: CheckedContinuation<Void, Never>?
        var spaceWaiters: [CheckedContinuation<Void, Never>] = []
        var lastEnqueue = ContinuousClock.now
    }

    /// The most messages one ``next()`` hands to the writer.
    static let maxBatchCount = 64
    /// The most bytes one ``next()`` hands to the writer beyond its first message: 64 KiB (65 536).
    static let maxBatchBytes = 1 << 16

    /// The bound on pending bytes.
    let limit: Int
    private let state = NIOLockedValueBox(State())
    private let onOverflow: @Sendable () -> Void
    /// Woken when the writer has written everything after ``finish()`` (or stopped).
    let drained = HubSignal()

    init(limit: Int, onOverflow: @escaping @Sendable () -> Void) {
        self.limit = limit
        self.onOverflow = onOverflow
    }

    /// When something was last queued (for the keep-alive ping).
    var lastEnqueue: ContinuousClock.Instant { state.withLockedValue { $0.lastEnqueue } }

    /// Whether the outbox overflowed.
    var overflowed: Bool { state.withLockedValue { $0.overflowed } }

    /// Queues a framed message. Returns false when it was not queued (finished, or it overflowed now).
    @discardableResult
    func enqueue(
        _ kind: MessageKind, _ bytes: ByteBuffer, tracked: Bool = false, bypassLimit: Bool = false,
        shared: WebSocketSharedMessage? = nil
    ) -> Bool {
        let (queued, overflowNow, wake) = state.withLockedValue {
            state -> (Bool, Bool, CheckedContinuation<Void, Never>?) in
            guard !state.finished else { return (false, false, nil) }
            if !bypassLimit, state.pendingBytes + bytes.readableBytes > limit {
                state.overflowed = true
                state.finished = true
                state.items = []
                state.head = 0
                defer { state.writer = nil }
                return (false, true, state.writer)
            }
            state.items.append(Item(kind: kind, bytes: bytes, tracked: tracked, shared: shared))
            state.pendingBytes += bytes.readableBytes
            state.lastEnqueue = .now
            defer { state.writer = nil }
            return (true, false, state.writer)
        }
        wake?.resume()
        if overflowNow {
            wakeSpaceWaiters()
            onOverflow()
        }
        return queued
    }

    /// No more messages after those queued: the writer writes them and stops.
    func finish() {
        let wake = state.withLockedValue { state -> CheckedContinuation<Void, Never>? in
            state.finished = true
            defer { state.writer = nil }
            return state.writer
        }
        wake?.resume()
        wakeSpaceWaiters()
    }

    /// Asks the writer to resume on a new transport (stateful reconnect) before its next message.
    func requestResume() {
        let wake = state.withLockedValue { state -> CheckedContinuation<Void, Never>? in
            state.resumeRequested = true
            defer { state.writer = nil }
            return state.writer
        }
        wake?.resume()
    }

    /// Whether a ``requestResume()`` waits for the writer.
    var resumePending: Bool { state.withLockedValue { $0.resumeRequested } }

    /// The writer's next step (a resume, or a batch of queued messages); nil when finished and empty, or after an
    /// overflow.
    func next() async -> Next? {
        while true {
            let item = state.withLockedValue { state -> Next?? in
                if state.overflowed { return .some(nil) }
                if state.resumeRequested, !state.finished {
                    state.resumeRequested = false
                    return .some(.resume)
                }
                if state.head < state.items.count {
                    // Everything queued (within the batch bounds) goes at once: one hop to the event loop and
                    // one flush for a burst, instead of one per message.
                    var batch = [state.items[state.head]]
                    var bytes = 0
                    state.head += 1
                    while state.head < state.items.count, batch.count < Self.maxBatchCount {
                        let next = state.items[state.head]
                        bytes += next.bytes.readableBytes
                        if bytes > Self.maxBatchBytes { break }
                        batch.append(next)
                        state.head += 1
                    }
                    if state.head == state.items.count {
                        state.items.removeAll(keepingCapacity: true)
                        state.head = 0
                    }
                    return .some(.messages(batch))
                }
                if state.finished { return .some(nil) }
                return nil
            }
            if let item { return item }
            await withCheckedContinuation { continuation in
                let resumeNow = state.withLockedValue { state -> Bool in
                    if state.finished || state.overflowed || state.resumeRequested || state.head < state.items.count {
                        return true
                    }
                    state.writer = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        }
    }

    /// The writer wrote `count` bytes.
    func written(_ count: Int) {
        let wakeWaiters = state.withLockedValue { state -> Bool in
            state.pendingBytes -= count
            return state.pendingBytes <= limit / 2
        }
        if wakeWaiters { wakeSpaceWaiters() }
    }

    /// The writer stopped (finished, overflowed, or the connection closed).
    func writerStopped() {
        state.withLockedValue { state in
            state.writerDone = true
            state.finished = true
        }
        wakeSpaceWaiters()
        drained.wake()
    }

    /// Waits while more than half the limit is pending; returns at once when finished.
    func waitForSpace() async {
        while true {
            let ready = state.withLockedValue { $0.finished || $0.pendingBytes <= limit / 2 }
            if ready { return }
            await withCheckedContinuation { continuation in
                let resumeNow = state.withLockedValue { state -> Bool in
                    if state.finished || state.pendingBytes <= limit / 2 { return true }
                    state.spaceWaiters.append(continuation)
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        }
    }

    private func wakeSpaceWaiters() {
        let waiters = state.withLockedValue { state -> [CheckedContinuation<Void, Never>] in
            defer { state.spaceWaiters = [] }
            return state.spaceWaiters
        }
        for waiter in waiters { waiter.resume() }
    }
}

/// A wake-up flag a task can wait on, with or without a time bound: ``wake()`` sets it (and resumes the waiter);
/// ``wait()`` returns once it is set (and clears it) or the task is cancelled.
final class HubSignal: Sendable {
    private struct State {
        var isSet = false
        var waiter: CheckedContinuation<Void, Never>?
    }

    private let state = NIOLockedValueBox(State())

    func wake() {
        let waiter = state.withLockedValue { state -> CheckedContinuation<Void, Never>? in
            state.isSet = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    /// Whether the flag is set (without clearing it).
    var isSet: Bool { state.withLockedValue { $0.isSet } }

    /// Waits until woken or cancelled. One waiter at a time.
    func wait() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let resumeNow = state.withLockedValue { state -> Bool in
                    if state.isSet || Task.isCancelled {
                        state.isSet = false
                        return true
                    }
                    state.waiter = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            let waiter = state.withLockedValue { state -> CheckedContinuation<Void, Never>? in
                defer { state.waiter = nil }
                return state.waiter
            }
            waiter?.resume()
        }
        state.withLockedValue { $0.isSet = false }
    }

    /// Waits until woken, cancelled, or `duration` has passed.
    func wait(for duration: Duration) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { try? await Task.sleep(for: duration) }
            group.addTask { await self.wait() }
            await group.next()
            group.cancelAll()
        }
    }
}
