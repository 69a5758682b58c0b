import Backplane
import NIOConcurrencyHelpers
import NIOCore
import ServerSentEvents
import ServiceLifecycle

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
/// history as above. Only a backlog counts: one event on a loop with nothing queued is accepted whatever its
/// size (the route's `maxBufferedBytes` judges it per stream).
///
/// Several servers: give every server's broadcaster the same ``EventHistory`` (e.g. `RedisEventHistory`, on
/// Redis Streams) and publish with ``publishShared(_:)``. The history then assigns the event IDs (the same on
/// every server), and a client that reconnects to any server with `Last-Event-ID` gets the events appended
/// after that ID, from whichever server published them, then the live events of its new server, each exactly
/// once and in order (the replay is read after the stream is registered; live events that arrive meanwhile are
/// held, bounded by ``Configuration/historyBytes``, and those the replay already holds are dropped). Live
/// events reach the other servers' streams through a backplane (below).
/// When the shared history cannot be reached: ``publishShared(_:)`` still sends the event live, without an
/// `id` (the clients keep their last ID), and a reconnecting client gets the live events only; both are
/// counted in ``sharedHistoryFailures``. The built-in history is not used in this mode.
///
/// Live events on several servers: give every server's broadcaster the same ``Backplane/Backplane`` and `scope`
/// (``init(configuration:sharedHistory:backplane:scope:)``) and run it (as a `Service`, or ``run()``). Each event is
/// encoded once; ``publish(_:)`` and ``publishShared(_:)`` deliver it to this server's streams first, then queue
/// the same bytes (with the event's ID) for one backplane publication. Every other server's broadcaster delivers
/// it to its streams exactly as one of its own publications (through the same hold-and-drop path during a
/// replay, and into its built-in history when there is no shared one), in publish order per publisher. The
/// publishing server never receives its own events back. Delivery across servers is **at most once**: the queue
/// is bounded (``Configuration/backplanePublishQueueLimit``, ``Configuration/backplanePublishQueueByteLimit``;
/// past either a new event is dropped for the other servers), and an event published while the broker is down or
/// slow is lost for them; both are counted in ``backplaneStatistics``. Local delivery never waits for the broker.
/// The backplane's peers are trusted: what they publish is written to the streams as it is.
public final class EventStreamBroadcaster: BackplaneReceiver, Service {
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
        /// With a backplane: the most events waiting to be published to the other servers; past it a new event
        /// is not sent to them (drop-newest) and ``BackplaneStatistics/dropped`` counts it. Default 10 000.
        public var backplanePublishQueueLimit: Int
        /// With a backplane: the most bytes (encoded events) waiting to be published, with the same policy (an
        /// event that finds the queue empty is always queued). Default 16 MiB (16 777 216).
        public var backplanePublishQueueByteLimit: Int

        public init(
            historyCount: Int = 1000,
            historyBytes: Int = 1 << 20,
            unknownLastEventID: UnknownIDPolicy = .replayHistory,
            maxQueuedBytesPerEventLoop: Int = 4 << 20,
            backplanePublishQueueLimit: Int = 10_000,
            backplanePublishQueueByteLimit: Int = 16 << 20
        ) {
            self.historyCount = historyCount
            self.historyBytes = historyBytes
            self.unknownLastEventID = unknownLastEventID
            self.maxQueuedBytesPerEventLoop = maxQueuedBytesPerEventLoop
            self.backplanePublishQueueLimit = backplanePublishQueueLimit
            self.backplanePublishQueueByteLimit = backplanePublishQueueByteLimit
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

    /// How the backplane link is doing (``backplaneStatistics``): counts of events since the broadcaster was made.
    public struct BackplaneStatistics: Sendable, Hashable {
        /// Events handed to the backplane (its `publish` returned).
        public var published: Int
        /// Events not sent to the other servers because the publish queue was full (see
        /// ``Configuration/backplanePublishQueueLimit``) or the broadcaster no longer runs.
        public var dropped: Int
        /// Events the backplane refused (``Backplane/BackplaneError``, e.g. `.unavailable`: the broker was down).
        public var failed: Int
        /// Events waiting to be published now.
        public var queued: Int
        /// Events from other servers delivered to this server's streams.
        public var received: Int
    }

    private struct Entry {
        var id: String?
        var bytes: ByteBuffer
    }

    private struct Subscriber {
        var output: NIOLoopBound<EventStreamOutput>
        /// With a shared history, while the replay is being read: the live events published meanwhile, and
        /// their size in bytes. Nil once the stream receives live events directly.
        var held: (entries: [Entry], bytes: Int)? = nil
    }

    /// Events waiting for one event loop, with the streams (on that loop) they go to.
    private typealias Batch = (buffers: [ByteBuffer], outputs: [NIOLoopBound<EventStreamOutput>])

    private struct State {
        var history = CircularBuffer<Entry>()
        var historyBytes = 0
        var subscribers: [ObjectIdentifier: Subscriber] = [:]
        var queues = EventLoopBatchQueues<Batch>()
        var sharedHistoryFailures = 0
        var backplaneReceived = 0
    }

    public let configuration: Configuration
    /// The history shared with other servers, or nil for the built-in in-memory one.
    public let sharedHistory: (any EventHistory)?
    private let state = NIOLockedValueBox(State())
    /// Shared-history appends run one at a time, so that local delivery follows the history's order.
    private let appendGate = AsyncSerialGate()
    /// The queue of events for the other servers, with a backplane.
    private let publisher: BackplanePublisher?

    /// The encoding of the backplane payload that holds one event exactly as it is written to the streams (its
    /// UTF-8 `text/event-stream` bytes, `id` field included, ending with the blank line).
    public static let backplaneEventEncoding = "text/event-stream"
    /// The encoding of the backplane payload that holds the event's ID (UTF-8), present when the event has one.
    public static let backplaneIDEncoding = "id"

    /// - Parameters:
    ///   - configuration: the built-in history's limits and the resumption policy (with `sharedHistory`, only
    ///     ``Configuration/unknownLastEventID``, ``Configuration/maxQueuedBytesPerEventLoop`` and
    ///     ``Configuration/historyBytes``, the bound on live events held for a stream during its replay, apply).
    ///   - sharedHistory: a history shared by several servers (see the type's overview); nil keeps the history in
    ///     this process.
    ///   - backplane: carries live events to the broadcasters of the other servers (see the type's overview); the
    ///     broadcaster must then run (``run()``). Nil (the default) for one server.
    ///   - scope: the broadcaster's scope on the backplane, the same on every server and unique among the scopes
    ///     of that backplane (e.g. the route's path). Default `"events"`.
    public init(
        configuration: Configuration = .init(),
        sharedHistory: (any EventHistory)? = nil,
        backplane: (any Backplane)? = nil,
        scope: String = "events"
    ) {
        self.configuration = configuration
        self.sharedHistory = sharedHistory
        self.publisher = backplane.map {
            BackplanePublisher(
                backplane: $0,
                scope: scope,
                maxMessages: configuration.backplanePublishQueueLimit,
                maxBytes: configuration.backplanePublishQueueByteLimit
            )
        }
    }

    /// With a backplane: registers the scope (delivering the other servers' events to this server's streams),
    /// publishes this server's events in order, and unregisters when cancelled or on graceful shutdown; events
    /// still queued then are dropped (counted). Without one it only waits for cancellation or graceful shutdown.
    /// Run it once, before or while publishing (events published before it runs wait in the bounded queue).
    /// - Throws: never (the `Service` requirement is throwing); a broker that cannot be reached is the backplane's
    ///   to retry, and the events meanwhile count as ``BackplaneStatistics/failed``.
    public func run() async throws {
        guard let publisher else {
            try? await gracefulShutdown()
            return
        }
        await cancelWhenGracefulShutdown { await publisher.run(receiver: self) }
    }

    /// The backplane link's counters; nil without a backplane.
    public var backplaneStatistics: BackplaneStatistics? {
        guard let publisher else { return nil }
        let counts = publisher.statistics
        return BackplaneStatistics(
            published: counts.published,
            dropped: counts.dropped,
            failed: counts.failed,
            queued: counts.queued,
            received: state.withLockedValue { $0.backplaneReceived }
        )
    }

    /// Shared-history appends and reads that failed (the store could not be reached); each one meant an event
    /// sent without an ID, or a stream resumed with live events only.
    public var sharedHistoryFailures: Int { state.withLockedValue { $0.sharedHistoryFailures } }

    /// The number of streams receiving the broadcast.
    public var subscriberCount: Int { state.withLockedValue { $0.subscribers.count } }

    /// The IDs the history holds, oldest first (events without an ID appear as nil).
    public var historyIDs: [String?] { state.withLockedValue { $0.history.map(\.id) } }

    /// Sends `event` to every stream and keeps it in the history (the oldest events leave it beyond
    /// ``Configuration/historyCount`` or ``Configuration/historyBytes``).
    ///
    /// With a ``sharedHistory`` the event is sent live but not recorded: use ``publishShared(_:)``.
    /// With a backplane the event is also queued for the other servers (see the type's overview).
    public func publish(_ event: ServerSentEvent) {
        let encoded = EventStreamEncoder.encode(event)
        let entry = Entry(id: event.id, bytes: ByteBuffer(bytes: encoded))
        state.withLockedValue { state in
            // Enqueued under the lock so that a stream that subscribes concurrently gets its replay first.
            self.record(entry, state: &state)
            // And queued for the other servers under the same lock: they get this server's events in its order.
            self.publisher?.enqueue(Self.backplaneMessage(encoded, id: event.id))
        }
    }

    /// Keeps `entry` in the built-in history (when there is no shared one) and sends it to the streams. Called
    /// with the lock held.
    private func record(_ entry: Entry, state: inout State) {
        let size = entry.bytes.readableBytes
        if sharedHistory == nil, configuration.historyCount > 0, size <= configuration.historyBytes {
            state.history.append(entry)
            state.historyBytes += size
            while state.history.count > configuration.historyCount || state.historyBytes > configuration.historyBytes {
                let dropped = state.history.removeFirst()
                state.historyBytes -= dropped.bytes.readableBytes
            }
        }
        deliver(entry, state: &state)
    }

    /// One event for the other servers: its encoded bytes and its ID.
    private static func backplaneMessage(_ encoded: [UInt8], id: String?) -> BackplaneMessage {
        var payloads = [BackplaneMessage.Payload(encoding: backplaneEventEncoding, bytes: encoded)]
        if let id { payloads.append(.init(encoding: backplaneIDEncoding, bytes: Array(id.utf8))) }
        return BackplaneMessage(target: .all, payloads: payloads)
    }

    /// Appends `event` to the ``sharedHistory`` and sends it, with the ID the history assigned, to every stream
    /// of this server. Calls run one at a time, in call order (one round trip to the store each), so that this
    /// server's streams see its events in history order.
    ///
    /// Without a shared history this is ``publish(_:)``. When the append fails, the event is still sent, without
    /// an `id` field (clients keep their last event ID, so a reconnect resumes after the last recorded event), and
    /// ``sharedHistoryFailures`` counts it. With a backplane the event (with its ID) is also queued for the other
    /// servers, in this server's history order (see the type's overview).
    /// - Returns: the event's ID in the history, or nil when it could not be recorded.
    @discardableResult
    public func publishShared(_ event: ServerSentEvent) async -> String? {
        guard let sharedHistory else {
            publish(event)
            return event.id
        }
        await appendGate.enter()
        defer { appendGate.leave() }
        let recorded: ServerSentEvent
        let id: String?
        do {
            let assigned = try await sharedHistory.append(event)
            recorded = try ServerSentEvent(type: event.type, data: event.data, id: assigned, retry: event.retry)
            id = assigned
        } catch {
            state.withLockedValue { $0.sharedHistoryFailures += 1 }
            // Checked when `event` was made; dropping the ID cannot make it invalid.
            recorded = (try? ServerSentEvent(type: event.type, data: event.data, retry: event.retry)) ?? event
            id = nil
        }
        let encoded = EventStreamEncoder.encode(recorded)
        state.withLockedValue { state in
            self.deliver(Entry(id: id, bytes: ByteBuffer(bytes: encoded)), state: &state)
            self.publisher?.enqueue(Self.backplaneMessage(encoded, id: id))
        }
        return id
    }

    /// Sends `entry` to the live streams, and holds it for the streams whose shared-history replay is being read.
    /// Called with the lock held.
    private func deliver(_ entry: Entry, state: inout State) {
        var live: [Subscriber] = []
        live.reserveCapacity(state.subscribers.count)
        var overflowed: [NIOLoopBound<EventStreamOutput>] = []
        for (key, subscriber) in state.subscribers {
            guard var held = subscriber.held else {
                live.append(subscriber)
                continue
            }
            held.entries.append(entry)
            held.bytes += entry.bytes.readableBytes
            if held.bytes > configuration.historyBytes {
                // The replay takes too long: close the stream rather than hold without bound (the client
                // reconnects and resumes from the history).
                overflowed.append(subscriber.output)
                state.subscribers[key]?.held = (entries: [], bytes: 0)
            } else {
                state.subscribers[key]?.held = held
            }
        }
        self.enqueue([entry.bytes], to: live, state: &state)
        for output in overflowed {
            output.eventLoop.execute { output.value.abort() }
        }
    }

    /// Adds the stream of a ``EventStreamRoute/Handler/callback(_:)`` route, resuming after its request's
    /// `Last-Event-ID` like a ``EventStreamRoute/Handler/broadcast(_:)`` route, so that the callback can add its
    /// own behaviour (e.g. end the stream later with ``EventStreamLoopWriter/finish()``). Call it on the
    /// writer's event loop. A writer whose stream is already over (``EventStreamLoopWriter/isClosed``) is ignored.
    public func subscribe(_ writer: EventStreamLoopWriter) {
        subscribe(writer.output, lastEventID: writer.request.lastEventID, run: writer.runReplay)
    }

    /// Runs a shared-history read (``EventHistory/events(after:)``) as a task of the server, bound to a stream's
    /// channel (cancelled when it closes).
    typealias ReplayRunner =
        @Sendable (@escaping @Sendable () async -> [ServerSentEvent]?) -> EventLoopFuture<[ServerSentEvent]?>

    /// Adds a stream: its replay (by `lastEventID`) and then every later event. A stream already over is not
    /// added (its close listeners have run, so nothing would remove it).
    ///
    /// With a ``sharedHistory`` and a `lastEventID`, the replay is read by `run` (a task of the server, bound to
    /// the stream's channel); without `run` the stream gets the live events only.
    func subscribe(
        _ output: EventStreamOutput,
        lastEventID: String?,
        run: ReplayRunner? = nil
    ) {
        guard !output.isClosed else { return }
        let id = ObjectIdentifier(output)
        let loopBound = NIOLoopBound(output, eventLoop: output.eventLoop)
        defer {
            output.onClose.append { [weak self] in
                _ = self?.state.withLockedValue { $0.subscribers.removeValue(forKey: id) }
            }
        }
        if let sharedHistory {
            guard let lastEventID, let run else {
                state.withLockedValue { $0.subscribers[id] = Subscriber(output: loopBound) }
                return
            }
            state.withLockedValue { $0.subscribers[id] = Subscriber(output: loopBound, held: ([], 0)) }
            let policy = configuration.unknownLastEventID
            run {
                do {
                    if let events = try await sharedHistory.events(after: lastEventID) { return events }
                    switch policy {
                    case .replayHistory: return try await sharedHistory.events(after: nil) ?? []
                    case .liveOnly: return []
                    case .send(let event): return [event]
                    }
                } catch {
                    return nil
                }
            }.whenComplete { result in
                switch result {
                case .success(let events):
                    self.finishReplay(of: id, events ?? [], failed: events == nil, lastEventID: lastEventID)
                case .failure:  // the stream went away first
                    self.finishReplay(of: id, [], failed: false, lastEventID: lastEventID)
                }
            }
            return
        }
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
    }

    /// Sends a stream its shared-history replay, then the live events held meanwhile that the replay (or the client,
    /// as its `lastEventID`) does not already hold, and from then on the live events directly.
    private func finishReplay(
        of key: ObjectIdentifier, _ replay: [ServerSentEvent], failed: Bool, lastEventID: String
    ) {
        state.withLockedValue { state in
            if failed { state.sharedHistoryFailures += 1 }
            guard var subscriber = state.subscribers[key], let held = subscriber.held else { return }
            subscriber.held = nil
            state.subscribers[key] = subscriber
            // An event the client saw on another server before that server's backplane publication reached this
            // one arrives here late: its ID is the client's last one.
            let replayed = Set(replay.compactMap(\.id) + [lastEventID])
            var buffers = replay.map { ByteBuffer(bytes: EventStreamEncoder.encode($0)) }
            for entry in held.entries where entry.id.map({ !replayed.contains($0) }) ?? true {
                buffers.append(entry.bytes)
            }
            if !buffers.isEmpty { self.enqueue(buffers, to: [subscriber], state: &state) }
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
        for (loop, outputs) in byLoop.values {
            let appended = state.queues.append(
                (buffers, outputs), bytes: size, to: loop, limit: configuration.maxQueuedBytesPerEventLoop)
            if !appended.dropped.isEmpty {
                // The loop is far behind the publisher: close its streams rather than queue without bound.
                let overloaded = state.subscribers.values.map(\.output).filter { $0.eventLoop === loop }
                loop.execute {
                    for output in overloaded { output.value.abort() }
                }
            }
            if appended.scheduleDrain { loop.execute { self.drain(loop) } }
        }
    }

    /// Writes everything queued for one event loop (runs on that loop).
    private func drain(_ loop: any EventLoop) {
        let batches = state.withLockedValue { $0.queues.take(for: loop) }
        for batch in batches {
            for output in batch.outputs {
                for buffer in batch.buffers where !output.value.writeOrDrop(buffer) { break }
            }
        }
    }

    // MARK: - BackplaneReceiver

    /// Delivers an event another server's broadcaster published (as ``publish(_:)`` does, without publishing it
    /// again): `message` (target ``Backplane/BackplaneTarget/all``) holds the payloads
    /// ``backplaneEventEncoding`` (the encoded event, written as it is) and, when the event has an ID,
    /// ``backplaneIDEncoding``. A message without the event payload is ignored.
    public func receive(_ message: BackplaneMessage) {
        guard let encoded = message.payload(for: Self.backplaneEventEncoding) else { return }
        let id = message.payload(for: Self.backplaneIDEncoding).map { String(decoding: $0, as: UTF8.self) }
        let entry = Entry(id: id, bytes: ByteBuffer(bytes: encoded))
        state.withLockedValue { state in
            state.backplaneReceived += 1
            self.record(entry, state: &state)
        }
    }

    /// Event streams have no groups: always false.
    public func applyGroupChange(_ change: GroupMembershipChange, connectionId: String, group: String) async -> Bool {
        false
    }
}
