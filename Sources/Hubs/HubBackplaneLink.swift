import Backplane
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// How a hub endpoint's backplane is doing (``HubEndpoint/backplaneStatistics``): counts since the endpoint was
/// made.
public struct HubBackplaneStatistics: Sendable, Hashable {
    /// Messages handed to the backplane (``Backplane/Backplane/publish(_:scope:)`` returned).
    public var published: Int
    /// Messages dropped because the publish queue was full (``HubConfiguration/backplanePublishQueueLimit``,
    /// ``HubConfiguration/backplanePublishQueueByteLimit``): the broker was slower than the hub's senders.
    public var dropped: Int
    /// Messages the backplane refused (``Backplane/BackplaneError`` `.unavailable`: the broker was down).
    public var failed: Int
    /// Messages waiting in the publish queue now.
    public var queued: Int
    /// Messages from other servers delivered to this server's connections.
    public var received: Int
}

/// The endpoint's side of a ``Backplane/Backplane``: an ordered queue of publications and an ordered queue of
/// interest changes (connections added and removed, groups' first join and last leave) that a single worker, run by
/// ``HubEndpoint/run()``, hands to the backplane, interest changes first (each queue in its own order).
///
/// Hub sends never wait for the broker: a publication is queued and the send returns. The queue is bounded
/// (publications by count and by bytes); past the bound a new publication is dropped and counted (drop-newest, so
/// that what is queued keeps its order and the queue's delay stays bounded). Interest changes are never dropped:
/// there are at most one per connection start and end and one per group's first join and last leave.
final class HubBackplaneLink: Sendable {
    enum Operation: Sendable {
        case publish(BackplaneMessage)
        case connectionAdded(String, userId: String?)
        case connectionRemoved(String, userId: String?)
        case groupJoined(String)
        case groupLeft(String)
    }

    private struct Entry: Sendable {
        var operation: Operation
        /// Woken once the backplane has taken the operation (or it was abandoned).
        var done: HubSignal?
        /// The payload bytes of a publication, 0 otherwise.
        var bytes: Int
    }

    private struct State {
        /// Operations are accepted only between ``start(_:)`` and ``finish()``.
        var running = false
        var finished = false
        /// Publications, in order.
        var queue = CircularBuffer<Entry>()
        /// Interest changes, in order; taken before any queued publication (they are few, and a new connection or
        /// group waits for its subscription, which must not wait behind a backlog of messages for other servers).
        var interest = CircularBuffer<Entry>()
        var queuedPublications = 0
        var queuedBytes = 0
        var waiter: CheckedContinuation<Entry?, Never>?
        var statistics = HubBackplaneStatistics(published: 0, dropped: 0, failed: 0, queued: 0, received: 0)
        /// The broker refused the last publication (logged once per outage).
        var failing = false
    }

    let backplane: any Backplane
    /// The hub's scope on the backplane (its path).
    let scope: String
    let publicationLimit: Int
    let byteLimit: Int
    let logger: Logger
    private let state = NIOLockedValueBox(State())

    init(backplane: any Backplane, scope: String, configuration: HubConfiguration) {
        self.backplane = backplane
        self.scope = scope
        self.publicationLimit = max(1, configuration.backplanePublishQueueLimit)
        self.byteLimit = max(1, configuration.backplanePublishQueueByteLimit)
        var logger = configuration.logger
        logger[metadataKey: "hub"] = "\(scope)"
        self.logger = logger
    }

    var statistics: HubBackplaneStatistics {
        state.withLockedValue { state in
            var statistics = state.statistics
            statistics.queued = state.queuedPublications
            return statistics
        }
    }

    var isRunning: Bool { state.withLockedValue { $0.running } }

    func countReceived() {
        state.withLockedValue { $0.statistics.received += 1 }
    }

    /// Starts accepting operations, `initial` first (the local connections and groups at that moment). Called
    /// under the lifetime manager's lock, so that no change falls between the snapshot and the start.
    func start(_ initial: [Operation]) {
        let handOver = state.withLockedValue { state -> (CheckedContinuation<Entry?, Never>, Entry)? in
            guard !state.finished else { return nil }
            state.running = true
            for operation in initial { state.interest.append(Entry(operation: operation, done: nil, bytes: 0)) }
            guard let waiter = state.waiter, let entry = state.interest.popFirst() else { return nil }
            state.waiter = nil
            return (waiter, entry)
        }
        if let handOver { handOver.0.resume(returning: handOver.1) }
    }

    /// Queues an operation; never waits. Returns a signal woken when the backplane has taken it when `wait` is
    /// true, nil when the link does not run (nothing was queued) or when a publication was dropped.
    @discardableResult
    func enqueue(_ operation: Operation, wait: Bool = false) -> HubSignal? {
        var bytes = 0
        if case .publish(let message) = operation {
            bytes = message.payloads.reduce(0) { $0 + $1.bytes.count }
        }
        let signal = wait ? HubSignal() : nil
        let (accepted, handOver) = state.withLockedValue {
            state -> (Bool, (CheckedContinuation<Entry?, Never>, Entry)?) in
            guard state.running else { return (false, nil) }
            if case .publish = operation {
                guard state.queuedPublications < publicationLimit, state.queuedBytes + bytes <= byteLimit else {
                    state.statistics.dropped += 1
                    return (false, nil)
                }
            }
            let entry = Entry(operation: operation, done: signal, bytes: bytes)
            if let waiter = state.waiter {
                // The queue is empty while the worker waits: the entry goes to it directly.
                state.waiter = nil
                return (true, (waiter, entry))
            }
            if case .publish = operation {
                state.queuedPublications += 1
                state.queuedBytes += bytes
                state.queue.append(entry)
            } else {
                state.interest.append(entry)
            }
            return (true, nil)
        }
        if let handOver { handOver.0.resume(returning: handOver.1) }
        return accepted ? signal : nil
    }

    private static func account(taken entry: Entry, in state: inout State) {
        if case .publish = entry.operation {
            state.queuedPublications -= 1
            state.queuedBytes -= entry.bytes
        }
    }

    /// The next operation; nil once finished or cancelled.
    private func next() async -> Entry? {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Entry?, Never>) in
                let ready = state.withLockedValue { state -> Entry?? in
                    if state.finished || Task.isCancelled { return .some(nil) }
                    if let entry = state.interest.popFirst() ?? state.queue.popFirst() {
                        Self.account(taken: entry, in: &state)
                        return .some(entry)
                    }
                    state.waiter = continuation
                    return nil
                }
                if let ready { continuation.resume(returning: ready) }
            }
        } onCancel: {
            finish()
        }
    }

    /// Stops accepting operations and ends the worker; queued operations are abandoned (their waiters woken).
    func finish() {
        let (waiter, abandoned) = state.withLockedValue { state -> (CheckedContinuation<Entry?, Never>?, [Entry]) in
            state.running = false
            state.finished = true
            let abandoned = Array(state.interest) + Array(state.queue)
            state.interest.removeAll()
            state.queue.removeAll()
            state.queuedPublications = 0
            state.queuedBytes = 0
            defer { state.waiter = nil }
            return (state.waiter, abandoned)
        }
        waiter?.resume(returning: nil)
        for entry in abandoned { entry.done?.wake() }
    }

    /// The worker: registers the scope, starts the link (``start(_:)`` through `begin`), then hands every
    /// operation to the backplane in order until ``finish()`` or cancellation; unregisters at the end.
    func run(receiver: any BackplaneReceiver, begin: () -> Void) async {
        do {
            try await backplane.register(scope: scope, receiver: receiver)
        } catch {
            // The backplane keeps trying (its contract: the scope is subscribed once the broker is reachable);
            // local traffic goes on meanwhile. Usual at startup (the endpoint and the backplane start together),
            // so not a notice: the backplane logs its own connection failures.
            logger.debug(
                "scope registered before the backplane connected; subscribed once it connects",
                metadata: ["error": "\(error)"])
        }
        begin()
        while let entry = await next() {
            await perform(entry.operation)
            entry.done?.wake()
        }
        await backplane.unregister(scope: scope)
    }

    private func perform(_ operation: Operation) async {
        switch operation {
        case .publish(let message):
            do {
                try await backplane.publish(message, scope: scope)
                let recovered = state.withLockedValue { state -> Int? in
                    state.statistics.published += 1
                    guard state.failing else { return nil }
                    state.failing = false
                    return state.statistics.failed
                }
                if let recovered {
                    logger.notice("backplane publishing again", metadata: ["failedSoFar": "\(recovered)"])
                }
            } catch let error as BackplaneError where error.kind != .messageRefused {
                let first = state.withLockedValue { state -> Bool in
                    state.statistics.failed += 1
                    defer { state.failing = true }
                    return !state.failing
                }
                if first {
                    logger.warning(
                        "backplane publish failed; messages to other servers are lost until it recovers",
                        metadata: ["error": "\(error)"])
                }
            } catch {
                // This message only (`BackplaneError.Kind.messageRefused`: e.g. a group name or user id longer than
                // the envelope allows); the broker is fine and other messages go on. Counted as failed.
                state.withLockedValue { $0.statistics.failed += 1 }
                logger.debug(
                    "backplane refused a message; it reaches this server's connections only",
                    metadata: ["error": "\(error)"])
            }
        case .connectionAdded(let id, let userId):
            await backplane.connectionAdded(scope, connectionId: id, userId: userId)
        case .connectionRemoved(let id, let userId):
            await backplane.connectionRemoved(scope, connectionId: id, userId: userId)
        case .groupJoined(let group):
            await backplane.localGroupJoined(scope, group: group)
        case .groupLeft(let group):
            await backplane.localGroupLeft(scope, group: group)
        }
    }
}
