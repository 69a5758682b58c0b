import Backplane
import NIOConcurrencyHelpers
import NIOCore
import WebSocketCore
import WebSocketNIO

/// Broadcasts, named groups and users for plain WebSocket routes: send one message to every connection, to a
/// group's members, to one connection or to every connection of a user, framed once.
///
/// ```swift
/// let chat = WebSocketGroups(scope: "/chat")
/// WebSocketRoute(path: "/chat", handler: .async { webSocket, upgrade in
///     try await chat.withMember(webSocket, connectionId: UUID().uuidString) { id in
///         try await chat.addToGroup("lobby", connectionId: id)
///         for await message in webSocket.messages {
///             try await chat.send(message.kind, message.payload, to: .group("lobby"), excluding: [id])
///         }
///     }
/// })
/// ```
///
/// **Encode once.** Each message is framed once (``WebSocketNIO/WebSocketSharedMessage``): every receiving
/// connection without permessage-deflate is written a reference to the same bytes. A connection with
/// permessage-deflate compresses the payload itself, with its own compression context (with context takeover,
/// RFC 7692 §7.2.1, the compressed bytes depend on the connection's earlier messages, so they cannot be shared);
/// what is shared with those connections is the payload buffer. Receivers are grouped by event loop and written
/// from one task per loop and message; messages from one sender reach each connection in send order.
///
/// **Slow consumers.** A connection whose outbound buffer (written, not yet taken by the socket) holds bytes and
/// would exceed ``Configuration/maxBufferedBytes`` with the next message is not written: its closing handshake
/// starts with ``Configuration/slowConsumerCloseCode`` (1013 "try again later" by default, RFC 6455 §7.4.1 and
/// the IANA registry) and the reason "slow consumer", and ``slowConsumersClosed`` counts it. A sender never
/// waits for one connection and server memory per connection stays below that limit plus one message and a
/// close frame.
///
/// **Several servers.** Give the same ``Backplane/Backplane`` to every server's instance (the scope is the
/// route's path). Sends are delivered locally first, then published once (one payload, encoding `"text"` or
/// `"binary"`) to the other servers, which frame it once for their own recipients. A server receives a group's
/// messages only while it has a local member, a connection's or a user's only while it holds them. Adding a
/// connection that lives on another server to a group is asked of that server and acknowledged. Delivery to
/// other servers is at most once (see ``Backplane/Backplane``); local delivery never depends on the broker.
public final class WebSocketGroups: BackplaneReceiver {
    public struct Configuration: Sendable {
        /// The most bytes a connection's outbound buffer may hold before a message is written to it; past it the
        /// connection is closed as a slow consumer. Default 1 MiB (1 048 576).
        public var maxBufferedBytes: Int
        /// The close code sent to a slow consumer. Default ``WebSocketCore/CloseCode/tryAgainLater`` (1013);
        /// ``WebSocketCore/CloseCode/policyViolation`` (1008) is the other usual choice.
        public var slowConsumerCloseCode: CloseCode
        /// How long ``addToGroup(_:connectionId:)`` and ``removeFromGroup(_:connectionId:)`` wait for another
        /// server's acknowledgement. Default 5 s.
        public var groupChangeTimeout: Duration
        /// The most bytes of messages (each counted once, however many connections it goes to) waiting for one
        /// event loop to write them; past it the loop cannot keep up with the senders, its queue is discarded and
        /// the connections it was for are closed with ``slowConsumerCloseCode``. A message that finds the queue
        /// empty is always queued (one message larger than the limit is not an overload). Default 4 MiB (4 194 304).
        public var maxQueuedBytesPerEventLoop: Int

        public init(
            maxBufferedBytes: Int = 1 << 20,
            slowConsumerCloseCode: CloseCode = .tryAgainLater,
            groupChangeTimeout: Duration = .seconds(5),
            maxQueuedBytesPerEventLoop: Int = 4 << 20
        ) {
            self.maxBufferedBytes = maxBufferedBytes
            self.slowConsumerCloseCode = slowConsumerCloseCode
            self.groupChangeTimeout = groupChangeTimeout
            self.maxQueuedBytesPerEventLoop = maxQueuedBytesPerEventLoop
        }
    }

    private struct Member {
        var handle: WebSocketSendHandle
        var userId: String?
        var groups: Set<String> = []
    }

    private struct State {
        var members: [String: Member] = [:]
        var groups: [String: Set<String>] = [:]
        var users: [String: Set<String>] = [:]
        var slowConsumersClosed = 0
        var queues = EventLoopBatchQueues<Batch>()
    }

    /// A local connection a message goes to.
    private typealias Recipient = (id: String, handle: WebSocketSendHandle)

    /// A message waiting for one event loop, with the connections (on that loop) it goes to.
    private typealias Batch = (message: WebSocketSharedMessage, recipients: [Recipient])

    /// The backplane scope: the route's path.
    public let scope: String
    public let configuration: Configuration
    /// Carries sends and group changes to the other servers, or nil for one server.
    public let backplane: (any Backplane)?
    private let state = NIOLockedValueBox(State())
    /// Orders the backplane's group-interest calls: a join and a leave decided at nearly the same time by two
    /// tasks must reach the backplane in the order that leaves it matching the local state.
    private let interest = AsyncSerialGate()
    /// The groups the backplane was told have local members (changed only while holding ``interest``).
    private let announcedGroups = NIOLockedValueBox(Set<String>())

    /// - Parameters:
    ///   - scope: the route's path; the same on every server.
    ///   - backplane: to reach connections on other servers; call ``start()`` before use and ``stop()`` after.
    public init(
        scope: String, configuration: Configuration = .init(), backplane: (any Backplane)? = nil
    ) {
        self.scope = scope
        self.configuration = configuration
        self.backplane = backplane
    }

    /// Registers the scope on the backplane (nothing to do without one).
    /// - Throws: ``Backplane/BackplaneError`` from the backplane.
    public func start() async throws {
        try await backplane?.register(scope: scope, receiver: self)
    }

    /// Unregisters the scope from the backplane.
    public func stop() async {
        await backplane?.unregister(scope: scope)
    }

    /// The number of local connections.
    public var connectionCount: Int { state.withLockedValue { $0.members.count } }

    /// Connections closed as slow consumers so far.
    public var slowConsumersClosed: Int { state.withLockedValue { $0.slowConsumersClosed } }

    /// The local members of `group`.
    public func members(of group: String) -> Set<String> {
        state.withLockedValue { $0.groups[group] ?? [] }
    }

    // MARK: - Connections

    /// Adds a local connection. `connectionId` must be unique among the servers of the scope (a UUID); adding an
    /// ID again replaces the connection's handle and keeps its groups. The connection leaves by
    /// ``remove(connectionId:)`` (``withMember(_:connectionId:userId:_:)`` calls it); until then a closed one is
    /// skipped by every send.
    public func add(_ handle: WebSocketSendHandle, connectionId: String, userId: String? = nil) async {
        let isNew = state.withLockedValue { state -> Bool in
            if var member = state.members[connectionId] {
                member.handle = handle
                state.members[connectionId] = member
                return false
            }
            state.members[connectionId] = Member(handle: handle, userId: userId)
            if let userId { state.users[userId, default: []].insert(connectionId) }
            return true
        }
        guard isNew else { return }
        await backplane?.connectionAdded(scope, connectionId: connectionId, userId: userId)
    }

    /// Removes a local connection from the scope and from its groups (nothing when it is not here).
    public func remove(connectionId: String) async {
        let removed = state.withLockedValue { state -> (member: Member, emptied: [String])? in
            guard let member = state.members.removeValue(forKey: connectionId) else { return nil }
            if let userId = member.userId {
                state.users[userId]?.remove(connectionId)
                if state.users[userId]?.isEmpty == true { state.users[userId] = nil }
            }
            var emptied: [String] = []
            for group in member.groups {
                state.groups[group]?.remove(connectionId)
                if state.groups[group]?.isEmpty == true {
                    state.groups[group] = nil
                    emptied.append(group)
                }
            }
            return (member, emptied)
        }
        guard let removed, let backplane else { return }
        for group in removed.emptied { await reconcileInterest(in: group) }
        await backplane.connectionRemoved(
            scope, connectionId: connectionId, userId: removed.member.userId)
    }

    /// Runs `body` with `webSocket` added (under `connectionId`, of `userId`), and removes it when `body`
    /// returns or throws: the usual shape of an ``WebSocketRoute/Handler/async(_:)`` route.
    public func withMember<Result: Sendable>(
        _ webSocket: WebSocket,
        connectionId: String,
        userId: String? = nil,
        _ body: (String) async throws -> Result
    ) async throws -> Result {
        await add(webSocket.sendHandle, connectionId: connectionId, userId: userId)
        do {
            let result = try await body(connectionId)
            await remove(connectionId: connectionId)
            return result
        } catch {
            await remove(connectionId: connectionId)
            throw error
        }
    }

    // MARK: - Groups

    /// Adds the connection to `group`: at once when it is local, else asked of the server holding it.
    /// - Throws: ``Backplane/BackplaneError`` `.acknowledgementTimeout` when no server holds the connection
    ///   (also without a backplane, for an unknown local ID) or it did not answer within
    ///   ``Configuration/groupChangeTimeout``; `.unavailable` when the broker cannot be reached.
    public func addToGroup(_ group: String, connectionId: String) async throws {
        try await change(.add, connectionId: connectionId, group: group)
    }

    /// Removes the connection from `group`; see ``addToGroup(_:connectionId:)``.
    public func removeFromGroup(_ group: String, connectionId: String) async throws {
        try await change(.remove, connectionId: connectionId, group: group)
    }

    private func change(_ change: GroupMembershipChange, connectionId: String, group: String)
        async throws
    {
        if await applyLocally(change, connectionId: connectionId, group: group) { return }
        guard let backplane else {
            throw BackplaneError(
                .acknowledgementTimeout, "No connection '\(connectionId)' in scope '\(scope)'.")
        }
        try await backplane.requestGroupChange(
            change,
            connectionId: connectionId,
            group: group,
            scope: scope,
            timeout: configuration.groupChangeTimeout
        )
    }

    /// Applies a change to a local connection; false when the connection is not here.
    private func applyLocally(_ change: GroupMembershipChange, connectionId: String, group: String)
        async -> Bool
    {
        enum Outcome {
            case notHere
            case done
            case firstJoined
            case lastLeft
        }
        let outcome = state.withLockedValue { state -> Outcome in
            guard state.members[connectionId] != nil else { return .notHere }
            switch change {
            case .add:
                guard state.members[connectionId]?.groups.insert(group).inserted == true else {
                    return .done
                }
                let wasEmpty = state.groups[group] == nil
                state.groups[group, default: []].insert(connectionId)
                return wasEmpty ? .firstJoined : .done
            case .remove:
                guard state.members[connectionId]?.groups.remove(group) != nil else { return .done }
                state.groups[group]?.remove(connectionId)
                guard state.groups[group]?.isEmpty == true else { return .done }
                state.groups[group] = nil
                return .lastLeft
            }
        }
        switch outcome {
        case .notHere: return false
        case .done: break
        case .firstJoined, .lastLeft: await reconcileInterest(in: group)
        }
        return true
    }

    /// Tells the backplane whether `group` has local members now, if that changed since it was last told. One
    /// call at a time, each reading the state when its turn comes: racing joins and leaves cannot leave the
    /// backplane unsubscribed from a group that has members (or subscribed to an empty one).
    private func reconcileInterest(in group: String) async {
        guard let backplane else { return }
        await interest.enter()
        let hasMembers = state.withLockedValue { $0.groups[group] != nil }
        let announced = announcedGroups.withLockedValue { $0.contains(group) }
        if hasMembers, !announced {
            await backplane.localGroupJoined(scope, group: group)
            announcedGroups.withLockedValue { _ = $0.insert(group) }
        } else if !hasMembers, announced {
            await backplane.localGroupLeft(scope, group: group)
            announcedGroups.withLockedValue { _ = $0.remove(group) }
        }
        interest.leave()
    }

    // MARK: - Sending

    /// Sends one message to `target` (minus `excluding`): framed once, written to the local recipients, then
    /// published to the other servers when there is a backplane (not for a connection that lives here).
    /// - Returns: the number of local connections it was written to (or queued for, on their event loops).
    /// - Throws: ``Backplane/BackplaneError`` when publishing to the other servers failed; local delivery has
    ///   happened regardless.
    @discardableResult
    public func send(
        _ kind: MessageKind,
        _ payload: ByteBuffer,
        to target: BackplaneTarget,
        excluding: [String] = []
    ) async throws -> Int {
        let message = WebSocketSharedMessage(kind: kind, payload: payload)
        let (count, isLocalConnection) = deliverLocally(message, to: target, excluding: excluding)
        if let backplane, !isLocalConnection {
            let published = BackplaneMessage(
                target: target,
                excludedConnectionIds: excluding,
                payloads: [.init(encoding: Self.encoding(of: kind), bytes: Array(buffer: payload))]
            )
            try await backplane.publish(published, scope: scope)
        }
        return count
    }

    /// Sends a text message; see ``send(_:_:to:excluding:)``.
    @discardableResult
    public func send(text: String, to target: BackplaneTarget, excluding: [String] = []) async throws
        -> Int
    {
        try await send(.text, ByteBuffer(string: text), to: target, excluding: excluding)
    }

    private static func encoding(of kind: MessageKind) -> String {
        kind == .text ? "text" : "binary"
    }

    /// Queues `message` for the local recipients, per event loop (see ``Configuration/maxQueuedBytesPerEventLoop``).
    /// - Returns: how many recipients, and whether the target is a connection that lives here.
    private func deliverLocally(
        _ message: WebSocketSharedMessage,
        to target: BackplaneTarget,
        excluding: [String]
    ) -> (Int, Bool) {
        var isLocalConnection = false
        return state.withLockedValue { state -> (Int, Bool) in
            let ids: [String]
            switch target {
            case .all: ids = Array(state.members.keys)
            case .group(let name): ids = Array(state.groups[name] ?? [])
            case .connection(let id):
                ids = state.members[id] == nil ? [] : [id]
                isLocalConnection = !ids.isEmpty
            case .user(let id): ids = Array(state.users[id] ?? [])
            }
            let excluded = Set(excluding)
            let recipients = ids.compactMap { id -> Recipient? in
                guard !excluded.contains(id), let member = state.members[id] else { return nil }
                return (id, member.handle)
            }
            // Queued under the lock: messages of concurrent senders keep one order on every connection.
            enqueue(message, to: recipients, state: &state)
            return (recipients.count, isLocalConnection)
        }
    }

    /// Appends `message` to the queue of each recipient's event loop; schedules a drain on a loop that has none
    /// pending (a sender faster than the loops never piles up tasks). Called with the lock held.
    private func enqueue(
        _ message: WebSocketSharedMessage, to recipients: [Recipient], state: inout State
    ) {
        var byLoop: [ObjectIdentifier: (any EventLoop, [Recipient])] = [:]
        for recipient in recipients {
            let loop = recipient.handle.eventLoop
            byLoop[ObjectIdentifier(loop), default: (loop, [])].1.append(recipient)
        }
        let size = message.frame.readableBytes
        for (loop, loopRecipients) in byLoop.values {
            let appended = state.queues.append(
                (message, loopRecipients), bytes: size, to: loop, limit: configuration.maxQueuedBytesPerEventLoop)
            if !appended.dropped.isEmpty {
                // The loop is far behind the senders: close its recipients rather than queue without bound.
                var overloaded: [String: WebSocketSendHandle] = [:]
                for batch in appended.dropped {
                    for recipient in batch.recipients { overloaded[recipient.id] = recipient.handle }
                }
                state.slowConsumersClosed += overloaded.count
                let code = configuration.slowConsumerCloseCode
                let closing = Array(overloaded.values)
                loop.execute {
                    for handle in closing { handle.close(code: code, reason: "server overloaded") }
                }
            }
            if appended.scheduleDrain { loop.execute { self.drain(loop) } }
        }
    }

    /// Writes everything queued for one event loop (runs on that loop).
    private func drain(_ loop: any EventLoop) {
        let batches = state.withLockedValue { $0.queues.take(for: loop) }
        let limit = configuration.maxBufferedBytes
        let code = configuration.slowConsumerCloseCode
        var slow = 0
        for batch in batches {
            for (_, handle) in batch.recipients
            where handle.sendSharedOnEventLoop(
                batch.message, maxBufferedBytes: limit, slowConsumerCode: code)
                == .closedSlowConsumer
            {
                slow += 1
            }
        }
        if slow > 0 { state.withLockedValue { $0.slowConsumersClosed += slow } }
    }

    // MARK: - BackplaneReceiver

    public func receive(_ message: BackplaneMessage) {
        let kind: MessageKind
        let bytes: [UInt8]
        if let text = message.payload(for: "text") {
            (kind, bytes) = (.text, text)
        } else if let binary = message.payload(for: "binary") {
            (kind, bytes) = (.binary, binary)
        } else {
            return
        }
        let shared = WebSocketSharedMessage(kind: kind, payload: ByteBuffer(bytes: bytes))
        _ = deliverLocally(shared, to: message.target, excluding: message.excludedConnectionIds)
    }

    public func applyGroupChange(_ change: GroupMembershipChange, connectionId: String, group: String)
        async -> Bool
    {
        await applyLocally(change, connectionId: connectionId, group: group)
    }
}

