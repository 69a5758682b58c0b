import HubClient
import HubProtocol
import Hubs
import NIOConcurrencyHelpers
import Testing
import WebSocketClient
import WebSocketNIOTestSupport
import WebSocketServer

/// The hub of the stateful reconnect tests: a paced stream, a sink for the client's messages, groups, and a record
/// of `onDisconnected`.
struct StatefulHub: Hub {
    let context: HubContext

    /// What `Record` received, by connection id.
    static let recorded = NIOLockedValueBox<[String: [Int]]>([:])
    /// Connection ids whose `onDisconnected` ran.
    static let disconnected = NIOLockedValueBox<Set<String>>([])

    static func registerMethods(_ methods: inout HubMethods<StatefulHub>) {
        methods.on("Id") { (hub: StatefulHub) -> String in hub.context.connectionId }
        methods.on("Record") { (hub: StatefulHub, number: Int) in
            recorded.withLockedValue { $0[hub.context.connectionId, default: []].append(number) }
        }
        methods.on("Recorded") { (hub: StatefulHub) -> [Int] in
            recorded.withLockedValue { $0[hub.context.connectionId] ?? [] }
        }
        methods.on("Join") { (hub: StatefulHub, group: String) in
            try await hub.context.groups.add(hub.context.connectionId, to: group)
        }
        methods.on("TellGroup") { (hub: StatefulHub, group: String, text: String) in
            try await hub.context.clients.group(group).send("GroupMessage", text)
        }
        methods.stream("Numbers") { (_: StatefulHub, count: Int, everyMs: Int) in
            Paced(count: count, every: .milliseconds(everyMs))
        }
    }

    func onDisconnected(error: (any Error)?) async {
        _ = Self.disconnected.withLockedValue { $0.insert(context.connectionId) }
    }
}

/// 0 ..< count, one every `every`.
struct Paced: AsyncSequence, Sendable {
    let count: Int
    let every: Duration

    struct AsyncIterator: AsyncIteratorProtocol {
        let count: Int
        let every: Duration
        var next = 0

        mutating func next() async throws -> Int? {
            guard next < count else { return nil }
            try await Task.sleep(for: every)
            defer { next += 1 }
            return next
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(count: count, every: every) }
}

/// Our client against our server through a ``TCPProxy`` that cuts the TCP connections.
@Suite struct StatefulReconnectClientTests {
    static func withProxiedServer(
        disconnectTimeout: Duration = .seconds(15),
        _ body: @escaping @Sendable (TCPProxy) async throws -> Void
    ) async throws {
        var configuration = HubConfiguration()
        configuration.allowStatefulReconnects = true
        configuration.statefulReconnectDisconnectTimeout = disconnectTimeout
        let endpoint = HubEndpoint(path: "/hub", hub: StatefulHub.self, configuration: configuration)
        var serverConfiguration = Server.Configuration(host: "127.0.0.1", port: 0)
        serverConfiguration.shutdownGracePeriod = .seconds(1)
        let server = Server(
            configuration: serverConfiguration, routes: [endpoint.webSocketRoute],
            httpRoutes: [endpoint.negotiateRoute])
        try await withTimeout(.seconds(40)) {
            try await server.withRunning { server in
                let proxy = try await TCPProxy.start(targetPort: server.port)
                do {
                    try await body(proxy)
                } catch {
                    await proxy.stop()
                    throw error
                }
                await proxy.stop()
            }
        }
    }

    static func clientConfiguration(
        _ hubProtocol: HubClientConfiguration.HubProtocolChoice, reconnectDelays: [Duration]? = nil
    ) -> HubClientConfiguration {
        var configuration = HubClientConfiguration(hubProtocol: hubProtocol, reconnectDelays: reconnectDelays)
        configuration.useStatefulReconnect = true
        return configuration
    }

    @Test(arguments: [HubClientConfiguration.HubProtocolChoice.json, .messagePack])
    func droppedTCPMidStreamLosesAndRepeatsNothing(_ hubProtocol: HubClientConfiguration.HubProtocolChoice)
        async throws
    {
        try await Self.withProxiedServer { proxy in
            let groupMessages = Inbox<String>()
            try await withHubConnection(
                url: "http://127.0.0.1:\(proxy.port)/hub", configuration: Self.clientConfiguration(hubProtocol),
                setUp: { $0.on("GroupMessage") { (text: String) in groupMessages.put(text) } }
            ) { client in
                let id = try await client.invoke("Id", returning: String.self)
                #expect(client.connectionId == id)
                try await client.invoke("Join", "room")
                let count = 600
                let sends = 300
                let received = try await withThrowingTaskGroup(of: [Int].self) { group in
                    // Client to server: numbered sends, concurrently with the stream.
                    group.addTask {
                        for number in 0..<sends {
                            try await client.send("Record", number)
                            try await Task.sleep(for: .milliseconds(2))
                        }
                        return []
                    }
                    // Server to client: a paced stream; the TCP connection is cut twice while it runs.
                    group.addTask {
                        var items: [Int] = []
                        for try await item in try await client.stream("Numbers", count, 2, of: Int.self) {
                            items.append(item)
                            if items.count == 150 || items.count == 400 { proxy.dropAll() }
                        }
                        return items
                    }
                    var all: [[Int]] = []
                    for try await part in group { all.append(part) }
                    return all.flatMap { $0 }
                }
                #expect(received == Array(0..<count))
                #expect(proxy.acceptedConnections >= 4)  // negotiate, WebSocket, two reconnects
                // Every send arrived once, in order (the last ones may still be on their way).
                #expect(
                    await eventually {
                        StatefulHub.recorded.withLockedValue { $0[id] ?? [] }.count >= sends
                    })
                let recorded = try await client.invoke("Recorded", returning: [Int].self)
                #expect(recorded == Array(0..<sends))
                // Same connection: same id, still in its group, never disconnected.
                #expect(try await client.invoke("Id", returning: String.self) == id)
                try await client.invoke("TellGroup", "room", "still here")
                #expect(await groupMessages.next() == "still here")
                #expect(!StatefulHub.disconnected.withLockedValue { $0.contains(id) })
                #expect(client.isConnected)
            }
        }
    }

    @Test func expiredConnectionFallsBackToANewOne() async throws {
        try await Self.withProxiedServer(disconnectTimeout: .milliseconds(200)) { proxy in
            let client = HubClientConnection(
                url: "http://127.0.0.1:\(proxy.port)/hub",
                configuration: Self.clientConfiguration(.json, reconnectDelays: [.zero, .zero]))
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await client.run() }
                try await client.waitUntilConnected()
                let first = try await client.invoke("Id", returning: String.self)
                // The resume attempt reaches the server only after the connection has expired: 404.
                proxy.connectDelay = .milliseconds(800)
                proxy.dropAll()
                var events = client.events.makeAsyncIterator()
                guard case .reconnecting? = await events.next() else {
                    Issue.record("no reconnecting event")
                    group.cancelAll()
                    return
                }
                guard case .reconnected(let newId)? = await events.next() else {
                    Issue.record("no reconnected event")
                    group.cancelAll()
                    return
                }
                #expect(newId != nil && newId != first)
                #expect(await eventually { StatefulHub.disconnected.withLockedValue { $0.contains(first) } })
                proxy.connectDelay = .zero
                #expect(try await client.invoke("Id", returning: String.self) == newId)
                group.cancelAll()
            }
        }
    }

    @Test func serverWithoutStatefulReconnectIsUsedNormally() async throws {
        let endpoint = HubEndpoint(path: "/hub", hub: StatefulHub.self)
        var serverConfiguration = Server.Configuration(host: "127.0.0.1", port: 0)
        serverConfiguration.shutdownGracePeriod = .seconds(1)
        let server = Server(
            configuration: serverConfiguration, routes: [endpoint.webSocketRoute],
            httpRoutes: [endpoint.negotiateRoute])
        try await withTimeout(.seconds(20)) {
            try await server.withRunning { server in
                try await withHubConnection(
                    url: "http://127.0.0.1:\(server.port)/hub", configuration: Self.clientConfiguration(.json)
                ) { client in
                    let items = try await client.stream("Numbers", 5, 1, of: Int.self)
                    var all: [Int] = []
                    for try await item in items { all.append(item) }
                    #expect(all == [0, 1, 2, 3, 4])
                }
            }
        }
    }
}
