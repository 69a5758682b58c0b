import NIOConcurrencyHelpers

/// A bounded, ordered queue of publications for one scope, handed to a ``Backplane`` by one worker
/// (``run(receiver:)``), for a layer whose sends do not wait for the broker (they are synchronous, or must not be
/// slowed by it).
///
/// Order: messages are published in ``enqueue(_:)`` order, one at a time (a caller that needs one order on every
/// server enqueues under the lock that orders its local delivery).
///
/// Bounds: at most `maxMessages` messages and `maxBytes` payload bytes wait. Past either bound a new message is
/// dropped and counted (drop-newest: what is queued keeps its order, and the queue's delay stays bounded). A message
/// the backplane refuses (``BackplaneError``, e.g. `.unavailable` while the broker is down) is counted and not
/// retried: delivery to other servers is at most once.
///
/// Package-internal: the event-stream broadcaster's link to the backplane.
package final class BackplanePublisher: Sendable {
    /// Counts since the publisher was made.
    package struct Statistics: Sendable, Hashable {
        /// Messages the backplane took (``Backplane/publish(_:scope:)`` returned).
        package var published = 0
        /// Messages dropped because the queue was full, or because the worker had ended.
        package var dropped = 0
        /// Messages the backplane refused.
        package var failed = 0
        /// Messages waiting now.
        package var queued = 0
    }

    private struct State {
        var statistics = Statistics()
        var queuedBytes = 0
        var ended = false
    }

    package let backplane: any Backplane
    package let scope: String
    private let maxMessages: Int
    private let maxBytes: Int
    private let state = NIOLockedValueBox(State())
    private let stream: AsyncStream<(BackplaneMessage, Int)>
    private let continuation: AsyncStream<(BackplaneMessage, Int)>.Continuation

    /// - Parameters:
    ///   - scope: the scope the messages are published to (registered by ``run(receiver:)``).
    ///   - maxMessages: the most messages waiting (at least 1).
    ///   - maxBytes: the most payload bytes waiting (at least 1; one larger message on an empty queue is taken).
    package init(backplane: any Backplane, scope: String, maxMessages: Int, maxBytes: Int) {
        self.backplane = backplane
        self.scope = scope
        self.maxMessages = max(1, maxMessages)
        self.maxBytes = max(1, maxBytes)
        // Unbounded here: the bounds are checked (by count and by bytes) in `enqueue` before anything is yielded.
        (stream, continuation) = AsyncStream.makeStream(bufferingPolicy: .unbounded)
    }

    package var statistics: Statistics { state.withLockedValue { $0.statistics } }

    /// Queues `message` for the other servers; never waits.
    /// - Returns: false when it was dropped (queue full, or the worker has ended).
    @discardableResult
    package func enqueue(_ message: BackplaneMessage) -> Bool {
        let bytes = message.payloads.reduce(0) { $0 + $1.bytes.count }
        return state.withLockedValue { state in
            let fits =
                state.statistics.queued == 0
                || (state.statistics.queued < maxMessages && state.queuedBytes + bytes <= maxBytes)
            guard !state.ended, fits else {
                state.statistics.dropped += 1
                return false
            }
            state.statistics.queued += 1
            state.queuedBytes += bytes
            // Yielded under the lock: the queue's order is the order of the callers' lock acquisitions.
            continuation.yield((message, bytes))
            return true
        }
    }

    /// The worker: registers the scope with `receiver` (when the broker cannot be reached yet, the backplane keeps
    /// the registration and subscribes once it connects), publishes every queued message in order until the task
    /// is cancelled, then unregisters. Run it once; what is queued when it ends is dropped.
    package func run(receiver: any BackplaneReceiver) async {
        // `.unavailable` means "registered, subscribed once connected" (the Backplane contract): go on.
        try? await backplane.register(scope: scope, receiver: receiver)
        for await (message, bytes) in stream {
            state.withLockedValue { state in
                state.statistics.queued -= 1
                state.queuedBytes -= bytes
            }
            do {
                try await backplane.publish(message, scope: scope)
                state.withLockedValue { $0.statistics.published += 1 }
            } catch {
                state.withLockedValue { $0.statistics.failed += 1 }
            }
            if Task.isCancelled { break }
        }
        state.withLockedValue { state in
            state.ended = true
            state.statistics.dropped += state.statistics.queued
            state.statistics.queued = 0
            state.queuedBytes = 0
        }
        continuation.finish()
        await backplane.unregister(scope: scope)
    }
}
