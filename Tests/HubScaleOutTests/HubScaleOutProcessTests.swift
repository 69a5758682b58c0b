import Foundation
import HubClient
import NIOConcurrencyHelpers
import RedisTestSupport
import Testing

/// Hubs across server processes with this package's Swift hub client: three `hub-chat` processes (the example
/// executable, built by `swift build`) on one real `redis-server`, all on 127.0.0.1 and stopped by their PIDs,
/// with Swift clients (JSON and MessagePack) spread over them. The same cases as the Python multi-process tests
/// (Tests/Hubs/test_hubs_scaleout.py) with the third-party clients: a broadcast reaches every connection exactly
/// once, a group send reaches only the members on every server, a user's every connection gets the message sent
/// to the user, and a connection added to a group by another server gets the group's messages.
///
/// "Exactly once" and "nobody else" are checked with a marker: after the message under test the same client
/// broadcasts a marker; one publisher's messages reach every subscriber in publish order, so once a client has
/// the marker it has everything meant for it before it, and a duplicate or a stray message would be in its inbox.
@Suite("Hubs on three hub-chat processes and one redis-server, with the Swift hub client", .serialized)
struct HubScaleOutProcessTests {
    @Test("A broadcast reaches every connection on every server exactly once")
    func broadcastExactlyOnce() async throws {
        try await withCluster { cluster in
            try await withClients(cluster.everyServerTwice()) { clients in
                try await clients[1].connection.send("SendMessage", "ann", "hello")
                try await clients[1].connection.send("SendMessage", "marker", "end")
                for client in clients {
                    let calls = try await client.messages.wait(untilContains: ["marker", "end"])
                    #expect(calls == [["ann", "hello"], ["marker", "end"]], "client on port \(client.port)")
                }
            }
        }
    }

    @Test("A group send reaches only the members, on every server")
    func groupSendReachesOnlyMembers() async throws {
        let room = "room-\(UUID().uuidString.prefix(6))"
        try await withCluster { cluster in
            try await withClients(cluster.everyServerTwice()) { clients in
                let members = [0, 3, 4]  // on servers 0, 1 and 2
                for index in members {
                    try await clients[index].connection.invoke("JoinRoom", room)
                }
                // The joins announce themselves to the room (UserJoined); the message under test comes after.
                try await clients[1].connection.send("SendToRoom", room, "in the room")
                try await clients[1].connection.send("SendMessage", "marker", "end")
                for (index, client) in clients.enumerated() {
                    _ = try await client.messages.wait(untilContains: ["marker", "end"])
                    let roomCalls = client.roomMessages.calls.map { [$0[0], $0[2]] }
                    #expect(roomCalls == (members.contains(index) ? [[room, "in the room"]] : []), "client \(index)")
                }
            }
        }
    }

    @Test("A message to a user reaches every connection of that user and nobody else")
    func userTargeting() async throws {
        try await withCluster { cluster in
            var specs = cluster.ports.map { ClientSpec(port: $0, protocolChoice: .messagePack, token: "tok-alice") }
            specs.append(ClientSpec(port: cluster.ports[0], protocolChoice: .json, token: "tok-bob"))
            try await withClients(specs) { clients in
                let bob = clients[3]
                try await bob.connection.send("SendToUser", "alice", "psst")
                try await bob.connection.send("SendMessage", "marker", "end")
                for alice in clients[0..<3] {
                    let calls = try await alice.messages.wait(untilContains: ["marker", "end"])
                    #expect(calls == [["bob", "psst"], ["marker", "end"]], "alice on port \(alice.port)")
                }
                #expect(try await bob.messages.wait(untilContains: ["marker", "end"]) == [["marker", "end"]])
            }
        }
    }

    @Test("A connection added to a group by another server receives the group's messages; removed, it does not")
    func groupChangeFromAnotherServer() async throws {
        let room = "room-\(UUID().uuidString.prefix(6))"
        try await withCluster { cluster in
            let specs = [
                ClientSpec(port: cluster.ports[1], protocolChoice: .messagePack),
                ClientSpec(port: cluster.ports[0], protocolChoice: .json),
                ClientSpec(port: cluster.ports[2], protocolChoice: .json),
            ]
            try await withClients(specs) { clients in
                let (target, adder, sender) = (clients[0], clients[1], clients[2])
                let targetId = try await target.connection.invoke("ConnectionId", returning: String.self)
                try await adder.connection.invoke("AddToRoom", targetId, room)
                try await sender.connection.send("SendToRoom", room, "welcome")
                try await sender.connection.invoke("RemoveFromRoom", targetId, room)
                try await sender.connection.send("SendToRoom", room, "after")
                try await adder.connection.invoke("AddToRoom", targetId, room)
                try await sender.connection.send("SendToRoom", room, "again")
                let calls = try await target.roomMessages.wait(count: 2)
                #expect(calls.map { [$0[0], $0[2]] } == [[room, "welcome"], [room, "again"]])
                // A connection no server holds: an error Completion once the acknowledgement timeout passed.
                let error = await #expect(throws: HubInvocationError.self) {
                    try await adder.connection.invoke("AddToRoom", "no-such-connection", room)
                }
                #expect(error?.message.contains("no-such-connection") == true)
            }
        }
    }
}

// MARK: - Processes

/// The `hub-chat` executable next to this test bundle (both are in the build's bin folder), or in `WS_BIN_DIR`.
private func hubChatPath() throws -> String {
    var folders: [String] = []
    if let folder = ProcessInfo.processInfo.environment["WS_BIN_DIR"] { folders.append(folder) }
    for argument in CommandLine.arguments.prefix(1) + Bundle.allBundles.map(\.bundlePath) {
        var url = URL(fileURLWithPath: argument)
        // The bundle (…/debug/X.xctest) or a binary inside it: walk up to the folder that holds hub-chat.
        for _ in 0..<4 {
            url.deleteLastPathComponent()
            folders.append(url.path)
        }
    }
    for folder in folders where FileManager.default.isExecutableFile(atPath: folder + "/hub-chat") {
        return folder + "/hub-chat"
    }
    throw TestFailure("hub-chat is not built next to the tests (run `swift build` first, or set WS_BIN_DIR)")
}

/// Three hub-chat processes on one redis-server; everything stopped by PID when `body` ends.
private func withCluster(_ body: (Cluster) async throws -> Void) async throws {
    let binary = try hubChatPath()
    try await withRedisServer { redis in
        let prefix = "swift-\(UUID().uuidString.prefix(8))"
        var processes: [Process] = []
        defer {
            for process in processes where process.isRunning {
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
            }
        }
        var ports: [Int] = []
        for index in 0..<3 {
            let port = try await RedisServerProcess.freePort()
            let process = Process()
            process.executableURL = URL(fileURLWithPath: binary)
            process.arguments = [
                "--port", "\(port)", "--redis", "127.0.0.1:\(redis.port)", "--redis-prefix", prefix,
                "--server-id", "s\(index)", "--backplane-timeout-ms", "1000", "--log-level", "warning",
                "--token", "tok-alice=alice", "--token", "tok-bob=bob",
            ]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            processes.append(process)
            ports.append(port)
        }
        let cluster = Cluster(ports: ports)
        try await cluster.waitUntilConnected()
        try await body(cluster)
    }
}

private struct Cluster {
    let ports: [Int]

    /// A JSON and a MessagePack client on every server.
    func everyServerTwice() -> [ClientSpec] {
        ports.flatMap { port in
            [ClientSpec(port: port, protocolChoice: .json), ClientSpec(port: port, protocolChoice: .messagePack)]
        }
    }

    /// Until a broadcast from the first server reaches a client of every server (each server listens and has
    /// subscribed on Redis), then a last probe after which none is in flight.
    func waitUntilConnected() async throws {
        let specs = ports.map { ClientSpec(port: $0, protocolChoice: .json) }
        try await withRetriedConnect(specs) { clients in
            for attempt in 0..<100 {
                try await clients[0].connection.send("SendMessage", "probe", "\(attempt)")
                try await Task.sleep(for: .milliseconds(100))
                if clients.allSatisfy({ !$0.messages.calls.isEmpty }) { break }
            }
            try await clients[0].connection.send("SendMessage", "probe", "last")
            for client in clients { _ = try await client.messages.wait(untilContains: ["probe", "last"]) }
        }
    }
}

private struct ClientSpec {
    var port: Int
    var protocolChoice: HubClientConfiguration.HubProtocolChoice
    var token: String? = nil
}

/// One connected Swift client and what it received.
private struct ChatClient: Sendable {
    /// The port of its server.
    let port: Int
    let connection: HubClientConnection
    /// `ReceiveMessage(user, message)` calls.
    let messages: Inbox
    /// `ReceiveRoomMessage(room, user, message)` calls.
    let roomMessages: Inbox
}

/// Connects every client (in order), runs `body`, stops them.
private func withClients(_ specs: [ClientSpec], _ body: ([ChatClient]) async throws -> Void) async throws {
    try await withThrowingTaskGroup(of: Void.self) { group in
        var clients: [ChatClient] = []
        for spec in specs {
            var configuration = HubClientConfiguration(hubProtocol: spec.protocolChoice)
            if let token = spec.token { configuration.accessTokenProvider = { token } }
            configuration.reconnectDelays = []
            let connection = HubClientConnection(url: "http://127.0.0.1:\(spec.port)/chat", configuration: configuration)
            let client = ChatClient(
                port: spec.port, connection: connection, messages: Inbox(),
                roomMessages: Inbox())
            connection.on("ReceiveMessage") { (user: String, message: String) in client.messages.add([user, message]) }
            connection.on("ReceiveRoomMessage") { (room: String, user: String, message: String) in
                client.roomMessages.add([room, user, message])
            }
            group.addTask { try await connection.run() }
            try await withTimeout(.seconds(10)) { try await connection.waitUntilConnected() }
            clients.append(client)
        }
        do {
            try await body(clients)
        } catch {
            group.cancelAll()
            throw error
        }
        group.cancelAll()
    }
}

/// `withClients` for servers that may not listen yet: retries the connections for up to 20 s.
private func withRetriedConnect(_ specs: [ClientSpec], _ body: ([ChatClient]) async throws -> Void) async throws {
    let deadline = ContinuousClock.now.advanced(by: .seconds(20))
    while true {
        do {
            try await withClients(specs, body)
            return
        } catch let error as HubClientError where ContinuousClock.now < deadline {
            _ = error
            try await Task.sleep(for: .milliseconds(200))
        }
    }
}

/// The calls of one client method, in arrival order.
private final class Inbox: Sendable {
    private let box = NIOLockedValueBox<[[String]]>([])

    var calls: [[String]] { box.withLockedValue { $0 } }

    func add(_ call: [String]) { box.withLockedValue { $0.append(call) } }

    /// The calls once one equals `call` (at most 10 s).
    func wait(untilContains call: [String]) async throws -> [[String]] {
        try await wait { $0.contains(call) }
    }

    /// The calls once there are at least `count` (at most 10 s).
    func wait(count: Int) async throws -> [[String]] {
        try await wait { $0.count >= count }
    }

    private func wait(_ done: @Sendable ([[String]]) -> Bool) async throws -> [[String]] {
        let deadline = ContinuousClock.now.advanced(by: .seconds(10))
        while ContinuousClock.now < deadline {
            let calls = calls
            if done(calls) { return calls }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw TestFailure("timed out; received \(calls)")
    }
}
