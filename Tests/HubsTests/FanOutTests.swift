import HubProtocol
import NIOConcurrencyHelpers
import NIOCore
import Testing
import WebSocketCore
import WebSocketNIO
import WebSocketNIOTestSupport
import WebSocketTestSupport

@testable import Hubs

/// Clients API, one serialization per protocol, slow consumers.
@Suite struct FanOutTests {
    /// Reads the next Invocation's target and arguments (as JSON text).
    static func nextInvocation(_ client: inout HubTestClient) async throws -> String? {
        guard let message = try await client.next() else { return nil }
        guard case .invocation(let invocation) = message else { return "not an invocation: \(message)" }
        let arguments = try invocation.arguments.map { "\(try $0.jsonValue())" }
        return "\(invocation.target)(\(arguments.joined(separator: ",")))"
    }

    @Test func broadcastIsSerializedOncePerProtocol() async throws {
        try await withHub { endpoint, port in
            var clients: [HubTestClient] = []
            for name in ["json", "json", "json", "messagepack", "messagepack"] {
                clients.append(try await HubTestClient.connect(port, protocol: name))
            }
            #expect(await eventually { endpoint.connectionCount == 5 })
            let before = endpoint.manager.serializationCount
            let framesBefore = endpoint.manager.sharedFrameCount
            try await endpoint.clients.all.send("News", "hello", 42)
            // One serialization and one WebSocket frame per protocol, written to every connection of that protocol.
            #expect(endpoint.manager.serializationCount - before == 2)
            #expect(endpoint.manager.sharedFrameCount - framesBefore == 2)
            for index in clients.indices {
                #expect(try await Self.nextInvocation(&clients[index]) == #"News("hello",42)"#)
            }
            // Several broadcasts queued at once leave in order, shared frames among the connection's own messages.
            for number in 0..<20 { try await endpoint.clients.all.send("News", "n", number) }
            #expect(endpoint.manager.sharedFrameCount - framesBefore == 42)
            for index in clients.indices {
                for number in 0..<20 {
                    #expect(try await Self.nextInvocation(&clients[index]) == #"News("n",\#(number))"#)
                }
            }
            for client in clients { await client.close() }
        }
    }

    @Test func targets() async throws {
        try await withHub { endpoint, port in
            var a = try await HubTestClient.connect(port)
            var b = try await HubTestClient.connect(port, protocol: "messagepack")
            var c = try await HubTestClient.connect(port)
            #expect(await eventually { endpoint.connectionCount == 3 })
            // The connection ids, learnt from the server's side.
            let ids = try #require(Self.ids(endpoint))
            #expect(ids.count == 3)
            try await a.send(invocation("1", "Join", ["g"]))
            #expect(outcome(try await a.next()) == "void")
            try await b.send(invocation("1", "Join", ["g"]))
            #expect(outcome(try await b.next()) == "void")

            try await endpoint.clients.group("g").send("G", 1)
            #expect(try await Self.nextInvocation(&a) == "G(1)")
            #expect(try await Self.nextInvocation(&b) == "G(1)")
            let members = Array(endpoint.manager.members(of: "g"))
            let outsider = try #require(ids.first { !members.contains($0) })
            try await endpoint.clients.client(outsider).send("Direct", 2)
            #expect(try await Self.nextInvocation(&c) == "Direct(2)")
            try await endpoint.clients.allExcept([outsider]).send("NotC", 3)
            #expect(try await Self.nextInvocation(&a) == "NotC(3)")
            #expect(try await Self.nextInvocation(&b) == "NotC(3)")
            try await endpoint.clients.groups(["g", "nobody"]).send("Gs", 4)
            #expect(try await Self.nextInvocation(&a) == "Gs(4)")
            #expect(try await Self.nextInvocation(&b) == "Gs(4)")
            try await endpoint.clients.groupExcept("g", members).send("Nobody", 5)
            try await endpoint.clients.clients([outsider]).send("Cs", 6)
            // c's next message is Cs: groupExcept with every member excluded reached nobody.
            #expect(try await Self.nextInvocation(&c) == "Cs(6)")
            try await endpoint.groups.remove(members[0], from: "g")
            #expect(endpoint.manager.members(of: "g").count == 1)
            for client in [a, b, c] { await client.close() }
            #expect(await eventually { endpoint.connectionCount == 0 })
            #expect(endpoint.manager.members(of: "g").isEmpty)
        }
    }

    static func ids(_ endpoint: HubEndpoint<TestHub>) -> [String]? {
        endpoint.manager.connectionIds
    }

    @Test func usersReceiveOnEveryConnection() async throws {
        let authenticator = HubAuthenticator { request in
            guard let token = request.bearerToken else { return .anonymous }
            return .authenticated(HubUser(id: token))
        }
        try await withHub(authenticator: authenticator) { endpoint, port in
            var ann1 = try await HubTestClient.connect(port, query: "?access_token=ann")
            var ann2 = try await HubTestClient.connect(port, query: "?access_token=ann", protocol: "messagepack")
            var bob = try await HubTestClient.connect(port, query: "?access_token=bob")
            var anonymous = try await HubTestClient.connect(port)
            #expect(await eventually { endpoint.connectionCount == 4 })
            try await endpoint.clients.user("ann").send("ForAnn", 1)
            #expect(try await Self.nextInvocation(&ann1) == "ForAnn(1)")
            #expect(try await Self.nextInvocation(&ann2) == "ForAnn(1)")
            try await endpoint.clients.users(["bob", "nobody"]).send("ForBob", 2)
            #expect(try await Self.nextInvocation(&bob) == "ForBob(2)")
            try await endpoint.clients.all.send("All", 3)
            #expect(try await Self.nextInvocation(&anonymous) == "All(3)")
            #expect(try await Self.nextInvocation(&bob) == "All(3)")
            for client in [ann1, ann2, bob, anonymous] { await client.close() }
        }
    }

    @Test func callerAndOthers() async throws {
        try await withHub { endpoint, port in
            var a = try await HubTestClient.connect(port)
            var b = try await HubTestClient.connect(port)
            #expect(await eventually { endpoint.connectionCount == 2 })
            try await a.send(invocation("1", "Blob", [1, 3]))
            #expect(try await Self.nextInvocation(&a) == #"Blob("xxx")"#)
            #expect(outcome(try await a.next()) == "void")
            try await b.send(invocation("2", "Echo", ["b"]))
            #expect(outcome(try await b.next()) == #""b""#)
            await a.close()
            await b.close()
        }
    }

    /// A client that never reads: the server's memory for it stays bounded (its outbound buffer overflows and the
    /// connection is closed), and the other clients go on.
    @Test func clientThatNeverReadsIsDisconnected() async throws {
        var configuration = HubConfiguration()
        configuration.maximumBufferedBytes = 64 * 1024
        configuration.limits.maximumMessageSize = 64 * 1024
        TestHub.disconnects.withLockedValue { $0 = [:] }
        try await withHub(configuration: configuration) { endpoint, port in
            let response = try #require(try await negotiate(port))
            guard case .connection(let connection) = try NegotiateResponse.parse(response.rest) else {
                Issue.record("negotiate failed")
                return
            }
            let slow = try await RawTestClient.connect(port: port, receiveBufferSize: 4096, autoRead: false)
            try await slow.send(upgradeRequest(path: "/hub?id=\(connection.connectionId)"))
            let handshake = Array((#"{"protocol":"json","version":1}"# + "\u{1e}").utf8)
            try await slow.send(RawFrame.bytes(opcode: 1, handshake, maskKey: RawFrame.testMaskKey))
            var healthy = try await HubTestClient.connect(port)
            #expect(await eventually { endpoint.connectionCount == 2 })

            let blob = String(repeating: "y", count: 16 * 1024)
            var sent = 0
            while sent < 2_000, endpoint.manager.connectionIds.contains(connection.connectionId) {
                try await endpoint.clients.client(connection.connectionId).send("Blob", blob)
                sent += 1
                if sent % 50 == 0 { try await Task.sleep(for: .milliseconds(1)) }
            }
            #expect(await eventually(timeout: .seconds(10)) { endpoint.connectionCount == 1 })
            #expect(sent < 2_000)
            let reason = TestHub.disconnects.withLockedValue { $0[connection.connectionId] }
            #expect(reason == "outbound buffer full")
            try await healthy.send(invocation("1", "Echo", ["still fine"]))
            #expect(outcome(try await healthy.next()) == #""still fine""#)
            await healthy.close()
            await slow.close()
        }
    }
}
