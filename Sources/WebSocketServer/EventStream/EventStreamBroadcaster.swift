import NIOConcurrencyHelpers
import NIOCore
import ServerSentEvents

/// Publishes events to every stream of its routes (``EventStreamRoute/Handler/broadcast(_:)``) and keeps a
/// bounded replay history, so that a client that reconnects with `Last-Event-ID` gets exactly the events it
/// missed, with no application code.
///
/// Each event is encoded once; only the writes multiply. Delivery per stream is in publish order.
///
/// Resumption: a client whose `Last-Event-ID` matches an event in the history first gets every event published
/// after that one, then the live events. An ID that is not in the history (older than what is kept, or never
/// published) is handled by ``Configuration/unknownLastEventID``. A client without `Last-Event-ID` gets the
/// live events only.
///
/// Slow readers: a stream whose buffer would exceed its route's ``EventStreamRoute/Configuration/
/// maxBufferedBytes`` is closed (the publisher never waits for one client); the client reconnects with its
/// last ID and resumes from the history.
///
/// An overloaded server: events wait in one queue per event loop, drained by at most one scheduled task per
/// loop (a publisher faster than the loops never piles up tasks in front of accepting and reading). When a
/// loop's queue exceeds ``Configuration/maxQueuedBytesPerEventLoop``, that loop cannot keep up with the
/// publisher: its queue is discarded and every stream on it is closed, and those clients resume from the
/// history as above.
public final class EventStreamBroadcaster: Sendable {
    /// History limits and the resumption policy.
    public struct Configuration: Sendable {
        /// The most events kept for replay. Default 1000.
        public var historyCount: Int
        /// The most bytes (encoded) kept for replay; the oldest events go first. Default 1 MiB (1 048 576).
        public var historyBytes: Int
        /// What a client whose `Last-Event-ID` is not in the history gets. Default ``UnknownIDPolicy/replayHistory``.
        public var unknownLastEventID: UnknownIDPolicy
        /// The most bytes of events (each counted once, however many streams it goes to) waiting for one event
        /// loop to write them; past it the loop's streams are closed (see the type's overview). Default 4 MiB.
        public var maxQueuedBytesPerEventLoop: Int

        public init(
            historyCount: Int = 1000,
            historyBytes: Int = 1 << 20,
            unknownLastEventID: UnknownIDPolicy = .replayHistory,
            maxQueuedBytesPerEventLoop: Int = 4 << 20
        ) {
            self.historyCount = historyCount
            self.historyBytes = historyBytes
            self.unknownLastEventID = unknownLastEventID
            self.maxQueuedBytesPerEventLoop = maxQueuedBytesPerEventLoop
        }
    }

    /// What to send a client whose `Last-Event-ID` is not in the history.
    public enum UnknownIDPolicy: Sendable {
        /// Start over: every event the history still holds, then the live events.
        case replayHistory
        /// The live events only.
        case liveOnly
        /// `event` (e.g. a `reset` event telling the page to reload its state), then the live events.
        case send(ServerSentEvent)
    }

    private struct Entry {
        var id: String?
        var bytes: ByteBuffer
    }

    private struct Subscriber {
        var output: NIOLoopBound<EventStreamOutput>
    }

    /// Events waiting for one event loop, in publish order, with the streams (on that loop) each goes to.
    private struct LoopQueue {
        var batches: [(buffers: [ByteBuffer], outputs: [NIOLoopBound<EventStreamOutput>])] = []
        var bytes = 0
        var drainScheduled = false
    }

    private struct State {
        var history = CircularBuffer<Entry>()
        var historyBytes = 0
        var subscribers: [ObjectIdentifier: Subscriber] = [:]
        var queues: [ObjectIdentifier: LoopQueue] = [:]
    }

    public let configuration: Configuration
    private let state = NIOLockedValueBox(State())

    public init(configuration: Configuration = .init()) {
        self.configuration = configuration
    }

    /// The number of streams receiving the broadcast.
    public var subscriberCount: Int { state.withLockedValue { $0.subscribers.count } }

    /// The IDs the history holds, oldest first (events without an ID appear as nil).
    public var historyIDs: [String?] { state.withLockedValue { $0.history.map(\.id) } }

    /// Sends `event` to every stream and keeps it in the history (the oldest events leave it beyond
    /// ``Configuration/historyCount`` or ``Configuration/historyBytes``).
    public func publish(_ event: ServerSentEvent) {
        let bytes = ByteBuffer(bytes: EventStreamEncoder.encode(event))
        state.withLockedValue { state in
            if configuration.historyCount > 0, bytes.readableBytes <= configuration.historyBytes {
                state.history.append(Entry(id: event.id, bytes: bytes))
                state.historyBytes += bytes.readableBytes
                while state.history.count > configuration.historyCount
                    || state.historyBytes > configuration.historyBytes
                {
                    let dropped = state.history.removeFirst()
                    state.historyBytes -= dropped.bytes.readableBytes
                }
            }
            // Enqueued under the lock so that a stream that subscribes concurrently gets its replay first.
            self.enqueue([bytes], to: state.subscribers.values, state: &state)
        }
    }

    /// Adds the stream of a ``EventStreamRoute/Handler/callback(_:)`` route, resuming after its request's
    /// `Last-Event-ID` like a ``EventStreamRoute/Handler/broadcast(_:)`` route, so that the callback can add its
    /// own behaviour (e.g. end the stream later with ``EventStreamLoopWriter/finish()``). Call it on the
    /// writer's event loop. A writer whose stream is already over (``EventStreamLoopWriter/isClosed``) is ignored.
    public func subscribe(_ writer: EventStreamLoopWriter) {
        subscribe(writer.output, lastEventID: writer.request.lastEventID)
    }

    /// Adds a stream: its replay (by `lastEventID`) and then every later event. A stream already over is not
    /// added (its close listeners have run, so nothing would remove it).
    func subscribe(_ output: EventStreamOutput, lastEventID: String?) {
        guard !output.isClosed else { return }
        let id = ObjectIdentifier(output)
        let loopBound = NIOLoopBound(output, eventLoop: output.eventLoop)
        state.withLockedValue { state in
            var replay: [ByteBuffer] = []
            if let lastEventID {
                if let index = state.history.lastIndex(where: { $0.id == lastEventID }) {
                    replay = state.history[state.history.index(after: index)...].map(\.bytes)
                } else {
                    switch configuration.unknownLastEventID {
                    case .replayHistory: replay = state.history.map(\.bytes)
                    case .liveOnly: break
                    case .send(let event): replay = [ByteBuffer(bytes: EventStreamEncoder.encode(event))]
                    }
                }
            }
            let subscriber = Subscriber(output: loopBound)
            state.subscribers[id] = subscriber
            if !replay.isEmpty { self.enqueue(replay, to: [subscriber], state: &state) }
        }
        output.onClose.append { [weak self] in
            _ = self?.state.withLockedValue { $0.subscribers.removeValue(forKey: id) }
        }
    }

    /// One task per event loop writes `buffers` to that loop's streams.
    /// Queues `buffers` for `subscribers`, per event loop; schedules a drain on a loop that has none pending.
    /// Called with the lock held (publish order is queue order).
    private func enqueue(_ buffers: [ByteBuffer], to subscribers: some Collection<Subscriber>, state: inout State) {
        var byLoop: [ObjectIdentifier: (any EventLoop, [NIOLoopBound<EventStreamOutput>])] = [:]
        for subscriber in subscribers {
            let loop = subscriber.output.eventLoop
            byLoop[ObjectIdentifier(loop), default: (loop, [])].1.append(subscriber.output)
        }
        let size = buffers.reduce(0) { $0 + $1.readableBytes }
        for (key, (loop, outputs)) in byLoop {
            var queue = state.queues[key] ?? LoopQueue()
            queue.batches.append((buffers, outputs))
            queue.bytes += size
            if queue.bytes > configuration.maxQueuedBytesPerEventLoop {
                // The loop is far behind the publisher: close its streams rather than queue without bound.
                let overloaded = state.subscribers.values.map(\.output).filter { $0.eventLoop === loop }
                queue.batches = []
                queue.bytes = 0
                loop.execute {
                    for output in overloaded { output.value.abort() }
                }
            }
            if !queue.drainScheduled, !queue.batches.isEmpty {
                queue.drainScheduled = true
                loop.execute { self.drain(key) }
            }
            state.queues[key] = queue
        }
    }

    /// Writes everything queued for one event loop (runs on that loop).
    private func drain(_ key: ObjectIdentifier) {
        let batches = state.withLockedValue { state in
            let batches = state.queues[key]?.batches ?? []
            state.queues[key] = nil
            return batches
        }
        for batch in batches {
            for output in batch.outputs {
                for buffer in batch.buffers where !output.value.writeOrDrop(buffer) { break }
            }
        }
    }
}
