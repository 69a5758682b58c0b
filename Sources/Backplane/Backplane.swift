/// Who a backplane message is for, inside one scope (a hub, a WebSocket route, an event stream).
///
/// The channel layout of the Redis backplane follows ASP.NET Core SignalR's (`{prefix}:{scope}:all`,
/// `…:group:{name}`, `…:connection:{id}`, `…:user:{id}`).
public enum BackplaneTarget: Sendable, Hashable {
    /// Every connection of the scope, on every server.
    case all
    /// The members of a group, on every server.
    case group(String)
    /// One connection, wherever it lives.
    case connection(String)
    /// Every connection of one user, on every server.
    case user(String)
}

/// A message crossing servers: already serialized, once per encoding its receivers may need.
///
/// The payloads are opaque to the backplane. A hub publishes one payload per hub protocol (`"json"`,
/// `"messagepack"`: the framed bytes each protocol's connections are written), a WebSocket route one per frame
/// kind; receivers frame each payload once for all their local recipients.
public struct BackplaneMessage: Sendable, Hashable {
    /// One encoding of the message: its name (a hub protocol name, `"text"`, `"binary"`, …) and its bytes.
    public struct Payload: Sendable, Hashable {
        /// The encoding's name, unique within one message (e.g. `"json"`, `"messagepack"`, `"text"`).
        public var encoding: String
        /// The serialized message, owned by this value.
        public var bytes: [UInt8]

        public init(encoding: String, bytes: [UInt8]) {
            self.encoding = encoding
            self.bytes = bytes
        }
    }

    /// Who it is for.
    public var target: BackplaneTarget
    /// Connections that must not receive it (``BackplaneTarget/all`` / ``BackplaneTarget/group(_:)`` with
    /// exceptions: `allExcept`, `groupExcept`, `others`).
    public var excludedConnectionIds: [String]
    /// The message, once per encoding (each encoding at most once).
    public var payloads: [Payload]

    public init(target: BackplaneTarget, excludedConnectionIds: [String] = [], payloads: [Payload]) {
        self.target = target
        self.excludedConnectionIds = excludedConnectionIds
        self.payloads = payloads
    }

    /// The bytes of one encoding, or nil when the publisher did not include it.
    public func payload(for encoding: String) -> [UInt8]? {
        payloads.first { $0.encoding == encoding }?.bytes
    }
}

/// A change of one connection's group membership, asked of the server the connection lives on.
public enum GroupMembershipChange: Sendable, Hashable {
    /// Add the connection to the group (no effect when it is a member already).
    case add
    /// Remove the connection from the group (no effect when it is not a member).
    case remove
}

/// The local side of one scope on one server: where a backplane delivers what other servers published.
///
/// Called on the backplane's own tasks; implementations must not block (queue to each connection's bounded
/// outbound buffer, as a local send does).
public protocol BackplaneReceiver: Sendable {
    /// Delivers `message` to the local connections it targets, minus its excluded ones.
    func receive(_ message: BackplaneMessage)

    /// Applies a membership change asked by another server, if `connectionId` lives here.
    /// - Returns: whether the connection lives on this server (only then is the change acknowledged).
    func applyGroupChange(_ change: GroupMembershipChange, connectionId: String, group: String) async -> Bool
}

/// Errors of a backplane.
public struct BackplaneError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What failed.
    public enum Kind: Sendable, Hashable {
        /// No server acknowledged a group-membership change in time (the connection is unknown everywhere, or
        /// its server is down).
        case acknowledgementTimeout
        /// The broker cannot be reached now (the message was not published; local delivery is unaffected).
        case unavailable
        /// The scope was not registered on this backplane.
        case unknownScope
        /// This message cannot be published as it is (e.g. a group name, user id or exclusion list past the
        /// envelope's limits, `BackplaneEnvelopeCodec.Limits`); the broker is fine and other messages go on.
        case messageRefused
    }

    /// What failed.
    public var kind: Kind
    /// What happened, for logs (no payload bytes, no tokens).
    public var reason: String

    public init(_ kind: Kind, _ reason: String) {
        self.kind = kind
        self.reason = reason
    }

    public var description: String { "BackplaneError(\(kind)): \(reason)" }
}

/// Carries messages and group-membership changes between the server processes of one application.
///
/// Contract (every implementation):
/// - **Local first.** A layer delivers to its own local connections itself and publishes for the others; a
///   server never receives its own publications back through ``BackplaneReceiver/receive(_:)``. Local traffic
///   therefore keeps flowing while the broker is down.
/// - **At most once** across servers: a message published while a server is cut off from the broker is lost for
///   that server (counted and reported by the implementation); messages of one publisher to one target arrive in
///   publish order.
/// - **Subscriptions follow local presence**: a server receives `group` messages only while it has a local member
///   (``localGroupJoined(_:group:)``/``localGroupLeft(_:group:)`` are reference-counted by the caller: called on the
///   first join and the last leave), and `connection`/`user` messages only for connections it holds.
public protocol Backplane: Sendable {
    /// This server's identity, unique among the servers of one backplane (acknowledgements are addressed to it).
    var serverId: String { get }

    /// Starts delivering the scope's messages to `receiver`. A scope is registered once per server.
    /// - Throws: ``BackplaneError`` (`.unavailable`) when the broker cannot be reached; the implementation keeps
    ///   trying and delivers once it can.
    func register(scope: String, receiver: any BackplaneReceiver) async throws

    /// Stops delivering the scope's messages and forgets its subscriptions.
    func unregister(scope: String) async

    /// A connection (of `userId`, if any) now lives on this server: receive its `connection` and `user` messages.
    func connectionAdded(_ scope: String, connectionId: String, userId: String?) async

    /// The connection is gone from this server.
    func connectionRemoved(_ scope: String, connectionId: String, userId: String?) async

    /// The first local member joined `group`: receive the group's messages.
    func localGroupJoined(_ scope: String, group: String) async

    /// The last local member left `group`.
    func localGroupLeft(_ scope: String, group: String) async

    /// Publishes `message` to the other servers.
    /// - Throws: ``BackplaneError`` (`.unavailable`, `.unknownScope`); local delivery is the caller's and is
    ///   unaffected.
    func publish(_ message: BackplaneMessage, scope: String) async throws

    /// Asks the server holding `connectionId` to add it to (or remove it from) `group`, and waits for its
    /// acknowledgement.
    /// - Parameter timeout: how long to wait for the acknowledgement.
    /// - Throws: ``BackplaneError`` (`.acknowledgementTimeout` when no server holds the connection or it did not
    ///   answer in time, `.unavailable`, `.unknownScope`).
    func requestGroupChange(
        _ change: GroupMembershipChange,
        connectionId: String,
        group: String,
        scope: String,
        timeout: Duration
    ) async throws
}
