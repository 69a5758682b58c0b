import HubProtocol
import NIOCore
import ServiceLifecycle
import Testing
import WebSocketClient
import WebSocketNIOTestSupport
import WebSocketServer
import WebSocketTestSupport

@testable import Hubs

/// Runs a server with a TestHub at `/hub` on all three transports (the endpoint runs too, for long polling).
func withHTTPTransports(
    configuration: HubConfiguration = .init(),
    authenticator: HubAuthenticator = .anonymous,
    _ body: @escaping @Sendable (HubEndpoint<TestHub>, Int) async throws -> Void
) async throws {
    let endpoint = HubEndpoint(
        path: "/hub", hub: TestHub.self, configuration: configuration, authenticator: authenticator)
    var serverConfiguration = Server.Configuration(port: 0)
    serverConfiguration.shutdownGracePeriod = .seconds(1)
    let server = Server(
        configuration: serverConfiguration, routes: [endpoint.webSocketRoute],
        eventStreamRoutes: [endpoint.eventStreamRoute], httpRoutes: endpoint.httpRoutes)
    try await withTimeout(.seconds(30)) {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await endpoint.run() }
            defer { group.cancelAll() }
            // The endpoint takes long-polling connections once it runs.
            while !endpoint.host.isRunning { try await Task.sleep(for: .milliseconds(5)) }
            try await server.withRunning { server in try await body(endpoint, server.port) }
        }
    }
}

/// One HTTP/1.1 request; `body` as bytes. Waits for the whole response (Content-Length) up to `timeout`.
func request(
    _ port: Int, _ method: String, _ target: String, body: [UInt8] = [], headers: [String] = [],
    timeout: Duration = .seconds(5)
) async throws -> RawResponse? {
    let client = try await RawTestClient.connect(port: port)
    let lines = ["\(method) \(target) HTTP/1.1", "Host: 127.0.0.1", "Content-Length: \(body.count)"] + headers
    try await client.send(Array((lines.joined(separator: "\r\n") + "\r\n\r\n").utf8) + body)
    let bytes = await client.wait(timeout: timeout) { bytes in
        guard let response = RawResponse(bytes) else { return false }
        let length = Int(response.header("Content-Length") ?? "0") ?? 0
        return response.rest.count >= length
    }
    await client.close()
    return RawResponse(bytes)
}

/// Negotiates (version 1) and returns the connection token (the `id=`).
func negotiatedToken(_ port: Int) async throws -> String {
    let response = try #require(try await negotiate(port, query: "?negotiateVersion=1"))
    guard case .connection(let connection) = try NegotiateResponse.parse(response.rest),
        let token = connection.connectionToken
    else { throw HubError("negotiate failed: \(response.body)") }
    return token
}

let jsonHandshake = Array(#"{"protocol":"json","version":1}"#.utf8) + [0x1E]

func json(_ message: HubMessage) throws -> [UInt8] { try HubWireFormat.json.encode(message) }

@Suite struct HTTPTransportTests {
    @Test func negotiateListsTheEnabledTransportsInOrder() async throws {
        try await withHTTPTransports { _, port in
            let response = try #require(try await negotiate(port))
            #expect(
                response.body.contains(
                    #""availableTransports":[{"transport":"WebSockets","transferFormats":["Text","Binary"]},"#
                        + #"{"transport":"ServerSentEvents","transferFormats":["Text"]},"#
                        + #"{"transport":"LongPolling","transferFormats":["Text","Binary"]}]"#))
        }
        var configuration = HubConfiguration()
        configuration.transports = [.longPolling, .webSockets]
        try await withHTTPTransports(configuration: configuration) { _, port in
            let response = try #require(try await negotiate(port))
            #expect(
                response.body.contains(
                    #""availableTransports":[{"transport":"WebSockets","transferFormats":["Text","Binary"]},"#
                        + #"{"transport":"LongPolling","transferFormats":["Text","Binary"]}]"#))
            // A disabled transport is refused.
            let token = try await negotiatedToken(port)
            let sse = try #require(
                try await request(port, "GET", "/hub?id=\(token)", headers: ["Accept: text/event-stream"]))
            #expect(sse.status == 404)
        }
    }

    @Test func longPollingExchange() async throws {
        var configuration = HubConfiguration()
        configuration.longPollingTimeout = .milliseconds(300)
        try await withHTTPTransports(configuration: configuration) { endpoint, port in
            let token = try await negotiatedToken(port)
            // The first poll answers at once, empty.
            let first = try #require(try await request(port, "GET", "/hub?id=\(token)&_=1"))
            #expect(first.status == 200)
            #expect(first.rest.isEmpty)
            let posted = try #require(try await request(port, "POST", "/hub?id=\(token)", body: jsonHandshake))
            #expect(posted.status == 200)
            #expect(posted.rest.isEmpty)
            let handshake = try #require(try await request(port, "GET", "/hub?id=\(token)"))
            #expect(handshake.status == 200)
            #expect(handshake.rest == Array("{}".utf8) + [0x1E])
            // The Welcome message of onConnected, then the invocation's Completion: one message per poll.
            let welcome = try #require(try await request(port, "GET", "/hub?id=\(token)"))
            #expect(welcome.header("Content-Type") == "application/octet-stream")
            #expect(welcome.body.contains(#""target":"Welcome""#))
            let add = try json(
                .invocation(.init(invocationId: "1", target: "Add", arguments: [HubValue(2), HubValue(3)])))
            #expect(try await request(port, "POST", "/hub?id=\(token)", body: add)?.status == 200)
            let completion = try #require(try await request(port, "GET", "/hub?id=\(token)"))
            #expect(completion.body.contains(#""invocationId":"1""#))
            #expect(completion.body.contains(#""result":5"#))
            #expect(endpoint.connectionCount == 1)
            // Nothing to send: the poll ends after the poll timeout, 200 and empty.
            let started = ContinuousClock.now
            let idle = try #require(try await request(port, "GET", "/hub?id=\(token)"))
            #expect(idle.status == 200)
            #expect(idle.rest.isEmpty)
            #expect(ContinuousClock.now - started >= .milliseconds(250))
        }
    }

    @Test func longPollingWithMessagePack() async throws {
        try await withHTTPTransports { _, port in
            let token = try await negotiatedToken(port)
            _ = try await request(port, "GET", "/hub?id=\(token)")
            let handshake = Array(#"{"protocol":"messagepack","version":1}"#.utf8) + [0x1E]
            #expect(try await request(port, "POST", "/hub?id=\(token)", body: handshake)?.status == 200)
            #expect(try await request(port, "GET", "/hub?id=\(token)")?.rest == Array("{}".utf8) + [0x1E])
            _ = try await request(port, "GET", "/hub?id=\(token)")  // Welcome
            let add = try HubWireFormat.messagePack.encode(
                .invocation(.init(invocationId: "7", target: "Add", arguments: [HubValue(20), HubValue(22)])))
            #expect(try await request(port, "POST", "/hub?id=\(token)", body: add)?.status == 200)
            let response = try #require(try await request(port, "GET", "/hub?id=\(token)"))
            var messages: [HubMessage] = []
            try HubWireFormat.messagePack.decode(frame: response.rest, limits: .default, into: &messages)
            guard case .completion(let completion) = messages.first else {
                Issue.record("not a completion: \(messages)")
                return
            }
            #expect(completion.invocationId == "7")
            guard case .value(let value) = completion.result else {
                Issue.record("no result: \(completion)")
                return
            }
            #expect(try value.decode(Int.self) == 42)
        }
    }

    @Test func deleteEndsTheConnectionAndThePendingPoll() async throws {
        try await withHTTPTransports { endpoint, port in
            let token = try await negotiatedToken(port)
            _ = try await request(port, "GET", "/hub?id=\(token)")
            _ = try await request(port, "POST", "/hub?id=\(token)", body: jsonHandshake)
            _ = try await request(port, "GET", "/hub?id=\(token)")  // handshake answer
            _ = try await request(port, "GET", "/hub?id=\(token)")  // Welcome
            async let pending = request(port, "GET", "/hub?id=\(token)")
            try await Task.sleep(for: .milliseconds(200))
            let deleted = try #require(try await request(port, "DELETE", "/hub?id=\(token)"))
            #expect(deleted.status == 202)
            #expect(try await pending?.status == 204)
            let deadline = ContinuousClock.now + .seconds(3)
            while endpoint.connectionCount > 0, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(10))
            }
            #expect(endpoint.connectionCount == 0)
            #expect(try await request(port, "POST", "/hub?id=\(token)", body: jsonHandshake)?.status == 404)
            #expect(try await request(port, "DELETE", "/hub?id=\(token)")?.status == 404)
        }
    }

    @Test func aNewerPollSupersedesTheOld() async throws {
        try await withHTTPTransports { _, port in
            let token = try await negotiatedToken(port)
            _ = try await request(port, "GET", "/hub?id=\(token)")
            _ = try await request(port, "POST", "/hub?id=\(token)", body: jsonHandshake)
            _ = try await request(port, "GET", "/hub?id=\(token)")
            _ = try await request(port, "GET", "/hub?id=\(token)")  // Welcome
            async let old = request(port, "GET", "/hub?id=\(token)")
            try await Task.sleep(for: .milliseconds(200))
            async let new = request(port, "GET", "/hub?id=\(token)")
            #expect(try await old?.status == 204)
            try await Task.sleep(for: .milliseconds(100))
            let echo = try json(.invocation(.init(invocationId: "2", target: "Echo", arguments: [HubValue("hi")])))
            #expect(try await request(port, "POST", "/hub?id=\(token)", body: echo)?.status == 200)
            #expect(try await new?.body.contains(#""result":"hi""#) == true)
        }
    }

    @Test func concurrentPostIsAConflict() async throws {
        var configuration = HubConfiguration()
        configuration.limits.maximumMessageSize = 1024
        try await withHTTPTransports(configuration: configuration) { _, port in
            let token = try await negotiatedToken(port)
            _ = try await request(port, "GET", "/hub?id=\(token)")
            _ = try await request(port, "POST", "/hub?id=\(token)", body: jsonHandshake)
            // The read loop runs Sleep inline for 2.5 s; 900 bytes of pings wait, 900 more make a POST wait.
            let sleep = try json(.invocation(.init(invocationId: "1", target: "Sleep", arguments: [HubValue(2500)])))
            #expect(try await request(port, "POST", "/hub?id=\(token)", body: sleep)?.status == 200)
            let pings = Array(repeating: try json(.ping), count: 80).flatMap { $0 }
            #expect(pings.count <= 1024)
            #expect(try await request(port, "POST", "/hub?id=\(token)", body: pings)?.status == 200)
            async let waiting = request(port, "POST", "/hub?id=\(token)", body: pings)
            try await Task.sleep(for: .milliseconds(200))
            let conflict = try #require(try await request(port, "POST", "/hub?id=\(token)", body: pings))
            #expect(conflict.status == 409)
            #expect(try await waiting?.status == 200)
            // Bodies over the maximum message size are refused before the hub sees them.
            let big = [UInt8](repeating: 0x20, count: 2000)
            #expect(try await request(port, "POST", "/hub?id=\(token)", body: big)?.status == 413)
        }
    }

    @Test func statusCodesOfTheHTTPSurface() async throws {
        try await withHTTPTransports { _, port in
            // Missing id: 400 on every method, and on the SSE GET.
            for method in ["GET", "POST", "DELETE"] {
                #expect(try await request(port, method, "/hub")?.status == 400)
            }
            #expect(try await request(port, "GET", "/hub", headers: ["Accept: text/event-stream"])?.status == 400)
            // Unknown id: 404.
            for method in ["GET", "POST", "DELETE"] {
                #expect(try await request(port, method, "/hub?id=nope")?.status == 404)
            }
            #expect(
                try await request(port, "GET", "/hub?id=nope", headers: ["Accept: text/event-stream"])?.status == 404)
            // POST on a WebSocket connection: 405; DELETE on it: 400.
            let token = try await negotiatedToken(port)
            let webSocket = try await WebSocket.connect(to: "ws://127.0.0.1:\(port)/hub?id=\(token)")
            let refused = try #require(try await request(port, "POST", "/hub?id=\(token)", body: jsonHandshake))
            #expect(refused.status == 405)
            #expect(refused.body.contains("POST requests are not allowed for WebSocket connections."))
            #expect(try await request(port, "DELETE", "/hub?id=\(token)")?.status == 400)
            await webSocket.close()
            // A long-polling connection cannot become SSE, and DELETE on an SSE connection is 400.
            let polling = try await negotiatedToken(port)
            #expect(try await request(port, "GET", "/hub?id=\(polling)")?.status == 200)
            let switched = try await request(
                port, "GET", "/hub?id=\(polling)", headers: ["Accept: text/event-stream"])
            #expect(switched?.status == 400)
            #expect(try await request(port, "DELETE", "/hub?id=\(polling)")?.status == 202)
        }
    }

    @Test func serverSentEventsExchange() async throws {
        try await withHTTPTransports { endpoint, port in
            let token = try await negotiatedToken(port)
            let stream = try await RawTestClient.connect(port: port)
            try await stream.send(
                "GET /hub?id=\(token) HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n")
            let head = try #require(await stream.waitForResponse())
            #expect(head.status == 200)
            #expect(head.header("Content-Type") == "text/event-stream")
            // A second GET for the same id: 409.
            let second = try await request(port, "GET", "/hub?id=\(token)", headers: ["Accept: text/event-stream"])
            #expect(second?.status == 409)
            #expect(try await request(port, "POST", "/hub?id=\(token)", body: jsonHandshake)?.status == 200)
            let handshake = "data: {}\u{1E}\n\n"
            await stream.wait { String(decoding: $0, as: UTF8.self).contains(handshake) }
            let add = try json(
                .invocation(.init(invocationId: "1", target: "Add", arguments: [HubValue(1), HubValue(2)])))
            #expect(try await request(port, "POST", "/hub?id=\(token)", body: add)?.status == 200)
            let expected = #"data: {"type":3,"invocationId":"1","result":3}"# + "\u{1E}\n\n"
            let received = await stream.wait { String(decoding: $0, as: UTF8.self).contains(expected) }
            let text = String(decoding: received, as: UTF8.self)
            #expect(text.contains(expected))
            #expect(text.contains(#"data: {"type":1,"target":"Welcome""#))
            #expect(endpoint.connectionCount == 1)
            // The connection ends with the response.
            await stream.close()
            let deadline = ContinuousClock.now + .seconds(3)
            while endpoint.connectionCount > 0, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(10))
            }
            #expect(endpoint.connectionCount == 0)
            #expect(try await request(port, "POST", "/hub?id=\(token)", body: add)?.status == 404)
        }
    }

    @Test func serverSentEventsRefuseMessagePack() async throws {
        try await withHTTPTransports { _, port in
            let token = try await negotiatedToken(port)
            let stream = try await RawTestClient.connect(port: port)
            try await stream.send(
                "GET /hub?id=\(token) HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n")
            _ = await stream.waitForResponse()
            let handshake = Array(#"{"protocol":"messagepack","version":1}"#.utf8) + [0x1E]
            #expect(try await request(port, "POST", "/hub?id=\(token)", body: handshake)?.status == 200)
            let bytes = await stream.wait { String(decoding: $0, as: UTF8.self).contains("not supported") }
            let refusal = #"data: {"error":"The protocol 'messagepack' is not supported."}"#
            #expect(String(decoding: bytes, as: UTF8.self).contains(refusal))
            await stream.close()
        }
    }

    @Test func everyTransportRequestIsAuthenticated() async throws {
        let authenticator = HubAuthenticator.bearer { token in token == "good" ? HubUser(id: "ann") : nil }
        try await withHTTPTransports(authenticator: authenticator) { _, port in
            let good = ["Authorization: Bearer good"]
            let response = try #require(try await negotiate(port, query: "?negotiateVersion=1", headers: good))
            guard case .connection(let connection) = try NegotiateResponse.parse(response.rest),
                let token = connection.connectionToken
            else { throw HubError("negotiate failed: \(response.body)") }
            #expect(try await request(port, "GET", "/hub?id=\(token)")?.status == 401)
            #expect(try await request(port, "POST", "/hub?id=\(token)", body: jsonHandshake)?.status == 401)
            let sse = ["Accept: text/event-stream", "Authorization: Bearer bad"]
            #expect(try await request(port, "GET", "/hub?id=\(token)", headers: sse)?.status == 401)
            #expect(try await request(port, "GET", "/hub?id=\(token)", headers: good)?.status == 200)
            let posted = try await request(port, "POST", "/hub?id=\(token)", body: jsonHandshake, headers: good)
            #expect(posted?.status == 200)
            _ = try await request(port, "GET", "/hub?id=\(token)", headers: good)  // handshake answer
            _ = try await request(port, "GET", "/hub?id=\(token)", headers: good)  // Welcome
            let who = try json(.invocation(.init(invocationId: "1", target: "WhoAmI", arguments: [])))
            _ = try await request(port, "POST", "/hub?id=\(token)", body: who, headers: good)
            let answer = try await request(port, "GET", "/hub?id=\(token)", headers: ["Authorization: Bearer good"])
            #expect(answer?.body.contains(#""result":"ann""#) == true)
        }
    }

    @Test func longPollingNeedsTheEndpointToRun() async throws {
        let endpoint = HubEndpoint(path: "/hub", hub: TestHub.self)
        let server = Server(
            configuration: .init(port: 0), routes: [endpoint.webSocketRoute],
            eventStreamRoutes: [endpoint.eventStreamRoute], httpRoutes: endpoint.httpRoutes)
        try await withTimeout(.seconds(30)) {
            try await server.withRunning { server in
                let port = server.port
                let response = try #require(try await negotiate(port))
                #expect(!response.body.contains("LongPolling"))
                let token = try await negotiatedToken(port)
                #expect(try await request(port, "GET", "/hub?id=\(token)")?.status == 503)
            }
        }
    }

    @Test func aLongPollingClientThatStopsPollingIsGone() async throws {
        var configuration = HubConfiguration()
        configuration.longPollingDisconnectTimeout = .milliseconds(400)
        try await withHTTPTransports(configuration: configuration) { endpoint, port in
            let token = try await negotiatedToken(port)
            _ = try await request(port, "GET", "/hub?id=\(token)")
            _ = try await request(port, "POST", "/hub?id=\(token)", body: jsonHandshake)
            _ = try await request(port, "GET", "/hub?id=\(token)")
            #expect(endpoint.connectionCount == 1)
            let deadline = ContinuousClock.now + .seconds(5)
            while endpoint.connectionCount > 0, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(endpoint.connectionCount == 0)
            #expect(try await request(port, "POST", "/hub?id=\(token)", body: jsonHandshake)?.status == 404)
        }
    }
}
