import HTTPTypes
import NIOCore
import Testing
import WebSocketNIO
import WebSocketNIOTestSupport
import WebSocketServer
import WebSocketTestSupport

/// `HTTPRoute`: plain HTTP endpoints with a bounded body, beside WebSocket routes on the same listener.
@Suite struct HTTPRouteTests {
    /// `/api` echoes method, query, bearer token and body; `/api` is also a WebSocket route (echo).
    func withServer(_ body: @Sendable (Server) async throws -> Void) async throws {
        let api = HTTPRoute(path: "/api", methods: [.post, .get], maxBodyLength: 100) { request in
            let text =
                "\(request.request.method.rawValue) q=\(request.queryValue("q") ?? "-") "
                + "token=\(request.bearerToken ?? "-") body=\(String(decoding: request.body, as: UTF8.self))"
            return PlainHTTPResponse(status: .ok, text: text)
        }
        let webSocket = WebSocketRoute(path: "/api", handler: .delegate { _ in EchoDelegate() })
        let server = Server(
            configuration: configured { _ in }, routes: [webSocket], httpRoutes: [api])
        try await server.withRunning(body)
    }

    func request(_ server: Server, _ text: String) async throws -> RawResponse? {
        let client = try await RawTestClient.connect(port: server.port)
        try await client.send(text)
        let bytes = await client.wait()  // until the server closes
        await client.close()
        return RawResponse(bytes)
    }

    @Test func postWithBodyAndQuery() async throws {
        try await withServer { server in
            let response = try #require(
                try await request(
                    server,
                    "POST /api?q=a%20b HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t0k\r\n"
                        + "Content-Length: 5\r\n\r\nhello"))
            #expect(response.status == 200)
            #expect(response.body == "POST q=a b token=t0k body=hello")
        }
    }

    @Test func chunkedBodyAndAccessTokenQuery() async throws {
        try await withServer { server in
            let chunked = "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
            let response = try #require(
                try await request(
                    server,
                    "POST /api?access_token=qt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked))
            #expect(response.body == "POST q=- token=qt body=abcde")
        }
    }

    @Test func methodNotAllowedAndBodyTooLarge() async throws {
        try await withServer { server in
            let put = try #require(
                try await request(server, "PUT /api HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"))
            #expect(put.status == 405)
            #expect(put.header("Allow") == "GET, POST")
            let body = String(repeating: "z", count: 101)
            let large = try #require(
                try await request(server, "POST /api HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n" + body))
            #expect(large.status == 413)
            let head = try #require(try await request(server, "HEAD /api HTTP/1.1\r\nHost: x\r\n\r\n"))
            #expect(head.status == 200)
            #expect(head.rest.isEmpty)
        }
    }

    @Test func upgradesStillGoToTheWebSocketRoute() async throws {
        try await withServer { server in
            let client = try await RawTestClient.connect(port: server.port)
            try await client.send(upgradeRequest(path: "/api"))
            #expect(await client.waitForResponse()?.status == 101)
            await client.close()
            let get = try #require(try await request(server, "GET /api HTTP/1.1\r\nHost: x\r\n\r\n"))
            #expect(get.body == "GET q=- token=- body=")
        }
    }
}
