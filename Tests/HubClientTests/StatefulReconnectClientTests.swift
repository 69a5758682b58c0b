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
    /// The keys `Hold` waits for, put here by the tests.
    static let opened = NIOLockedValueBox<Set<String>>([])

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
        // An inline invocation (the connection reads nothing else while it runs): `Held` 1, waits for
        // "<tag>-a", `Held` 2, waits for "<tag>-b" (each wait at most 10 s), records -1 and returns 42.
        methods.on("Hold") { (hub: StatefulHub, tag: String) -> Int in
            try await hub.context.clients.caller.send("Held", 1)
            await waitUntilOpened(tag + "-a")
            try await hub.context.clients.caller.send("Held", 2)
            await waitUntilOpened(tag + "-b")
            recorded.withLockedValue { $0[hub.context.connectionId, default: []].append(-1) }
            return 42
        }
    }

    /// Polls ``opened`` for `key` every 10 ms, at most 10 s.
    static func waitUntilOpened(_ key: String) async {
        for _ in 0..<1000 where !opened.withLockedValue({ $0.contains(key) }) {
            try? await Task.sleep(for: .milliseconds(10))
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
        try await Self.exchange(hubProtocol, drops: [150: .plain, 400: .plain])
    }

    /// Every drop is resumed, not only the first: three in a row, and the second one's resume attempt is cut
    /// too (the network is still down when the client comes back), so the client tries again.
    @Test(arguments: [HubClientConfiguration.HubProtocolChoice.json, .messagePack])
    func everyDropIsResumedLosingAndRepeatingNothing(_ hubProtocol: HubClientConfiguration.HubProtocolChoice)
        async throws
    {
        try await Self.exchange(hubProtocol, drops: [100: .plain, 250: .alsoTheResume, 420: .plain])
    }

    /// Sends as fast as they go and a stream item every 2 ms, and the TCP connection cut every 150 ms, eight times:
    /// drops also hit resumes whose replay is still being written. Everything arrives once, in order.
    @Test(arguments: [HubClientConfiguration.HubProtocolChoice.json, .messagePack])
    func dropsDuringResumesAreResumedToo(_ hubProtocol: HubClientConfiguration.HubProtocolChoice) async throws {
        try await Self.withProxiedServer { proxy in
            try await withHubConnection(
                url: "http://127.0.0.1:\(proxy.port)/hub", configuration: Self.clientConfiguration(hubProtocol)
            ) { client in
                let id = try await client.invoke("Id", returning: String.self)
                // Below the client's stream buffer limit (1000): a starved reader cannot make it a slow consumer.
                let count = 900
                let received = try await withThrowingTaskGroup(of: [Int].self) { group in
                    group.addTask {
                        for number in 0..<count { try await client.send("Record", number) }
                        return []
                    }
                    group.addTask {
                        var items: [Int] = []
                        for try await item in try await client.stream("Numbers", count, 2, of: Int.self) {
                            items.append(item)
                        }
                        return items
                    }
                    group.addTask {
                        for _ in 0..<8 {
                            try await Task.sleep(for: .milliseconds(150))
                            proxy.dropAll()
                        }
                        return []
                    }
                    var all: [[Int]] = []
                    for try await part in group { all.append(part) }
                    return all.flatMap { $0 }
                }
                #expect(received == Array(0..<count))
                #expect(
                    await eventually(timeout: .seconds(10)) {
                        StatefulHub.recorded.withLockedValue { $0[id] ?? [] }.count >= count
                    })
                #expect(try await client.invoke("Recorded", returning: [Int].self) == Array(0..<count))
                #expect(try await client.invoke("Id", returning: String.self) == id)
                #expect(client.isConnected)
            }
        }
    }

    enum Drop: Sendable {
        /// The TCP connection is cut.
        case plain
        /// The TCP connection is cut, then the client's first resume attempt before it reaches the server.
        case alsoTheResume
    }

    /// 600 stream items from the server and 300 sends from the client at once, the TCP connection cut when the
    /// client has received each count of `drops`; every message arrives once, in order, on the same connection.
    static func exchange(_ hubProtocol: HubClientConfiguration.HubProtocolChoice, drops: [Int: Drop]) async throws {
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
                    // Server to client: a paced stream; the TCP connection is cut while it runs.
                    group.addTask {
                        var items: [Int] = []
                        for try await item in try await client.stream("Numbers", count, 2, of: Int.self) {
                            items.append(item)
                            switch drops[items.count] {
                            case .plain?:
                                proxy.dropAll()
                            case .alsoTheResume?:
                                let before = proxy.acceptedConnections
                                proxy.connectDelay = .seconds(3)
                                proxy.dropAll()
                                // The proxy holds the resume's TCP connection back: cut it as well.
                                #expect(await eventually { proxy.acceptedConnections > before })
                                proxy.connectDelay = .zero
                                proxy.dropAll()
                            case nil:
                                break
                            }
                        }
                        return items
                    }
                    var all: [[Int]] = []
                    for try await part in group { all.append(part) }
                    return all.flatMap { $0 }
                }
                #expect(received == Array(0..<count))
                // Negotiate, the WebSocket, a resume per drop (and the cut attempts).
                #expect(proxy.acceptedConnections >= 2 + drops.count)
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

    /// A client that comes back while an inline hub method of its connection runs is resumed at once: what the
    /// method sends after the drop reaches the client while the method still runs, its Completion comes once,
    /// and the client's messages sent meanwhile run after it, in order (one invocation at a time, as before).
    @Test func resumeIsAdoptedWhileAnInlineMethodRuns() async throws {
        try await Self.withProxiedServer { proxy in
            let held = Inbox<Int>()
            try await withHubConnection(
                url: "http://127.0.0.1:\(proxy.port)/hub", configuration: Self.clientConfiguration(.json),
                setUp: { $0.on("Held") { (step: Int) in held.put(step) } }
            ) { client in
                let id = try await client.invoke("Id", returning: String.self)
                try await withThrowingTaskGroup(of: Int.self) { group in
                    group.addTask { try await client.invoke("Hold", id, returning: Int.self) }
                    #expect(await held.next() == 1)
                    proxy.dropAll()
                    for number in 0..<5 { try await client.send("Record", number) }
                    StatefulHub.opened.withLockedValue { _ = $0.insert(id + "-a") }
                    // `Hold` sends Held 2, then waits for "-b", opened only once Held 2 is here: it can only come
                    // on the new WebSocket, adopted while the method runs.
                    #expect(await held.next(timeout: .seconds(8)) == 2)
                    StatefulHub.opened.withLockedValue { _ = $0.insert(id + "-b") }
                    var results: [Int] = []
                    for try await result in group { results.append(result) }
                    #expect(results == [42])
                }
                #expect(try await client.invoke("Recorded", returning: [Int].self) == [-1, 0, 1, 2, 3, 4])
                #expect(try await client.invoke("Id", returning: String.self) == id)
                #expect(await held.next(timeout: .milliseconds(300)) == nil)
                #expect(proxy.acceptedConnections >= 3)  // negotiate, WebSocket, the resume
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
