import Backplane
import BackplaneCodec
import CoreMetrics
import Logging
import NIOConcurrencyHelpers
import RedisClient
import ServiceLifecycle

/// A ``Backplane`` over Redis pub/sub: one connection subscribes, another publishes.
///
/// ```swift
/// let backplane = RedisBackplane(serverId: "server-1", configuration: .init(redis: .init(host: "10.0.0.5")))
/// try await withThrowingDiscardingTaskGroup { group in
///     group.addTask { try await backplane.run() }    // connects, reconnects, delivers; until cancelled
///     try await backplane.waitUntilConnected(timeout: .seconds(10))
///     try await backplane.register(scope: "chat", receiver: hub)
///     …
/// }
/// ```
///
/// Everything happens inside ``run()`` (a swift-service-lifecycle `Service`: it ends on cancellation or graceful
/// shutdown); the other calls only change what it subscribes to, or publish on its current connection.
///
/// Channels: see ``RedisBackplaneChannels``. Every message is one ``BackplaneEnvelope`` (binary, with the origin
/// server's ID); a server ignores envelopes it published itself.
///
/// Faults: when either connection is lost (Redis restarted, network cut, Redis dropped the subscriber for its
/// `client-output-buffer-limit pubsub`, a `SUBSCRIBE` or `PUBLISH` timed out), both are closed and reopened after
/// ``RedisBackplaneConfiguration/reconnectBackoff``, and every channel needed at that moment is subscribed again.
/// Meanwhile ``publish(_:scope:)`` throws `.unavailable` at once (nothing is queued), and messages other servers
/// publish are lost for this server: delivery is **at most once**. The outage is logged (error on loss, notice on
/// reconnection with its duration) and measured.
///
/// Metrics (swift-metrics, ``RedisBackplaneConfiguration/metricsFactory``):
/// `redis_backplane_outage_duration` (timer, one recording per outage), `redis_backplane_reconnects_total`,
/// `redis_backplane_publish_failures_total` (dimension `reason`: `disconnected`, `timeout`, `error`),
/// `redis_backplane_malformed_messages_total`, `redis_backplane_dropped_group_changes_total` (counters).
public final class RedisBackplane: Backplane, Service {
    public let serverId: String
    /// The channel names in use.
    public let channels: RedisBackplaneChannels

    private let configuration: RedisBackplaneConfiguration
    private let connector: RedisBackplaneConnector
    private let codec: BackplaneEnvelopeCodec
    private let logger: Logger
    private let state: NIOLockedValueBox<State>
    private let metrics: Metrics

    /// - Parameters:
    ///   - serverId: unique among the servers sharing the Redis and prefix (acknowledgements are addressed to it).
    ///   - configuration: Redis, prefix, backoff, timeouts, logger, metrics.
    ///   - connector: how to open a connection; ``RedisBackplaneConnector/redis(_:eventLoopGroup:)`` with
    ///     `configuration.redis` when `nil`.
    public init(
        serverId: String,
        configuration: RedisBackplaneConfiguration = .init(),
        connector: RedisBackplaneConnector? = nil
    ) {
        self.serverId = serverId
        self.configuration = configuration
        self.connector = connector ?? .redis(configuration.redis)
        self.codec = BackplaneEnvelopeCodec(limits: configuration.envelopeLimits)
        self.channels = RedisBackplaneChannels(prefix: configuration.prefix)
        var logger = configuration.logger
        logger[metadataKey: "backplane.server"] = .string(serverId)
        self.logger = logger
        self.metrics = Metrics(configuration.metricsFactory)
        var state = State()
        state.want(channels.acknowledgements(serverId: serverId))
        self.state = NIOLockedValueBox(state)
    }

    /// The counters so far.
    public var statistics: RedisBackplaneStatistics {
        state.withLockedValue { $0.statistics }
    }

    /// Waits until ``run()`` is connected (both connections up, every channel subscribed).
    /// - Throws: ``BackplaneError`` (`.unavailable`) after `timeout`; `CancellationError`.
    public func waitUntilConnected(timeout: Duration) async throws {
        let deadline = ContinuousClock.now + timeout
        while !state.withLockedValue({ $0.live != nil }) {
            guard ContinuousClock.now < deadline else {
                throw BackplaneError(.unavailable, "Not connected to Redis within \(timeout).")
            }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    // MARK: Backplane

    /// Subscribes to the scope's `all` and `internal:groups` channels and delivers to `receiver` (registering a
    /// scope again replaces its receiver and keeps its subscriptions).
    /// - Throws: ``BackplaneError`` (`.unavailable`) when not connected now; the scope stays registered and its
    ///   channels are subscribed as soon as ``run()`` connects.
    public func register(scope: String, receiver: any BackplaneReceiver) async throws {
        let connected = await change { state in
            if state.scopes[scope] != nil {
                state.scopes[scope]?.receiver = receiver
                return
            }
            state.scopes[scope] = ScopeState(receiver: receiver)
            state.want(channels.all(scope: scope))
            state.want(channels.groupChanges(scope: scope))
        }
        guard connected else {
            throw BackplaneError(
                .unavailable,
                "Not connected to Redis: scope '\(scope)' is registered and will be subscribed once connected."
            )
        }
    }

    public func unregister(scope: String) async {
        await change { state in
            guard let entry = state.scopes.removeValue(forKey: scope) else { return }
            state.unwant(channels.all(scope: scope))
            state.unwant(channels.groupChanges(scope: scope))
            for group in entry.groups { state.unwant(channels.group(group, scope: scope)) }
            for connection in entry.connections { state.unwant(channels.connection(connection, scope: scope)) }
            for (user, count) in entry.users {
                for _ in 0..<count { state.unwant(channels.user(user, scope: scope)) }
            }
        }
    }

    /// Subscribes to the connection's channel, and to its user's on the user's first local connection. Returns
    /// once subscribed (or at once when not connected: subscribed on reconnection). Ignored for an unregistered
    /// scope or a connection already added.
    public func connectionAdded(_ scope: String, connectionId: String, userId: String?) async {
        await change { state in
            guard state.scopes[scope]?.connections.insert(connectionId).inserted == true else { return }
            state.want(channels.connection(connectionId, scope: scope))
            if let userId {
                state.scopes[scope]?.users[userId, default: 0] += 1
                state.want(channels.user(userId, scope: scope))
            }
        }
    }

    public func connectionRemoved(_ scope: String, connectionId: String, userId: String?) async {
        await change { state in
            guard state.scopes[scope]?.connections.remove(connectionId) != nil else { return }
            state.unwant(channels.connection(connectionId, scope: scope))
            if let userId, let count = state.scopes[scope]?.users[userId] {
                state.scopes[scope]?.users[userId] = count > 1 ? count - 1 : nil
                state.unwant(channels.user(userId, scope: scope))
            }
        }
    }

    /// Subscribes to the group's channel; returns once subscribed (or at once when not connected).
    public func localGroupJoined(_ scope: String, group: String) async {
        await change { state in
            guard state.scopes[scope]?.groups.insert(group).inserted == true else { return }
            state.want(channels.group(group, scope: scope))
        }
    }

    public func localGroupLeft(_ scope: String, group: String) async {
        await change { state in
            guard state.scopes[scope]?.groups.remove(group) != nil else { return }
            state.unwant(channels.group(group, scope: scope))
        }
    }

    /// Publishes on the target's channel.
    /// - Throws: ``BackplaneError``: `.unknownScope`; `.unavailable` at once while disconnected, after
    ///   ``RedisBackplaneConfiguration/publishTimeout`` when Redis does not answer, on a Redis error, or when the
    ///   message cannot be encoded (a name above 65 535 bytes, more than 255 payloads); `CancellationError`.
    public func publish(_ message: BackplaneMessage, scope: String) async throws {
        let publisher = try currentPublisher(scope: scope)
        let bytes = try encode(.message(origin: serverId, scope: scope, message))
        try await publish(bytes, on: channels.channel(for: message.target, scope: scope), with: publisher)
    }

    /// A connection held here is changed by the local receiver directly; otherwise the request is published on
    /// the scope's `internal:groups` channel and the server holding the connection acknowledges on this server's
    /// `internal:ack` channel.
    /// - Throws: ``BackplaneError``: `.acknowledgementTimeout` when no acknowledgement came within `timeout`,
    ///   `.unavailable` (as ``publish(_:scope:)``), `.unknownScope`; `CancellationError`.
    public func requestGroupChange(
        _ change: GroupMembershipChange,
        connectionId: String,
        group: String,
        scope: String,
        timeout: Duration
    ) async throws {
        let local = try state.withLockedValue { state -> (any BackplaneReceiver)? in
            guard let entry = state.scopes[scope] else { throw unknownScope(scope) }
            return entry.connections.contains(connectionId) ? entry.receiver : nil
        }
        if let local, await local.applyGroupChange(change, connectionId: connectionId, group: group) { return }
        let publisher = try currentPublisher(scope: scope)
        let requestId = state.withLockedValue { state in
            state.nextRequestId += 1
            state.acknowledgements[state.nextRequestId] = .pending
            return state.nextRequestId
        }
        defer { _ = state.withLockedValue { $0.acknowledgements.removeValue(forKey: requestId) } }
        let request = GroupChangeRequest(
            scope: scope,
            requestId: requestId,
            change: change,
            connectionId: connectionId,
            group: group,
            replyTo: serverId
        )
        let bytes = try encode(.groupChange(origin: serverId, request))
        try await publish(bytes, on: channels.groupChanges(scope: scope), with: publisher)
        let acknowledged = await withTaskGroup(of: Bool?.self) { tasks in
            tasks.addTask { await self.acknowledgement(requestId) }
            tasks.addTask {
                try? await Task.sleep(for: timeout)
                return nil
            }
            let first = await tasks.next() ?? nil
            resolveAcknowledgement(requestId, false)  // wakes the waiter when the timeout came first
            tasks.cancelAll()
            return first == true
        }
        try Task.checkCancellation()
        guard acknowledged else {
            throw BackplaneError(
                .acknowledgementTimeout,
                "No server acknowledged \(change == .add ? "adding" : "removing") connection '\(connectionId)' "
                    + "\(change == .add ? "to" : "from") group '\(group)' of scope '\(scope)' within \(timeout)."
            )
        }
    }

    // MARK: Running

    /// Connects, subscribes, delivers, and reconnects after every loss, until the task is cancelled or a graceful
    /// shutdown is triggered; then closes both connections. Call it once.
    public func run() async throws {
        await cancelWhenGracefulShutdown {
            await self.runUntilCancelled()
        }
    }

    private func runUntilCancelled() async {
        let first = state.withLockedValue { state in
            defer { state.running = true }
            return !state.running
        }
        guard first else {
            logger.error("RedisBackplane.run() called while already running; ignored")
            return
        }
        var delay = configuration.reconnectBackoff.initial
        var connectFailureReported = false
        while !Task.isCancelled {
            do {
                let subscriber = try await deadline(configuration.connectTimeout, "connect") {
                    try await self.connector.connect(.subscriber)
                }
                let publisher: any PubSubConnection
                do {
                    publisher = try await deadline(configuration.connectTimeout, "connect") {
                        try await self.connector.connect(.publisher)
                    }
                } catch {
                    await subscriber.close()
                    throw error
                }
                let (established, error) = await connected(subscriber: subscriber, publisher: publisher)
                if established {
                    delay = configuration.reconnectBackoff.initial
                    connectFailureReported = false
                }
                if Task.isCancelled { break }
                logger.error(
                    "Lost the Redis connection; reconnecting",
                    metadata: ["error": "\(error.map { String(describing: $0) } ?? "closed")"]
                )
            } catch {
                if Task.isCancelled { break }
                // The first failure of a run of them is a warning (an unreachable Redis at startup must show at
                // the default log level); the retries that follow are debug, not one warning per backoff step.
                if connectFailureReported {
                    logger.debug("Cannot connect to Redis", metadata: ["error": "\(error)", "retry.in": "\(delay)"])
                } else {
                    connectFailureReported = true
                    logger.warning(
                        "Cannot connect to Redis; retrying with backoff (further failures are logged at debug)",
                        metadata: ["error": "\(error)", "retry.in": "\(delay)"])
                }
            }
            do {
                try await Task.sleep(for: delay)
            } catch {
                break
            }
            delay = configuration.reconnectBackoff.next(after: delay)
        }
        let (waiters, pending) = state.withLockedValue { state in
            state.running = false
            return (state.takeAllWaiters(), Array(state.acknowledgements.keys))
        }
        for waiter in waiters { waiter.continuation.resume() }
        for requestId in pending { resolveAcknowledgement(requestId, false) }
    }

    /// One connected period: subscribes everything needed, then delivers until a connection is lost.
    /// - Returns: whether the period got as far as being connected, and what ended it.
    private func connected(
        subscriber: any PubSubConnection,
        publisher: any PubSubConnection
    ) async -> (established: Bool, error: (any Error)?) {
        state.withLockedValue { state in
            state.subscribed.removeAll()
            state.dirty = Set(state.desired.keys)
        }
        do {
            try await reconcile(subscriber)
        } catch {
            await subscriber.close()
            await publisher.close()
            return (false, error)
        }
        let (wakes, wake) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let outage = state.withLockedValue { state -> Duration? in
            state.live = Live(publisher: publisher, wake: wake)
            state.statistics.isConnected = true
            defer { state.disconnectedSince = nil }
            guard let since = state.disconnectedSince else { return nil }
            let outage = ContinuousClock.now - since
            state.statistics.reconnects += 1
            state.statistics.lastOutage = outage
            state.statistics.totalOutage += outage
            return outage
        }
        wake.yield()  // changes made while subscribing
        if let outage {
            metrics.outage.recordNanoseconds(outage.nanoseconds)
            metrics.reconnects.increment()
            logger.notice(
                "Reconnected to Redis and subscribed again",
                metadata: ["outage.ms": "\(outage.nanoseconds / 1_000_000)"]
            )
        } else {
            logger.info("Connected to Redis")
        }
        let error: (any Error)? = await withTaskGroup(of: (any Error)?.self) { tasks in
            tasks.addTask { await self.deliver(from: subscriber) }
            tasks.addTask { await self.watch(publisher) }
            tasks.addTask {
                do {
                    for await _ in wakes { try await self.reconcile(subscriber) }
                    return nil
                } catch {
                    return error
                }
            }
            let first = await tasks.next() ?? nil
            // Ends the other tasks even if the connection type does not end its sequence on cancellation.
            await subscriber.close()
            await publisher.close()
            wake.finish()
            tasks.cancelAll()
            return first
        }
        let waiters = state.withLockedValue { state in
            state.live = nil
            state.statistics.isConnected = false
            state.statistics.connectionLosses += 1
            state.disconnectedSince = .now
            return state.takeAllWaiters()
        }
        for waiter in waiters { waiter.continuation.resume() }
        return (true, error)
    }

    /// Ends (with what ended it) when the publisher connection is lost.
    private func watch(_ publisher: some PubSubConnection) async -> (any Error)? {
        do {
            for try await _ in publisher.messages {}
            return RedisError.connectionClosed(midReply: false)
        } catch {
            return error
        }
    }

    /// Subscribes and unsubscribes what changed since the last call, then wakes the callers waiting for it.
    private func reconcile(_ subscriber: some PubSubConnection) async throws {
        let (add, remove, version) = state.withLockedValue { state in
            var add: [String] = []
            var remove: [String] = []
            for channel in state.dirty {
                let wanted = state.desired[channel] != nil
                let subscribed = state.subscribed.contains(channel)
                if wanted && !subscribed { add.append(channel) }
                if !wanted && subscribed { remove.append(channel) }
            }
            state.dirty.removeAll(keepingCapacity: true)
            return (add, remove, state.version)
        }
        for start in stride(from: 0, to: add.count, by: 512) {
            let chunk = Array(add[start..<min(add.count, start + 512)])
            try await deadline(configuration.subscribeTimeout, "SUBSCRIBE") {
                try await subscriber.subscribe(to: chunk)
            }
            state.withLockedValue { $0.subscribed.formUnion(chunk) }
        }
        for start in stride(from: 0, to: remove.count, by: 512) {
            let chunk = Array(remove[start..<min(remove.count, start + 512)])
            try await deadline(configuration.subscribeTimeout, "UNSUBSCRIBE") {
                try await subscriber.unsubscribe(from: chunk)
            }
            state.withLockedValue { $0.subscribed.subtract(chunk) }
        }
        let ready = state.withLockedValue { state in
            state.applied = max(state.applied, version)
            return state.takeWaiters(upTo: state.applied)
        }
        for waiter in ready { waiter.continuation.resume() }
    }

    /// Delivers the subscriber's messages until it ends. - Returns: what ended it.
    private func deliver(from subscriber: some PubSubConnection) async -> (any Error)? {
        await withDiscardingTaskGroup { tasks in
            do {
                for try await message in subscriber.messages {
                    handle(message, tasks: &tasks)
                }
                return RedisError.connectionClosed(midReply: false)
            } catch {
                return error
            }
        }
    }

    private func handle(_ message: PubSubMessage, tasks: inout DiscardingTaskGroup) {
        let envelope: BackplaneEnvelope
        do {
            envelope = try codec.decode(message.payload)
        } catch {
            state.withLockedValue { $0.statistics.malformedMessages += 1 }
            metrics.malformed.increment()
            logger.warning(
                "Dropped a malformed backplane message",
                metadata: ["channel": "\(message.channel)", "error": "\(error)"]
            )
            return
        }
        guard envelope.origin != serverId else {
            state.withLockedValue { $0.statistics.ownMessagesIgnored += 1 }
            return
        }
        switch envelope {
        case .message(_, let scope, let backplaneMessage):
            let receiver = state.withLockedValue { state -> (any BackplaneReceiver)? in
                guard let entry = state.scopes[scope], entry.wants(backplaneMessage.target) else {
                    state.statistics.unroutedMessages += 1
                    return nil
                }
                state.statistics.delivered += 1
                return entry.receiver
            }
            receiver?.receive(backplaneMessage)
        case .groupChange(_, let request):
            let (receiver, dropped) = state.withLockedValue { state -> ((any BackplaneReceiver)?, Bool) in
                guard let entry = state.scopes[request.scope] else {
                    state.statistics.unroutedMessages += 1
                    return (nil, false)
                }
                guard state.groupChangesInFlight < configuration.maxConcurrentGroupChanges else {
                    state.statistics.droppedGroupChanges += 1
                    return (nil, true)
                }
                state.groupChangesInFlight += 1
                return (entry.receiver, false)
            }
            if dropped {
                metrics.droppedGroupChanges.increment()
                logger.warning("Dropped a group-change request: too many in flight", metadata: ["from": "\(request.replyTo)"])
            }
            guard let receiver else { return }
            tasks.addTask {
                await self.apply(request, receiver: receiver)
                self.state.withLockedValue { $0.groupChangesInFlight -= 1 }
            }
        case .acknowledgement(_, let requestId):
            resolveAcknowledgement(requestId, true)
        }
    }

    /// Applies another server's request and acknowledges it when the connection lives here.
    private func apply(_ request: GroupChangeRequest, receiver: any BackplaneReceiver) async {
        guard await receiver.applyGroupChange(request.change, connectionId: request.connectionId, group: request.group)
        else { return }
        state.withLockedValue { $0.statistics.groupChangesApplied += 1 }
        do {
            let publisher = try currentPublisher(scope: nil)
            let bytes = try encode(.acknowledgement(origin: serverId, requestId: request.requestId))
            try await publish(bytes, on: channels.acknowledgements(serverId: request.replyTo), with: publisher)
        } catch {
            logger.warning(
                "Could not acknowledge a group change",
                metadata: ["requester": "\(request.replyTo)", "error": "\(error)"]
            )
        }
    }

    // MARK: Helpers

    /// Runs `body` on the state; when it changed the wanted channels and a connection is up, wakes the
    /// subscriber and waits until the change is subscribed. - Returns: whether connected.
    @discardableResult
    private func change(_ body: (inout State) -> Void) async -> Bool {
        let (target, connected) = state.withLockedValue { state -> (UInt64?, Bool) in
            let before = state.version
            body(&state)
            guard let live = state.live else { return (nil, false) }
            guard state.version != before else { return (nil, true) }
            live.wake.yield()
            return (state.version, true)
        }
        guard let target else { return connected }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let now = state.withLockedValue { state in
                guard state.live != nil, state.applied < target else { return true }
                state.waiters.append(Waiter(version: target, continuation: continuation))
                return false
            }
            if now { continuation.resume() }
        }
        return state.withLockedValue { $0.live != nil }
    }

    private func unknownScope(_ scope: String) -> BackplaneError {
        BackplaneError(.unknownScope, "Scope '\(scope)' is not registered on server '\(serverId)'.")
    }

    /// The publisher connection, or `.unavailable` at once (counted) while disconnected.
    private func currentPublisher(scope: String?) throws -> any PubSubConnection {
        let result = state.withLockedValue { state -> Result<any PubSubConnection, BackplaneError> in
            if let scope, state.scopes[scope] == nil { return .failure(unknownScope(scope)) }
            guard let live = state.live else {
                state.statistics.publishFailures += 1
                state.statistics.publishFailuresWhileDisconnected += 1
                return .failure(
                    BackplaneError(.unavailable, "Not connected to Redis (reconnecting); nothing was published.")
                )
            }
            return .success(live.publisher)
        }
        if case .failure(let error) = result, error.kind == .unavailable { metrics.failedDisconnected.increment() }
        return try result.get()
    }

    private func encode(_ envelope: BackplaneEnvelope) throws -> [UInt8] {
        do {
            return try codec.encode(envelope)
        } catch {
            throw BackplaneError(.messageRefused, "The message cannot be encoded for Redis: \(error).")
        }
    }

    private func publish(_ bytes: [UInt8], on channel: String, with publisher: any PubSubConnection) async throws {
        do {
            _ = try await deadline(configuration.publishTimeout, "PUBLISH") {
                try await publisher.publish(bytes, to: channel)
            }
            state.withLockedValue { $0.statistics.published += 1 }
        } catch let error as DeadlineExceeded {
            state.withLockedValue { $0.statistics.publishFailures += 1 }
            metrics.failedTimeout.increment()
            // A Redis that does not answer within the deadline is treated as lost: closing the publisher ends
            // `watch`, and the connection is replaced (with backoff) instead of every later publication waiting
            // the whole deadline on a link that may be dead for as long as TCP takes to notice.
            await publisher.close()
            throw BackplaneError(.unavailable, "\(error) on channel '\(channel)' (Redis too slow or unreachable).")
        } catch let error as CancellationError {
            throw error
        } catch {
            state.withLockedValue { $0.statistics.publishFailures += 1 }
            metrics.failedError.increment()
            throw BackplaneError(.unavailable, "PUBLISH on channel '\(channel)' failed: \(error).")
        }
    }

    private func acknowledgement(_ requestId: UInt64) async -> Bool {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
                let now = state.withLockedValue { state -> Bool? in
                    switch state.acknowledgements[requestId] {
                    case .pending:
                        state.acknowledgements[requestId] = .waiting(continuation)
                        return nil
                    case .done(let value):
                        return value
                    case .waiting, nil:
                        return false
                    }
                }
                if let now { continuation.resume(returning: now) }
            }
        } onCancel: {
            resolveAcknowledgement(requestId, false)
        }
    }

    private func resolveAcknowledgement(_ requestId: UInt64, _ value: Bool) {
        let continuation = state.withLockedValue { state -> CheckedContinuation<Bool, Never>? in
            switch state.acknowledgements[requestId] {
            case .pending:
                state.acknowledgements[requestId] = .done(value)
                return nil
            case .waiting(let continuation):
                state.acknowledgements[requestId] = .done(value)
                return continuation
            case .done, nil:
                return nil
            }
        }
        continuation?.resume(returning: value)
    }
}

// MARK: - State

extension RedisBackplane {
    struct ScopeState {
        var receiver: any BackplaneReceiver
        var connections: Set<String> = []
        var users: [String: Int] = [:]
        var groups: Set<String> = []

        /// Whether a message for `target` has local recipients (its channel may outlive them briefly).
        func wants(_ target: BackplaneTarget) -> Bool {
            switch target {
            case .all: true
            case .group(let name): groups.contains(name)
            case .connection(let id): connections.contains(id)
            case .user(let id): users[id] != nil
            }
        }
    }

    struct Live {
        var publisher: any PubSubConnection
        var wake: AsyncStream<Void>.Continuation
    }

    struct Waiter {
        var version: UInt64
        var continuation: CheckedContinuation<Void, Never>
    }

    enum AcknowledgementSlot {
        case pending
        case waiting(CheckedContinuation<Bool, Never>)
        case done(Bool)
    }

    struct State {
        var scopes: [String: ScopeState] = [:]
        /// Every channel needed now, with how many reasons there are for it (a user's channel: one per local
        /// connection of the user).
        var desired: [String: Int] = [:]
        /// What the current subscriber connection is subscribed to.
        var subscribed: Set<String> = []
        /// Channels whose wanted state changed since the last reconciliation.
        var dirty: Set<String> = []
        /// Bumped on every change of `desired`; `applied` is the last version reconciled.
        var version: UInt64 = 0
        var applied: UInt64 = 0
        var waiters: [Waiter] = []
        var live: Live?
        var running = false
        var disconnectedSince: ContinuousClock.Instant?
        var nextRequestId: UInt64 = 0
        var acknowledgements: [UInt64: AcknowledgementSlot] = [:]
        var groupChangesInFlight = 0
        var statistics = RedisBackplaneStatistics()

        mutating func want(_ channel: String) {
            desired[channel, default: 0] += 1
            if desired[channel] == 1 { touch(channel) }
        }

        mutating func unwant(_ channel: String) {
            guard let count = desired[channel] else { return }
            if count > 1 {
                desired[channel] = count - 1
            } else {
                desired[channel] = nil
                touch(channel)
            }
        }

        private mutating func touch(_ channel: String) {
            dirty.insert(channel)
            version += 1
        }

        mutating func takeWaiters(upTo version: UInt64) -> [Waiter] {
            let ready = waiters.filter { $0.version <= version }
            waiters.removeAll { $0.version <= version }
            return ready
        }

        mutating func takeAllWaiters() -> [Waiter] {
            defer { waiters.removeAll() }
            return waiters
        }
    }

    struct Metrics {
        let outage: CoreMetrics.Timer
        let reconnects: Counter
        let failedDisconnected: Counter
        let failedTimeout: Counter
        let failedError: Counter
        let malformed: Counter
        let droppedGroupChanges: Counter

        init(_ factory: any MetricsFactory) {
            outage = CoreMetrics.Timer(label: "redis_backplane_outage_duration", factory: factory)
            reconnects = Counter(label: "redis_backplane_reconnects_total", factory: factory)
            let failures = "redis_backplane_publish_failures_total"
            failedDisconnected = Counter(label: failures, dimensions: [("reason", "disconnected")], factory: factory)
            failedTimeout = Counter(label: failures, dimensions: [("reason", "timeout")], factory: factory)
            failedError = Counter(label: failures, dimensions: [("reason", "error")], factory: factory)
            malformed = Counter(label: "redis_backplane_malformed_messages_total", factory: factory)
            droppedGroupChanges = Counter(label: "redis_backplane_dropped_group_changes_total", factory: factory)
        }
    }
}

/// A call took longer than allowed.
struct DeadlineExceeded: Error, CustomStringConvertible {
    var operation: String
    var limit: Duration
    var description: String { "\(operation) did not complete within \(limit)" }
}

/// `body`'s result, or ``DeadlineExceeded`` after `limit` (`body` is cancelled; it must honour cancellation).
func deadline<T: Sendable>(
    _ limit: Duration,
    _ operation: String,
    _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: T.self) { tasks in
        tasks.addTask { try await body() }
        tasks.addTask {
            try await Task.sleep(for: limit)
            throw DeadlineExceeded(operation: operation, limit: limit)
        }
        defer { tasks.cancelAll() }
        guard let first = try await tasks.next() else { throw CancellationError() }
        return first
    }
}

extension Duration {
    /// Whole nanoseconds (saturating).
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let (product, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        guard !overflow else { return seconds < 0 ? .min : .max }
        return product.addingReportingOverflow(attoseconds / 1_000_000_000).partialValue
    }
}
