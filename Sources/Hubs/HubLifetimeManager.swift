import HubProtocol
import NIOConcurrencyHelpers
import NIOCore

/// The connections of one hub endpoint, their groups and users, and fan-out (ASP.NET Core's
/// `DefaultHubLifetimeManager`, in process).
///
/// Encode once: ``send(_:to:)`` serializes the message at most once per protocol (JSON, MessagePack) and queues
/// the same `ByteBuffer` (shared storage, no copy) on every target connection.
final class HubLifetimeManager: Sendable {
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

    /// How many times a message was serialized (for the tests of "one serialization per protocol").
    var serializationCount: Int { serializations.withLockedValue { $0 } }

    /// The number of connections.
    var count: Int { state.withLockedValue { $0.connections.count } }

    func add(_ connection: any HubOutboundConnection) {
        state.withLockedValue { state in
            state.connections[connection.connectionId] = connection
            if let user = connection.userId {
                state.users[user, default: []].insert(connection.connectionId)
            }
        }
    }

    func remove(_ connection: any HubOutboundConnection) {
        let id = connection.connectionId
        state.withLockedValue { state in
            state.connections[id] = nil
            for group in state.groupsOfConnection.removeValue(forKey: id) ?? [] {
                state.groups[group]?.remove(id)
                if state.groups[group]?.isEmpty == true { state.groups[group] = nil }
            }
            if let user = connection.userId {
                state.users[user]?.remove(id)
                if state.users[user]?.isEmpty == true { state.users[user] = nil }
            }
        }
    }

    func addToGroup(_ connectionId: String, _ group: String) {
        state.withLockedValue { state in
            guard state.connections[connectionId] != nil else { return }
            state.groups[group, default: []].insert(connectionId)
            state.groupsOfConnection[connectionId, default: []].insert(group)
        }
    }

    func removeFromGroup(_ connectionId: String, _ group: String) {
        state.withLockedValue { state in
            state.groups[group]?.remove(connectionId)
            if state.groups[group]?.isEmpty == true { state.groups[group] = nil }
            state.groupsOfConnection[connectionId]?.remove(group)
            if state.groupsOfConnection[connectionId]?.isEmpty == true { state.groupsOfConnection[connectionId] = nil }
        }
    }

    /// The ids of the connections.
    var connectionIds: [String] { state.withLockedValue { Array($0.connections.keys) } }

    /// The members of a group (for tests and the application).
    func members(of group: String) -> Set<String> {
        state.withLockedValue { $0.groups[group] ?? [] }
    }

    /// Client results: see ``HubClientProxy/invoke(_:_:returning:timeout:)``.
    func invoke(_ connectionId: String, method: String, arguments: [HubValue], timeout: Duration) async throws
        -> HubValue
    {
        guard let connection = state.withLockedValue({ $0.connections[connectionId] }) else {
            throw HubError("Connection '\(connectionId)' is not connected.")
        }
        return try await connection.invokeClient(method, arguments, timeout: timeout)
    }

    /// Serializes `message` once per protocol needed and queues it on every target connection.
    /// - Throws: ``HubProtocolError`` when the message cannot be encoded (nothing is sent then).
    func send(_ message: HubMessage, to target: Target) throws {
        let targets = state.withLockedValue { state -> [any HubOutboundConnection] in
            switch target {
            case .all:
                return Array(state.connections.values)
            case .allExcept(let excluded):
                let skip = Set(excluded)
                return state.connections.values.filter { !skip.contains($0.connectionId) }
            case .connections(let ids):
                return Set(ids).compactMap { state.connections[$0] }
            case .groups(let names, let excluded):
                let skip = Set(excluded)
                var ids: Set<String> = []
                for name in names { ids.formUnion(state.groups[name] ?? []) }
                return ids.subtracting(skip).compactMap { state.connections[$0] }
            case .users(let users):
                var ids: Set<String> = []
                for user in users { ids.formUnion(state.users[user] ?? []) }
                return ids.compactMap { state.connections[$0] }
            }
        }
        guard !targets.isEmpty else { return }
        var serialized = SerializedHubMessage(message)
        for connection in targets {
            let bytes = try serialized.bytes(for: connection.format)
            connection.enqueue(bytes)
        }
        let encodings = serialized.encodingCount
        serializations.withLockedValue { $0 += encodings }
    }
}

/// What the lifetime manager needs of a connection: its ids, format, and a non-blocking send.
protocol HubOutboundConnection: AnyObject, Sendable {
    var connectionId: String { get }
    var userId: String? { get }
    var format: HubWireFormat { get }
    /// Queues already-framed bytes; never waits (a connection over its buffer limit closes itself).
    func enqueue(_ bytes: ByteBuffer)
    /// Sends an Invocation with an id and returns the client's result.
    func invokeClient(_ target: String, _ arguments: [HubValue], timeout: Duration) async throws -> HubValue
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
/// are produced on first use, then reused for every connection speaking it.
struct SerializedHubMessage {
    let message: HubMessage
    private var json: ByteBuffer?
    private var messagePack: ByteBuffer?
    /// How many encodings were made (at most 2).
    private(set) var encodingCount = 0

    init(_ message: HubMessage) {
        self.message = message
    }

    mutating func bytes(for format: HubWireFormat) throws(HubProtocolError) -> ByteBuffer {
        switch format {
        case .json:
            if let json { return json }
            let buffer = ByteBuffer(bytes: try format.encode(message))
            encodingCount += 1
            json = buffer
            return buffer
        case .messagePack:
            if let messagePack { return messagePack }
            let buffer = ByteBuffer(bytes: try format.encode(message))
            encodingCount += 1
            messagePack = buffer
            return buffer
        }
    }
}
