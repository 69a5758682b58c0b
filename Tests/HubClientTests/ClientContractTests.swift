import HubClient
import HubProtocol
import Hubs
import Testing
import WebSocketNIOTestSupport
import WebSocketServer

/// A structured argument, to see nested values survive both protocols.
struct Card: Codable, Sendable, Equatable {
    var title: String
    var score: Double
    var flags: [Bool]
}

/// The client contract of ``ContractHub``: what the hub calls on its clients, declared once.
enum ContractClient {
    static let note = ClientMethod<
        (_ text: String, _ length: Int, _ card: Card, _ tags: [String], _ missing: Int?) -> Void
    >("Note")
    static let poke = ClientMethod<() -> Void>("Poke")
    static let rate = ClientMethod<(_ question: String, _ card: Card) -> Card>("Rate")
}

/// A hub whose calls on clients go through ``ContractClient`` (and one untyped call, to compare).
struct ContractHub: Hub {
    let context: HubContext

    static func registerMethods(_ methods: inout HubMethods<ContractHub>) {
        methods.on("Broadcast") { (hub: ContractHub, text: String) in
            try await hub.context.clients.all.send(
                ContractClient.note, text, text.count, Card(title: text, score: 0.5, flags: [true, false]),
                ["a", "b"], nil)
        }
        methods.on("BroadcastUntyped") { (hub: ContractHub, text: String) in
            try await hub.context.clients.all.send(
                "Note", text, text.count, Card(title: text, score: 0.5, flags: [true, false]), ["a", "b"],
                Int?.none)
        }
        methods.on("Poke") { (hub: ContractHub) in
            try await hub.context.clients.caller.send(ContractClient.poke)
        }
        methods.on("AskRate") { (hub: ContractHub, connectionId: String, question: String) -> Card in
            try await hub.context.clients.client(connectionId).invoke(
                ContractClient.rate, question, Card(title: question, score: 1, flags: []), timeout: .seconds(5))
        }
    }
}

/// Runs a server with ``ContractHub`` at `/typed` and two connected clients (`setUp` registers their handlers).
private func withTwoClients(
    _ hubProtocol: HubClientConfiguration.HubProtocolChoice,
    setUp: @escaping @Sendable (HubClientConnection) -> Void,
    _ body: @escaping @Sendable (HubClientConnection, HubClientConnection) async throws -> Void
) async throws {
    let endpoint = HubEndpoint(path: "/typed", hub: ContractHub.self)
    var configuration = Server.Configuration(host: "127.0.0.1", port: 0)
    configuration.shutdownGracePeriod = .seconds(1)
    let server = Server(
        configuration: configuration, routes: [endpoint.webSocketRoute], httpRoutes: [endpoint.negotiateRoute])
    try await withTimeout(.seconds(20)) {
        try await server.withRunning { server in
            let url = "http://127.0.0.1:\(server.port)/typed"
            let clientConfiguration = HubClientConfiguration(hubProtocol: hubProtocol)
            try await withHubConnection(url: url, configuration: clientConfiguration, setUp: setUp) { first in
                try await withHubConnection(url: url, configuration: clientConfiguration, setUp: setUp) { second in
                    try await body(first, second)
                }
            }
        }
    }
}

@Suite struct ClientContractTests {
    /// Typed sends from the hub reach typed handlers with every argument intact, for both protocols; an untyped
    /// send of the same name and values is received the same way (the descriptor changes nothing on the wire).
    @Test(arguments: [HubClientConfiguration.HubProtocolChoice.json, .messagePack])
    func typedSendReachesTypedHandlers(_ hubProtocol: HubClientConfiguration.HubProtocolChoice) async throws {
        let notes = Inbox<String>()
        let pokes = Inbox<String>()
        let setUp: @Sendable (HubClientConnection) -> Void = { connection in
            connection.on(ContractClient.note) { text, length, card, tags, missing in
                let rest = "\(card.score)|\(card.flags)|\(tags)|\(String(describing: missing))"
                notes.put("\(text)|\(length)|\(card.title)|\(rest)")
            }
            connection.on(ContractClient.poke) { pokes.put("poke") }
        }
        try await withTwoClients(hubProtocol, setUp: setUp) { first, second in
            let expected = "héllo|5|héllo|0.5|[true, false]|[\"a\", \"b\"]|nil"
            try await first.invoke("Broadcast", "héllo")
            #expect(await notes.next() == expected)
            #expect(await notes.next() == expected)
            try await second.invoke("BroadcastUntyped", "héllo")
            #expect(await notes.next() == expected)
            #expect(await notes.next() == expected)
            try await second.invoke("Poke")
            #expect(await pokes.next() == "poke")
            // off(descriptor) removes the handler: the next broadcast reaches only `second`.
            first.off(ContractClient.note)
            try await first.invoke("Broadcast", "x")
            #expect(await notes.next() == "x|1|x|0.5|[true, false]|[\"a\", \"b\"]|nil")
            #expect(await notes.next(timeout: .milliseconds(300)) == nil)
        }
    }

    /// Client results through a contract: the hub's typed `invoke` gets the typed handler's answer back.
    @Test(arguments: [HubClientConfiguration.HubProtocolChoice.json, .messagePack])
    func typedClientResult(_ hubProtocol: HubClientConfiguration.HubProtocolChoice) async throws {
        let setUp: @Sendable (HubClientConnection) -> Void = { connection in
            connection.on(ContractClient.rate) { question, card in
                Card(title: "\(question)/\(card.title)", score: card.score * 4.5, flags: [card.flags.isEmpty])
            }
        }
        try await withTwoClients(hubProtocol, setUp: setUp) { first, second in
            let secondId = try #require(second.connectionId)
            let card = try await first.invoke("AskRate", secondId, "tea?", returning: Card.self)
            #expect(card == Card(title: "tea?/tea?", score: 4.5, flags: [true]))
        }
    }
}
