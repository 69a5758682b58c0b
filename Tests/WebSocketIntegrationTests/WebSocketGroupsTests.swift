import Backplane
import NIOConcurrencyHelpers
import NIOCore
import Testing
import WebSocketClient
import WebSocketCore
import WebSocketDeflate
import WebSocketNIO
import WebSocketNIOTestSupport
import WebSocketServer

/// ``WebSocketGroups``: all / group / connection / user sends with exclusions, on plain and permessage-deflate
/// connections, across two servers of one process (``InProcessBackplane``), and the slow-consumer close.
@Suite("WebSocketGroups: fan-out for plain WebSocket routes", .serialized, .timeLimit(.minutes(1)))
struct WebSocketGroupsTests {
    /// `/chat?id=…&user=…&groups=a,b`: the connection joins `groups` and ignores what it receives.
    static func chatRoute(_ groups: WebSocketGroups) -> WebSocketRoute {
        WebSocketRoute(
            path: "/chat",
            handler: .async { webSocket, upgrade in
                var fields: [String: String] = [:]
                for pair in (upgrade.request.query ?? "").split(separator: "&") {
                    let parts = pair.split(separator: "=", maxSplits: 1).map(String.init)
                    if parts.count == 2 { fields[parts[0]] = parts[1] }
                }
                try await groups.withMember(
                    webSocket, connectionId: fields["id"] ?? "", userId: fields["user"]
                ) { id in
                    for group in (fields["groups"] ?? "").split(separator: ",") {
                        try await groups.addToGroup(String(group), connectionId: id)
                    }
                    for await _ in webSocket.messages {}
                }
            })
    }

    static func withServer(
        _ groups: WebSocketGroups,
        deflate: Bool = false,
        _ body: @Sendable (Server) async throws -> Void
    ) async throws {
        var configuration = Server.Configuration(host: "127.0.0.1", port: 0)
        configuration.shutdownGracePeriod = .seconds(1)
        if deflate { configuration.perMessageDeflate = PerMessageDeflate.Configuration() }
        try await groups.start()
        try await Server(configuration: configuration, routes: [chatRoute(groups)]).withRunning(body)
        await groups.stop()
    }

    /// A client of `/chat`; `deflate` offers permessage-deflate.
    static func join(_ server: Server, _ query: String, deflate: Bool = false) async throws
        -> WebSocket
    {
        var configuration = WebSocketClientConfiguration()
        if deflate { configuration.perMessageDeflate = PerMessageDeflate.Configuration() }
        return try await WebSocket.connect(
            to: "ws://127.0.0.1:\(server.port)/chat?\(query)", configuration: configuration)
    }

    /// The texts `webSocket` receives before `end`.
    static func received(_ webSocket: WebSocket) async -> [String] {
        var texts: [String] = []
        for await message in webSocket.messages {
            if message.text == "end" { break }
            texts.append(message.text)
        }
        return texts
    }

    /// Reads every client until `end` while `sends` runs, then sends `end` to all through `groups`.
    static func collect(
        _ clients: [String: WebSocket],
        ending groups: WebSocketGroups,
        _ sends: @escaping @Sendable () async throws -> Void
    ) async throws -> [String: [String]] {
        try await withTimeout(.seconds(20)) {
            try await withThrowingTaskGroup(of: (String, [String]).self) { group in
                for (name, webSocket) in clients { group.addTask { (name, await received(webSocket)) } }
                try await sends()
                try await groups.send(text: "end", to: .all)
                var result: [String: [String]] = [:]
                for try await (name, texts) in group { result[name] = texts }
                return result
            }
        }
    }

    @Test(
        "all, group (with exclusions), connection and user sends reach exactly their targets; deflate too"
    )
    func oneServer() async throws {
        let groups = WebSocketGroups(scope: "/chat")
        try await Self.withServer(groups, deflate: true) { server in
            let a = try await Self.join(server, "id=a&user=u1&groups=g")
            let b = try await Self.join(server, "id=b&user=u1", deflate: true)
            let c = try await Self.join(server, "id=c&user=u2&groups=g,h", deflate: true)
            #expect(
                await eventually { groups.connectionCount == 3 && groups.members(of: "g") == ["a", "c"] })
            let got = try await Self.collect(["a": a, "b": b, "c": c], ending: groups) {
                try await groups.send(text: "to all", to: .all)
                try await groups.send(text: "to g", to: .group("g"))
                try await groups.send(text: "to g but a", to: .group("g"), excluding: ["a"])
                try await groups.send(text: "to b", to: .connection("b"))
                try await groups.send(text: "to u1", to: .user("u1"))
                try await groups.send(text: "to all but b, c", to: .all, excluding: ["b", "c"])
                try await groups.send(.binary, ByteBuffer(string: "to h"), to: .group("h"))
                try await groups.removeFromGroup("g", connectionId: "c")
                try await groups.send(text: "to g again", to: .group("g"))
            }
            #expect(got["a"] == ["to all", "to g", "to u1", "to all but b, c", "to g again"])
            #expect(got["b"] == ["to all", "to b", "to u1"])
            #expect(got["c"] == ["to all", "to g", "to g but a", "to h"])
            for webSocket in [a, b, c] { _ = await webSocket.close() }
            #expect(await eventually { groups.connectionCount == 0 && groups.members(of: "h").isEmpty })
            await #expect(throws: BackplaneError.self) {
                try await groups.addToGroup("g", connectionId: "gone")
            }
        }
    }

    @Test(
        "two servers on an InProcessBackplane: each target reaches its connections on both, exactly once"
    )
    func twoServers() async throws {
        let bus = InProcessBackplane.Bus()
        let one = WebSocketGroups(
            scope: "/chat", backplane: InProcessBackplane(serverId: "one", bus: bus))
        let two = WebSocketGroups(
            scope: "/chat", backplane: InProcessBackplane(serverId: "two", bus: bus))
        try await Self.withServer(one) { serverOne in
            try await Self.withServer(two, deflate: true) { serverTwo in
                let x = try await Self.join(serverOne, "id=x&user=u&groups=g")
                let y = try await Self.join(serverTwo, "id=y&user=u&groups=g", deflate: true)
                let z = try await Self.join(serverTwo, "id=z")
                #expect(await eventually { one.connectionCount == 1 && two.connectionCount == 2 })
                #expect(await eventually { two.members(of: "g") == ["y"] })
                let got = try await Self.collect(["x": x, "y": y, "z": z], ending: one) {
                    try await one.send(text: "all from one", to: .all)
                    try await one.send(text: "g from one", to: .group("g"))
                    try await two.send(text: "u from two", to: .user("u"))
                    try await one.send(text: "y from one", to: .connection("y"))
                    try await two.send(text: "g from two but y", to: .group("g"), excluding: ["y"])
                    // A connection of server 2 joins a group through server 1 (acknowledged by server 2).
                    try await one.addToGroup("h", connectionId: "z")
                    try await one.send(text: "h from one", to: .group("h"))
                }
                #expect(got["x"] == ["all from one", "g from one", "u from two", "g from two but y"])
                #expect(got["y"] == ["all from one", "g from one", "u from two", "y from one"])
                #expect(got["z"] == ["all from one", "h from one"])
                for webSocket in [x, y, z] { _ = await webSocket.close() }
                #expect(await eventually { one.connectionCount == 0 && two.connectionCount == 0 })
                await #expect(throws: BackplaneError.self) {
                    try await one.addToGroup("h", connectionId: "z")
                }
            }
        }
    }

    @Test("a connection that does not read is closed as a slow consumer once its outbound buffer passes the limit")
    func slowConsumer() async throws {
        let groups = WebSocketGroups(scope: "/chat", configuration: .init(maxBufferedBytes: 256 * 1024))
        try await Self.withServer(groups) { server in
            var configuration = WebSocketClientConfiguration()
            configuration.webSocket.inboundMessageBufferLimit = 1
            let slow = try await WebSocket.connect(
                to: "ws://127.0.0.1:\(server.port)/chat?id=slow",
                configuration: configuration
            )
            let reader = try await Self.join(server, "id=reader")
            #expect(await eventually { groups.connectionCount == 2 })
            let payload = ByteBuffer(repeating: 0x61, count: 64 * 1024)
            // The slow client reads nothing: its socket buffers fill, then the server's outbound buffer.
            let closed = try await withTimeout(.seconds(20)) { () -> Bool in
                for _ in 0..<4000 {
                    try await groups.send(.binary, payload, to: .connection("slow"))
                    if groups.slowConsumersClosed > 0 { return true }
                    await Task.yield()
                }
                return await eventually { groups.slowConsumersClosed > 0 }
            }
            #expect(closed)
            #expect(groups.slowConsumersClosed == 1)
            // The reader is unaffected.
            let got = try await Self.collect(["reader": reader], ending: groups) {
                try await groups.send(text: "fine", to: .connection("reader"))
            }
            #expect(got["reader"] == ["fine"])
            // Not checked here: the slow client seeing the 1013 close frame once it reads again (observed: its close
            // handshake timed out after 10 s and it saw 1006; left open).
            _ = slow
            _ = await reader.close()
        }
    }
}

/// A backplane that records group interest; `localGroupLeft` takes 200 ms, as a slow broker's UNSUBSCRIBE would.
final class SlowLeaveBackplane: Backplane {
    let serverId = "slow"
    let interested = NIOLockedValueBox(Set<String>())

    func register(scope: String, receiver: any BackplaneReceiver) async throws {}
    func unregister(scope: String) async {}
    func connectionAdded(_ scope: String, connectionId: String, userId: String?) async {}
    func connectionRemoved(_ scope: String, connectionId: String, userId: String?) async {}
    func localGroupJoined(_ scope: String, group: String) async {
        interested.withLockedValue { _ = $0.insert(group) }
    }
    func localGroupLeft(_ scope: String, group: String) async {
        try? await Task.sleep(for: .milliseconds(200))
        interested.withLockedValue { _ = $0.remove(group) }
    }
    func publish(_ message: BackplaneMessage, scope: String) async throws {}
    func requestGroupChange(
        _ change: GroupMembershipChange, connectionId: String, group: String, scope: String, timeout: Duration
    ) async throws {
        throw BackplaneError(.acknowledgementTimeout, "no other server")
    }
}

extension WebSocketGroupsTests {
    @Test("a leave and a join racing on one group leave the backplane subscribed while the group has a member")
    func racingLeaveAndJoin() async throws {
        let backplane = SlowLeaveBackplane()
        let groups = WebSocketGroups(scope: "/chat", backplane: backplane)
        try await Self.withServer(groups) { server in
            let a = try await Self.join(server, "id=a&groups=r")
            let b = try await Self.join(server, "id=b")
            #expect(await eventually { groups.connectionCount == 2 && groups.members(of: "r") == ["a"] })
            #expect(backplane.interested.withLockedValue { $0 } == ["r"])
            // The last member leaves (a slow unsubscribe starts), and another joins before it has finished.
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await groups.removeFromGroup("r", connectionId: "a") }
                try await Task.sleep(for: .milliseconds(50))
                group.addTask { try await groups.addToGroup("r", connectionId: "b") }
                try await group.waitForAll()
            }
            #expect(groups.members(of: "r") == ["b"])
            #expect(backplane.interested.withLockedValue { $0 } == ["r"])
            for webSocket in [a, b] { _ = await webSocket.close() }
        }
    }
}
