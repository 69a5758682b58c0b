import HubProtocol

/// A SignalR hub: the methods clients may invoke, and what happens when a client connects and disconnects.
///
/// A hub instance is transient: one is created with ``init(context:)`` for every invocation and for each of
/// ``onConnected()`` and ``onDisconnected(error:)``, then dropped. State that lives as long as a connection goes in
/// the connection's ``HubConnectionContext/items``; state shared by all connections lives outside the hub.
///
/// ```swift
/// struct ChatHub: Hub {
///     let context: HubContext
///     init(context: HubContext) { self.context = context }
///
///     static func registerMethods(_ methods: inout HubMethods<ChatHub>) {
///         methods.on("SendMessage") { (hub: ChatHub, user: String, message: String) in
///             try await hub.context.clients.all.send("ReceiveMessage", user, message)
///         }
///     }
/// }
/// ```
public protocol Hub: Sendable {
    /// Creates the instance that serves one invocation (or one connect/disconnect callback).
    init(context: HubContext)
    /// Registers the methods clients can invoke, by name (HubProtocol.md "Invocations": names are
    /// case-sensitive, no overloading). Called once per ``HubEndpoint``.
    static func registerMethods(_ methods: inout HubMethods<Self>)
    /// Who may connect to the hub at all (ASP.NET Core's `[Authorize]` on a hub): checked on negotiate and on the
    /// WebSocket upgrade, refused with 401 (no user) or 403 (a user the rule refuses). Default nil: everyone the
    /// authenticator lets in.
    static var authorization: HubAuthorization? { get }
    /// Called after the handshake, before any invocation is read. Throwing closes the connection with an error
    /// Close message.
    func onConnected() async throws
    /// Called once when the connection has ended: `error` is nil after a normal close (the client's close or
    /// Close message), else why it ended (protocol error, timeout, slow consumer, transport failure).
    func onDisconnected(error: (any Error)?) async
}

extension Hub {
    public static var authorization: HubAuthorization? { nil }
    public func onConnected() async throws {}
    public func onDisconnected(error: (any Error)?) async {}
}

/// An error whose message is sent to the client (ASP.NET Core's `HubException`): a hub method throws it to fail
/// an invocation with a message the client may see. Other errors are reported to the client without their text.
public struct HubError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The text sent to the client, after "HubException: ".
    public var message: String

    public init(_ message: String) {
        self.message = message
    }

    public var description: String { "HubException: \(message)" }
}

/// Why a connection ended abnormally, as given to ``Hub/onDisconnected(error:)``.
public struct HubConnectionError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A short reason (also the `error` of the Close message the server sent, when it sent one).
    public var reason: String

    public init(_ reason: String) {
        self.reason = reason
    }

    public var description: String { reason }
}

/// The methods of a hub, registered by name with typed arguments and results.
///
/// Arguments are decoded with `Decodable` from whichever protocol the client speaks (JSON or MessagePack), results
/// and stream items encoded with `Encodable` into it. A parameter of type ``HubUploadStream`` is bound to the next
/// of the invocation's `streamIds` (a client-to-server stream) instead of to an argument.
public struct HubMethods<H: Hub>: Sendable {
    var table: [String: HubMethod] = [:]
    var authorizations: [String: HubAuthorization] = [:]

    init() {}

    /// Restricts a method (ASP.NET Core's `[Authorize]` on a hub method): an invocation by a connection whose user
    /// the rule refuses fails with the error Completion "Failed to invoke 'name' because user is unauthorized"
    /// and the method does not run. Register before or after the method; a second rule replaces the first.
    public mutating func authorize(_ name: String, _ rule: HubAuthorization) {
        authorizations[name] = rule
    }

    /// Registers a method that returns a value, sent in the Completion's `result`.
    public mutating func on<each A: Decodable & Sendable, R: Encodable & Sendable>(
        _ name: String, _ body: @escaping @Sendable (H, repeat each A) async throws -> R
    ) {
        let shape = HubMethod.Shape(repeat (each A).self)
        table[name] = HubMethod(name: name, kind: .single, shape: shape) { context, cursor in
            var cursor = cursor
            let hub = H(context: context)
            let result = try await body(hub, repeat try cursor.bind((each A).self))
            return .value(HubValue(result))
        }
    }

    /// Registers a method without a result: the Completion carries neither result nor error.
    public mutating func on<each A: Decodable & Sendable>(
        _ name: String, _ body: @escaping @Sendable (H, repeat each A) async throws -> Void
    ) {
        let shape = HubMethod.Shape(repeat (each A).self)
        table[name] = HubMethod(name: name, kind: .single, shape: shape) { context, cursor in
            var cursor = cursor
            let hub = H(context: context)
            try await body(hub, repeat try cursor.bind((each A).self))
            return .void
        }
    }

    /// Registers a streaming method: clients call it with a StreamInvocation and get one StreamItem per element,
    /// then a Completion (with an error if the sequence throws). A CancelInvocation or the end of the connection
    /// cancels the task that iterates the sequence.
    public mutating func stream<each A: Decodable & Sendable, S: AsyncSequence & Sendable>(
        _ name: String, _ body: @escaping @Sendable (H, repeat each A) async throws -> S
    ) where S.Element: Encodable & Sendable {
        let shape = HubMethod.Shape(repeat (each A).self)
        table[name] = HubMethod(name: name, kind: .stream, shape: shape) { context, cursor in
            var cursor = cursor
            let hub = H(context: context)
            let sequence = try await body(hub, repeat try cursor.bind((each A).self))
            return .stream { emit in
                for try await element in sequence {
                    try await emit(HubValue(element))
                }
            }
        }
    }
}

/// One registered method, with its types erased.
struct HubMethod: Sendable {
    enum Kind: Sendable {
        case single
        case stream
    }

    /// How many arguments and upload streams the method takes.
    struct Shape: Sendable {
        var argumentCount = 0
        var streamCount = 0

        init<each A>(_ types: repeat (each A).Type) {
            for type in repeat each types {
                if type is any HubUploadStreamParameter.Type {
                    streamCount += 1
                } else {
                    argumentCount += 1
                }
            }
        }
    }

    /// What an invocation produced.
    enum Outcome: Sendable {
        case void
        case value(HubValue)
        /// Iterates the method's sequence, calling `emit` for each element.
        case stream(@Sendable (_ emit: @Sendable (HubValue) async throws -> Void) async throws -> Void)
    }

    let name: String
    let kind: Kind
    let shape: Shape
    let invoke: @Sendable (HubContext, ArgumentCursor) async throws -> Outcome
}

/// Binds the arguments and upload streams of one invocation to a method's parameters, in order.
struct ArgumentCursor: Sendable {
    let arguments: [HubValue]
    let streams: [HubUploadChannel]
    private var argumentIndex = 0
    private var streamIndex = 0

    init(arguments: [HubValue], streams: [HubUploadChannel]) {
        self.arguments = arguments
        self.streams = streams
    }

    /// Thrown when an argument does not decode to its parameter's type.
    struct BindingError: Error, Sendable {
        var detail: String
    }

    mutating func bind<T: Decodable & Sendable>(_ type: T.Type) throws -> T {
        if let streamType = type as? any HubUploadStreamParameter.Type {
            guard streamIndex < streams.count,
                let stream = streamType.init(channel: streams[streamIndex]) as? T
            else {
                throw BindingError(detail: "missing stream")
            }
            streamIndex += 1
            return stream
        }
        guard argumentIndex < arguments.count else { throw BindingError(detail: "missing argument") }
        let value = arguments[argumentIndex]
        argumentIndex += 1
        do {
            return try value.decode(T.self)
        } catch {
            throw BindingError(detail: "\(error)")
        }
    }
}

/// A rule on the user of a connection (per hub or per method).
public struct HubAuthorization: Sendable {
    /// Whether the user (nil: anonymous) passes.
    public let allows: @Sendable (HubUser?) -> Bool

    /// A rule given as a closure (a policy).
    public init(_ allows: @escaping @Sendable (HubUser?) -> Bool) {
        self.allows = allows
    }

    /// Any authenticated user.
    public static let authenticated = HubAuthorization { $0 != nil }

    /// One of these users.
    public static func users(_ ids: String...) -> HubAuthorization {
        let allowed = Set(ids)
        return HubAuthorization { user in user.map { allowed.contains($0.id) } ?? false }
    }

    /// A user with this claim value (a role, for example: `.claim("role", "admin")`).
    public static func claim(_ name: String, _ value: String) -> HubAuthorization {
        HubAuthorization { user in user?.claims[name] == value }
    }
}
