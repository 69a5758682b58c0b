import Backplane
import HubProtocol
import Logging
import NIOConcurrencyHelpers
import NIOCore
import WebSocketServer

/// The connections of one hub endpoint, their groups and users, and fan-out (ASP.NET Core's
/// `DefaultHubLifetimeManager`, in process; with a ``Backplane/Backplane``, its `RedisHubLifetimeManager` too).
///
/// Encode once: ``send(_:to:)`` serializes the message at most once per protocol (JSON, MessagePack) and queues
/// the same `ByteBuffer` (shared storage, no copy) on every target connection.
///
/// With a backplane (``link``) it is local-first: local connections get the message at once, exactly as without
/// one, and the message is queued for the other servers (once per hub protocol, the bytes the local connections
/// of that protocol get) whenever it may have recipients there; what other servers publish arrives through
/// ``receive(_:)``, framed once per protocol for every local recipient.
final class HubLifetimeManager: BackplaneReceiver, Sendable {
    /// Who a message goes to.
    enum Target: Sendable {
        case all
        case allExcept([String])
        case connections([String])
        case groups([String], except: [String])
        case users([String])
    }

    private struct State {
        var connections: [String: any HubOutboundConnection] = [:]
        var groups: [String: Set<String>] = [:]
        var groupsOfConnection: [String: Set<String>] = [:]
        var users: [String: Set<String>] = [:]
    }

    private let state = NIOLockedValueBox(State())
    private let serializations = NIOLockedValueBox(0)
    private let framings = NIOLockedValueBox(0)
    fileprivate let sharedFramings = NIOLockedValueBox(0)
    /// The backplane, nil for a hub on one server.
    let link: HubBackplaneLink?
    /// The protocols a publication carries (the hub's: every server of a hub offers the same).
    let publishedFormats: [HubWireFormat]
    /// How long a remote group change waits for its acknowledgement.
    let groupChangeTimeout: Duration
    /// How long a new connection and a group's first join wait for the backplane to take the interest change.
    let interestTimeout: Duration

    init(link: HubBackplaneLink? = nil, configuration: HubConfiguration = .init()) {
        self.link = link
        self.publishedFormats = configuration.protocols.compactMap { HubWireFormat(protocolName: $0) }
        self.groupChangeTimeout = configuration.backplaneGroupChangeTimeout
        self.interestTimeout = configuration.backplaneInterestTimeout
    }

    /// How many times a message was serialized (for the tests of "one serialization per protocol").
    var serializationCount: Int { serializations.withLockedValue { $0 } }

    /// How many times a message from another server was framed for local connections (once per protocol).
    var framingCount: Int { framings.withLockedValue { $0 } }

    /// How many WebSocket frames were built for messages to several connections (once per protocol and message,
    /// local sends and messages from other servers alike; for the tests of "framed once").
    var sharedFrameCount: Int { sharedFramings.withLockedValue { $0 } }

    /// The number of connections.
    var count: Int { state.withLockedValue { $0.connections.count } }

    /// With a running backplane: queues the subscription to a new connection's (and its user's) messages from
    /// other servers and waits (at most ``interestTimeout``) until the backplane took it. Called before the
    /// handshake answer, so that the client, once connected, gets what other servers send it.
    /// - Returns: whether it was queued (false without a running backplane).
    func subscribe(connectionId: String, userId: String?) async -> Bool {
        guard let signal = link?.enqueue(.connectionAdded(connectionId, userId: userId), wait: true) else {
            return false
        }
        await signal.wait(for: interestTimeout)
        return true
    }

    /// Adds a connection (after ``subscribe(connectionId:userId:)``; when that found the backplane not running
    /// yet, the subscription is queued here, or taken by the backplane's start).
    func add(_ connection: any HubOutboundConnection, subscribed: Bool = false) {
        state.withLockedValue { state in
            state.connections[connection.connectionId] = connection
            if let user = connection.userId {
                state.users[user, default: []].insert(connection.connectionId)
            }
            if !subscribed {
                link?.enqueue(.connectionAdded(connection.connectionId, userId: connection.userId))
            }
        }
    }

    func remove(_ connection: any HubOutboundConnection) {
        let id = connection.connectionId
        state.withLockedValue { state in
            guard state.connections[id] != nil else { return }
            state.connections[id] = nil
            for group in state.groupsOfConnection.removeValue(forKey: id) ?? [] {
                state.groups[group]?.remove(id)
                if state.groups[group]?.isEmpty == true {
                    state.groups[group] = nil
                    link?.enqueue(.groupLeft(group))
                }
            }
            if let user = connection.userId {
                state.users[user]?.remove(id)
                if state.users[user]?.isEmpty == true { state.users[user] = nil }
            }
            link?.enqueue(.connectionRemoved(id, userId: connection.userId))
        }
    }

    /// Starts the backplane link with the connections and groups of this moment (called once it is registered).
    func startBackplane() {
        guard let link else { return }
        state.withLockedValue { state in
            var initial: [HubBackplaneLink.Operation] = []
            for connection in state.connections.values {
                initial.append(.connectionAdded(connection.connectionId, userId: connection.userId))
            }
            for group in state.groups.keys { initial.append(.groupJoined(group)) }
            link.start(initial)
        }
    }

    /// What a local membership change did.
    private enum LocalChange {
        /// The connection is not on this server.
        case notLocal
        /// Applied; the signal of the group's subscription when this was its first local member.
        case applied(HubSignal?)
    }

    private func applyLocally(_ change: GroupMembershipChange, _ connectionId: String, _ group: String) -> LocalChange {
        state.withLockedValue { state -> LocalChange in
            guard state.connections[connectionId] != nil else { return .notLocal }
            switch change {
            case .add:
                let first = state.groups[group] == nil
                state.groups[group, default: []].insert(connectionId)
                state.groupsOfConnection[connectionId, default: []].insert(group)
                return .applied(first ? link?.enqueue(.groupJoined(group), wait: true) : nil)
            case .remove:
                guard state.groups[group]?.remove(connectionId) != nil else { return .applied(nil) }
                if state.groups[group]?.isEmpty == true {
                    state.groups[group] = nil
                    link?.enqueue(.groupLeft(group))
                }
                state.groupsOfConnection[connectionId]?.remove(group)
                if state.groupsOfConnection[connectionId]?.isEmpty == true {
                    state.groupsOfConnection[connectionId] = nil
                }
                return .applied(nil)
            }
        }
    }

    /// Adds a connection to a group, or removes it. A local connection changes at once (a group's first member
    /// waits at most ``interestTimeout`` for the group's subscription); with a backplane, a connection of another
    /// server is changed by that server, which acknowledges it.
    /// - Throws: ``HubError`` when no server acknowledged the change within ``groupChangeTimeout`` (the connection
    ///   is unknown, or its server is cut off) or the backplane is unavailable. Without a backplane an unknown
    ///   connection is ignored (ASP.NET Core's default lifetime manager does the same).
    func changeGroup(_ change: GroupMembershipChange, _ connectionId: String, _ group: String) async throws {
        switch applyLocally(change, connectionId, group) {
        case .applied(let signal):
            await signal?.wait(for: interestTimeout)
        case .notLocal:
            guard let link else { return }
            do {
                try await link.backplane.requestGroupChange(
                    change, connectionId: connectionId, group: group, scope: link.scope, timeout: groupChangeTimeout)
            } catch let error as BackplaneError {
                let action = change == .add ? "add" : "remove"
                throw HubError(
                    "Could not \(action) connection '\(connectionId)' to group '\(group)': "
                        + (error.kind == .acknowledgementTimeout
                            ? "no server acknowledged it within \(groupChangeTimeout)." : "\(error.reason)"))
            }
        }
    }

    // MARK: BackplaneReceiver

    /// A change asked by another server: applied if the connection is here. The acknowledgement waits (at most
    /// ``interestTimeout``) for the group's subscription when this is its first local member.
    func applyGroupChange(_ change: GroupMembershipChange, connectionId: String, group: String) async -> Bool {
        switch applyLocally(change, connectionId, group) {
        case .notLocal:
            return false
        case .applied(let signal):
            await signal?.wait(for: interestTimeout)
            return true
        }
    }

    /// Delivers a message published by another server to its local targets: each protocol's payload is framed
    /// once and the same buffer queued on every local recipient of that protocol. A recipient whose protocol the
    /// publisher did not include is skipped.
    func receive(_ message: BackplaneMessage) {
        let targets = state.withLockedValue { state -> [any HubOutboundConnection] in
            let skip = Set(message.excludedConnectionIds)
            let ids: Set<String>
            switch message.target {
            case .all:
                return state.connections.values.filter { !skip.contains($0.connectionId) }
            case .group(let name): ids = state.groups[name] ?? []
            case .connection(let id): ids = [id]
            case .user(let user): ids = state.users[user] ?? []
            }
            return ids.subtracting(skip).compactMap { state.connections[$0] }
        }
        link?.countReceived()
        guard !targets.isEmpty else { return }
        let (count, missing) = enqueueFramedOnce(to: targets) { format in
            message.payload(for: format.name).map { ByteBuffer(bytes: $0) }
        }
        framings.withLockedValue { $0 += count }
        if !missing.isEmpty, let link {
            link.logger.debug(
                "backplane message without a payload for a local protocol",
                metadata: ["protocols": "\(missing.map(\.name))"])
        }
    }

    /// The ids of the connections.
    var connectionIds: [String] { state.withLockedValue { Array($0.connections.keys) } }

    /// The members of a group (for tests and the application).
    func members(of group: String) -> Set<String> {
        state.withLockedValue { $0.groups[group] ?? [] }
    }

    /// Client results: see ``HubClientProxy/invoke(_:_:returning:timeout:)``. Only for connections of this
    /// server: a client result does not cross the backplane.
    func invoke(_ connectionId: String, method: String, arguments: [HubValue], timeout: Duration) async throws
        -> HubValue
    {
        guard let connection = state.withLockedValue({ $0.connections[connectionId] }) else {
            if link != nil {
                throw HubError(
                    "Connection '\(connectionId)' is not connected to this server; client results reach only the "
                        + "connections of the server that invokes them.")
            }
            throw HubError("Connection '\(connectionId)' is not connected.")
        }
        return try await connection.invokeClient(method, arguments, timeout: timeout)
    }

    /// Serializes `message` once per protocol needed and queues it on every target connection; with a running
    /// backplane, also queues it for the other servers (``HubBackplaneLink``; never waits for the broker).
    /// - Throws: ``HubProtocolError`` when the message cannot be encoded (nothing is sent then).
    func send(_ message: HubMessage, to target: Target) throws {
        let publishing = link?.isRunning == true
        let (targets, publications) = state.withLockedValue {
            state -> ([any HubOutboundConnection], [(BackplaneTarget, [String])]) in
            switch target {
            case .all:
                return (Array(state.connections.values), publishing ? [(.all, [])] : [])
            case .allExcept(let excluded):
                let skip = Set(excluded)
                return (
                    state.connections.values.filter { !skip.contains($0.connectionId) },
                    publishing ? [(.all, excluded)] : []
                )
            case .connections(let ids):
                let unique = Set(ids)
                let remote = publishing ? unique.filter { state.connections[$0] == nil }.sorted() : []
                return (
                    unique.compactMap { state.connections[$0] },
                    remote.map { (BackplaneTarget.connection($0), [String]()) }
                )
            case .groups(let names, let excluded):
                let skip = Set(excluded)
                var ids: Set<String> = []
                for name in names { ids.formUnion(state.groups[name] ?? []) }
                let groups = publishing ? Set(names).sorted() : []
                return (
                    ids.subtracting(skip).compactMap { state.connections[$0] },
                    groups.map { (BackplaneTarget.group($0), excluded) }
                )
            case .users(let users):
                var ids: Set<String> = []
                for user in users { ids.formUnion(state.users[user] ?? []) }
                let remote = publishing ? Set(users).sorted() : []
                return (ids.compactMap { state.connections[$0] }, remote.map { (BackplaneTarget.user($0), [String]()) })
            }
        }
        guard !targets.isEmpty || !publications.isEmpty else { return }
        var serialized = SerializedHubMessage(message)
        defer {
            let encodings = serialized.encodingCount
            serializations.withLockedValue { $0 += encodings }
        }
        // The payloads first: a message that a protocol cannot encode is sent to nobody.
        var payloads: [BackplaneMessage.Payload] = []
        if !publications.isEmpty {
            for format in publishedFormats {
                payloads.append(.init(encoding: format.name, bytes: try serialized.encoded(for: format)))
            }
        }
        try enqueueFramedOnce(to: targets) { format in try serialized.bytes(for: format) }
        guard let link else { return }
        for (backplaneTarget, excluded) in publications {
            let publication = BackplaneMessage(
                target: backplaneTarget, excludedConnectionIds: excluded, payloads: payloads)
            link.enqueue(.publish(publication))
        }
    }
}

extension HubLifetimeManager {
    /// Queues to every target its protocol's message, framed once per protocol (one ``HubFramedMessage``, whose
    /// WebSocket frame every WebSocket connection of that protocol writes as it is, compression aside); a message
    /// to one target gets no shared frame (its connection frames the bytes, with no extra copy).
    /// - Parameter bytes: a protocol's serialized message; nil skips that protocol's targets.
    /// - Returns: how many protocols were framed, and those skipped for want of bytes.
    @discardableResult
    fileprivate func enqueueFramedOnce(
        to targets: [any HubOutboundConnection], bytes: (HubWireFormat) throws -> ByteBuffer?
    ) rethrows -> (framed: Int, missing: [HubWireFormat]) {
        var framed: [HubWireFormat: HubFramedMessage] = [:]
        var missing: [HubWireFormat] = []
        for connection in targets {
            let format = connection.format
            if let message = framed[format] {
                connection.enqueue(message)
            } else if let payload = try bytes(format) {
                let message = HubFramedMessage(format: format, bytes: payload, shared: targets.count > 1)
                framed[format] = message
                connection.enqueue(message)
            } else if !missing.contains(format) {
                missing.append(format)
            }
        }
        let count = framed.count
        if targets.count > 1 { sharedFramings.withLockedValue { $0 += count } }
        return (count, missing)
    }
}

/// What the lifetime manager needs of a connection: its ids, format, and a non-blocking send.
protocol HubOutboundConnection: AnyObject, Sendable {
    var connectionId: String { get }
    var userId: String? { get }
    var format: HubWireFormat { get }
    /// Queues a message serialized (and framed) for its protocol; never waits (a connection over its buffer limit
    /// closes itself).
    func enqueue(_ message: HubFramedMessage)
    /// Sends an Invocation with an id and returns the client's result.
    func invokeClient(_ target: String, _ arguments: [HubValue], timeout: Duration) async throws -> HubValue
}

/// A hub message for every connection of one protocol: its bytes (JSON records or length-prefixed MessagePack,
/// as the HTTP transports send them) and the WebSocket frame built once around them (``WebSocketSharedMessage``:
/// written by reference to every WebSocket connection without permessage-deflate).
struct HubFramedMessage: Sendable {
    let bytes: ByteBuffer
    /// Nil for a message to one connection: it frames the bytes itself, with no copy into a shared frame.
    let frame: WebSocketSharedMessage?

    init(format: HubWireFormat, bytes: ByteBuffer, shared: Bool) {
        self.bytes = bytes
        self.frame = shared ? WebSocketSharedMessage(kind: format == .json ? .text : .binary, payload: bytes) : nil
    }
}

/// The connection whose invocation the current task runs inline (the read loop waits for it).
enum HubInvocationScope {
    @TaskLocal static var inlineConnection: String?
}

/// The two hub protocols: their names, codecs and WebSocket frame types.
enum HubWireFormat: Sendable, Hashable {
    case json
    case messagePack

    init?(protocolName: String) {
        switch protocolName {
        case JSONHubProtocol.name: self = .json
        case MessagePackHubProtocol.name: self = .messagePack
        default: return nil
        }
    }

    var name: String {
        switch self {
        case .json: JSONHubProtocol.name
        case .messagePack: MessagePackHubProtocol.name
        }
    }

    func encode(_ message: HubMessage, limits: HubProtocolLimits = .default) throws(HubProtocolError) -> [UInt8] {
        switch self {
        case .json: try JSONHubProtocol(limits: limits).encode(message)
        case .messagePack: try MessagePackHubProtocol(limits: limits).encode(message)
        }
    }

    func decode(frame: some Collection<UInt8>, limits: HubProtocolLimits, into messages: inout [HubMessage])
        throws(HubProtocolError)
    {
        switch self {
        case .json: try JSONHubProtocol(limits: limits).decode(frame: frame, into: &messages)
        case .messagePack: try MessagePackHubProtocol(limits: limits).decode(frame: frame, into: &messages)
        }
    }
}

/// A message with its bytes cached per protocol (ASP.NET Core's `SerializedHubMessage`): each protocol's bytes
/// are produced on first use, then reused for every connection speaking it (and for the backplane's payload).
struct SerializedHubMessage {
    let message: HubMessage
    private var json: (bytes: [UInt8], buffer: ByteBuffer)?
    private var messagePack: (bytes: [UInt8], buffer: ByteBuffer)?
    /// How many encodings were made (at most 2).
    private(set) var encodingCount = 0

    init(_ message: HubMessage) {
        self.message = message
    }

    private mutating func cached(_ format: HubWireFormat) throws(HubProtocolError) -> (
        bytes: [UInt8], buffer: ByteBuffer
    ) {
        switch format {
        case .json:
            if let json { return json }
        case .messagePack:
            if let messagePack { return messagePack }
        }
        let bytes = try format.encode(message)
        let entry = (bytes: bytes, buffer: ByteBuffer(bytes: bytes))
        encodingCount += 1
        switch format {
        case .json: json = entry
        case .messagePack: messagePack = entry
        }
        return entry
    }

    /// The framed bytes for a connection speaking `format`.
    mutating func bytes(for format: HubWireFormat) throws(HubProtocolError) -> ByteBuffer {
        try cached(format).buffer
    }

    /// The same bytes as an array (a backplane payload; the array's storage is shared, not copied).
    mutating func encoded(for format: HubWireFormat) throws(HubProtocolError) -> [UInt8] {
        try cached(format).bytes
    }
}
