import Backplane
import HubProtocol
import NIOConcurrencyHelpers

/// An authenticated user: the id that ``HubClients/user(_:)`` targets, and claims for the application.
public struct HubUser: Sendable, Hashable {
    /// The user id (a connection's user; several connections may share it).
    public var id: String
    /// Name/value claims (roles, names …) for the application's own checks.
    public var claims: [String: String]

    public init(id: String, claims: [String: String] = [:]) {
        self.id = id
        self.claims = claims
    }
}

/// What lives as long as one connection: its ids, its user, and the application's per-connection items.
public final class HubConnectionContext: Sendable {
    /// The public connection id (the one other clients and ``HubClients/client(_:)`` use; never the secret
    /// connection token).
    public let connectionId: String
    /// The user the authenticator produced, nil for an anonymous connection.
    public let user: HubUser?
    /// The hub protocol the client chose in the handshake: `"json"` or `"messagepack"`.
    public let protocolName: String
    private let storage = NIOLockedValueBox<[String: any Sendable]>([:])
    private let abortHandler: @Sendable () -> Void

    init(connectionId: String, user: HubUser?, protocolName: String, abort: @escaping @Sendable () -> Void) {
        self.connectionId = connectionId
        self.user = user
        self.protocolName = protocolName
        self.abortHandler = abort
    }

    /// The item stored under `key`, if it has type `T`.
    public func item<T: Sendable>(_ key: String, as type: T.Type = T.self) -> T? {
        storage.withLockedValue { $0[key] as? T }
    }

    /// Stores (or, with nil, removes) an item for the lifetime of the connection.
    public func setItem(_ key: String, _ value: (any Sendable)?) {
        storage.withLockedValue { $0[key] = value }
    }

    /// Closes the connection (a Close message with an error, then the WebSocket close).
    public func abort() {
        abortHandler()
    }
}

/// What a hub instance gets: the calling connection, the clients to send to, and the groups.
public struct HubContext: Sendable {
    /// The connection being served.
    public let connection: HubConnectionContext
    /// Who to send to, relative to this connection (``HubClients/caller``, ``HubClients/others`` …).
    public let clients: HubClients
    /// Group membership.
    public let groups: HubGroups

    /// The public id of the calling connection.
    public var connectionId: String { connection.connectionId }
    /// The calling connection's user, if authenticated.
    public var user: HubUser? { connection.user }
}

/// Selects the connections a message goes to (ASP.NET Core's `IHubClients`).
public struct HubClients: Sendable {
    let manager: HubLifetimeManager
    /// The calling connection, nil outside an invocation (``HubEndpoint/clients``).
    let callerId: String?

    /// Every connection.
    public var all: HubClientProxy { proxy(.all) }
    /// The calling connection (nobody outside an invocation).
    public var caller: HubClientProxy { proxy(.connections(callerId.map { [$0] } ?? [])) }
    /// Every connection but the caller.
    public var others: HubClientProxy { proxy(.allExcept(callerId.map { [$0] } ?? [])) }
    /// One connection, by public id.
    public func client(_ connectionId: String) -> HubClientProxy { proxy(.connections([connectionId])) }
    /// Some connections, by public id.
    public func clients(_ connectionIds: [String]) -> HubClientProxy { proxy(.connections(connectionIds)) }
    /// Every connection but these.
    public func allExcept(_ connectionIds: [String]) -> HubClientProxy { proxy(.allExcept(connectionIds)) }
    /// The members of a group.
    public func group(_ name: String) -> HubClientProxy { proxy(.groups([name], except: [])) }
    /// The members of any of these groups (each connection once).
    public func groups(_ names: [String]) -> HubClientProxy { proxy(.groups(names, except: [])) }
    /// The members of a group but these connections.
    public func groupExcept(_ name: String, _ connectionIds: [String]) -> HubClientProxy {
        proxy(.groups([name], except: connectionIds))
    }
    /// The members of a group but the caller.
    public func othersInGroup(_ name: String) -> HubClientProxy {
        proxy(.groups([name], except: callerId.map { [$0] } ?? []))
    }
    /// Every connection of a user.
    public func user(_ userId: String) -> HubClientProxy { proxy(.users([userId])) }
    /// Every connection of these users.
    public func users(_ userIds: [String]) -> HubClientProxy { proxy(.users(userIds)) }

    private func proxy(_ target: HubLifetimeManager.Target) -> HubClientProxy {
        HubClientProxy(manager: manager, target: target)
    }
}

/// A set of connections to invoke a client method on.
public struct HubClientProxy: Sendable {
    let manager: HubLifetimeManager
    let target: HubLifetimeManager.Target

    /// Invokes `method` on every selected client with `arguments` (an Invocation without invocationId: no
    /// answer). The message is serialized once per protocol in use and the same bytes are queued on every
    /// connection; the call returns when they are queued, not when they are delivered. A connection whose
    /// outbound buffer overflows is closed (see ``HubConfiguration/maximumBufferedBytes``).
    ///
    /// With a backplane the message is also queued for the other servers (when it may have recipients there)
    /// and published by the endpoint's worker: this call never waits for the broker, and local delivery never
    /// depends on it. Across servers delivery is at most once (see ``HubEndpoint/backplaneStatistics``); a
    /// remote connection in several of the groups of ``HubClients/groups(_:)`` gets the message once per group.
    /// - Throws: ``HubProtocol/HubProtocolError`` `.unrepresentableValue` when an argument cannot be encoded.
    public func send(_ method: String, _ arguments: any Encodable & Sendable...) async throws {
        let values = arguments.map { HubValue($0) }
        let message = HubMessage.invocation(.init(invocationId: nil, target: method, arguments: values))
        try manager.send(message, to: target)
    }
}

extension HubClientProxy {
    /// Client results: invokes `method` on one client (an Invocation with an invocation id) and returns the
    /// `result` of the client's Completion, decoded as `R` (HubProtocol.md "Invocations": the callee answers with
    /// a Completion). Only for a proxy that selects exactly one connection (``HubClients/client(_:)``,
    /// ``HubClients/caller``), and only for a connection of this server: client results do not cross a backplane
    /// (the connection of another server is "not connected to this server").
    ///
    /// A client's own invocations run one at a time, so a hub method cannot wait for a result from its caller:
    /// that call throws at once (ASP.NET Core refuses it too unless `MaximumParallelInvocationsPerClient > 1`).
    /// - Throws: ``HubError`` when the proxy does not select one connection, the connection is unknown or ends
    ///   first, the client answers with an error (its text), the result does not decode to `R`, or `timeout`
    ///   passes; `CancellationError` when the calling task is cancelled.
    public func invoke<R: Decodable & Sendable>(
        _ method: String, _ arguments: any Encodable & Sendable..., returning type: R.Type = R.self,
        timeout: Duration = .seconds(30)
    ) async throws -> R {
        guard case .connections(let ids) = target, ids.count == 1, let id = ids.first else {
            throw HubError("Client results need exactly one connection.")
        }
        let value = try await manager.invoke(
            id, method: method, arguments: arguments.map { HubValue($0) }, timeout: timeout)
        do {
            return try value.decode(R.self)
        } catch {
            throw HubError("The client's result is not a \(R.self).")
        }
    }
}

/// Strongly-typed client calls: the method and its argument types come from a ``HubProtocol/ClientMethod``
/// descriptor of the client contract, so the compiler checks every call (see ``HubProtocol/ClientMethod`` for the
/// design). On the wire these are the same Invocations as the untyped calls with the descriptor's name.
extension HubClientProxy {
    /// Invokes a client method of the contract on every selected client (an Invocation without invocationId),
    /// as the untyped `send("Name", …)`: serialized once per protocol in use, returns when queued.
    /// - Parameters:
    ///   - method: the descriptor, e.g. `ChatClient.receiveMessage` of type `ClientMethod<(String, String) -> Void>`.
    ///   - arguments: exactly the descriptor's parameter types, in order.
    /// - Throws: ``HubProtocol/HubProtocolError`` `.unrepresentableValue` when an argument cannot be encoded.
    public func send<each Argument: Encodable & Sendable>(
        _ method: ClientMethod<(repeat each Argument) -> Void>, _ arguments: repeat each Argument
    ) async throws {
        let message = HubMessage.invocation(
            .init(invocationId: nil, target: method.name, arguments: Self.values(repeat each arguments)))
        try manager.send(message, to: target)
    }

    /// Client results with a contract: invokes a client method whose descriptor declares a result, on the one
    /// selected client, and returns the client's answer decoded as that result (HubProtocol.md "Client results").
    /// The same rules as the untyped
    /// `invoke("Name", …, returning:timeout:)` apply.
    /// - Parameters:
    ///   - method: the descriptor, e.g. `ClientMethod<(_ question: String) -> Int>`.
    ///   - arguments: exactly the descriptor's parameter types, in order.
    ///   - timeout: how long to wait for the client's Completion. Default 30 s.
    /// - Throws: as the untyped `invoke`.
    public func invoke<each Argument: Encodable & Sendable, Result: Decodable & Sendable>(
        _ method: ClientMethod<(repeat each Argument) -> Result>, _ arguments: repeat each Argument,
        timeout: Duration = .seconds(30)
    ) async throws -> Result {
        guard case .connections(let ids) = target, ids.count == 1, let id = ids.first else {
            throw HubError("Client results need exactly one connection.")
        }
        let value = try await manager.invoke(
            id, method: method.name, arguments: Self.values(repeat each arguments), timeout: timeout)
        do {
            return try value.decode(Result.self)
        } catch {
            throw HubError("The client's result is not a \(Result.self).")
        }
    }

    private static func values<each Argument: Encodable & Sendable>(_ arguments: repeat each Argument) -> [HubValue] {
        var values: [HubValue] = []
        for argument in repeat each arguments { values.append(HubValue(argument)) }
        return values
    }
}

/// Group membership (ASP.NET Core's `IGroupManager`). Groups exist while they have members; a connection leaves
/// every group when it ends.
///
/// With a backplane (``HubEndpoint/init(path:hub:configuration:authenticator:backplane:)``) a connection of
/// another server can be added and removed too: the server holding it applies the change and acknowledges it.
public struct HubGroups: Sendable {
    let manager: HubLifetimeManager

    /// Adds a connection (by public id) to a group. Without a backplane nothing happens for an unknown
    /// connection.
    ///
    /// With a backplane, a connection of this server is added at once (the group's first local member waits at
    /// most ``HubConfiguration/backplaneInterestTimeout`` for the group's subscription, so that the group's
    /// messages from other servers reach it once this returns); a connection of another server is added by that
    /// server, and this returns when it acknowledged.
    /// - Throws: ``HubError`` (with a backplane only) when no server acknowledged the change within
    ///   ``HubConfiguration/backplaneGroupChangeTimeout`` (the connection is unknown everywhere, or its server is
    ///   cut off from the broker), or the backplane is unavailable. Thrown in a hub method, it becomes the
    ///   invocation's error Completion.
    public func add(_ connectionId: String, to group: String) async throws {
        try await manager.changeGroup(.add, connectionId, group)
    }

    /// Removes a connection from a group (on another server too, with a backplane: see
    /// ``add(_:to:)``).
    /// - Throws: ``HubError`` as ``add(_:to:)``.
    public func remove(_ connectionId: String, from group: String) async throws {
        try await manager.changeGroup(.remove, connectionId, group)
    }
}
