/// A method of a hub's clients, declared once with its signature so that the server's calls
/// (`clients.all.send(…)`, `caller.invoke(…)`) and the Swift client's handlers (`on(…)`) are checked by the
/// compiler: the wrong number or type of arguments, a handler with the wrong parameters or a result of the wrong
/// type does not compile, and no call site spells the method's name.
///
/// `Signature` is a function type: its parameters are the Invocation's arguments, in order, and its result is what
/// the client answers (HubProtocol.md "Invocation", "Client results"); `Void` for a method the server only sends.
/// Parameter labels may name the arguments (`(_ user: String, _ text: String) -> Void`); they are documentation
/// only, the wire carries positional arguments. Every parameter is `Encodable & Decodable & Sendable` at the places
/// that use the descriptor (the server encodes, the client decodes). The descriptor itself is only the method name:
/// its encoding on the wire is the same as an untyped call with that name.
///
/// A client contract is a namespace of descriptors, shared by the server and the Swift client (put it in a module
/// both import):
///
/// ```swift
/// enum ChatClient {
///     static let receiveMessage = ClientMethod<(_ user: String, _ text: String) -> Void>("ReceiveMessage")
///     static let getAnswer = ClientMethod<(_ question: String) -> Int>("GetAnswer")
/// }
///
/// // Server, in a hub method:
/// try await context.clients.all.send(ChatClient.receiveMessage, user, text)
/// let answer = try await context.clients.client(id).invoke(ChatClient.getAnswer, "6 × 7?")  // an Int
///
/// // Swift client:
/// connection.on(ChatClient.receiveMessage) { user, text in print("\(user): \(text)") }
/// connection.on(ChatClient.getAnswer) { question in 42 }
/// ```
///
/// ## Why descriptors, not a protocol with a macro or generated code
/// ASP.NET Core types clients as an interface (`Hub<IChatClient>`) and implements it at run time with a dynamic
/// proxy. Swift has no run-time proxies, so a protocol of client methods needs a type that conforms to it and turns
/// each call into an Invocation: written by hand (the method names in strings again, once per method), by a macro
/// (swift-syntax: a large build dependency for every user of the hub modules, and not available to this project),
/// or by a code generator (an extra build step and generated files to keep in sync). A descriptor per method gives
/// the same compile-time checks with plain generics: parameter packs carry the argument types from the declaration
/// to every call and handler, the name is written exactly once, and the same value serves the server and the
/// client. What a protocol would add, a conformance check that a client implements every method, does not exist
/// over the wire anyway (a SignalR client may handle any subset).
public struct ClientMethod<Signature>: Sendable, Hashable, CustomStringConvertible {
    /// The method name on the wire (the Invocation's `target`). SignalR clients match it case-insensitively.
    public let name: String

    /// A client method called `name` on the wire.
    public init(_ name: String) {
        self.name = name
    }

    public var description: String { name }
}
