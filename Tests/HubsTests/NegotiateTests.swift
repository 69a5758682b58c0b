import HubProtocol
import Testing
import WebSocketNIOTestSupport
import WebSocketTestSupport

@testable import Hubs

@Suite struct NegotiateTests {
    @Test func versionZeroAnswersConnectionIdOnly() async throws {
        try await withHub { _, port in
            let response = try #require(try await negotiate(port))
            #expect(response.status == 200)
            #expect(response.header("Content-Type") == "application/json")
            #expect(
                response.body.contains(
                    #""availableTransports":[{"transport":"WebSockets","transferFormats":["Text","Binary"]},"#
                        // Long polling is listed only while the endpoint runs (it does not here).
                        + #"{"transport":"ServerSentEvents","transferFormats":["Text"]}]"#))
            #expect(!response.body.contains("connectionToken"))
            guard case .connection(let connection) = try NegotiateResponse.parse(response.rest) else {
                Issue.record("not a connection: \(response.body)")
                return
            }
            #expect(connection.negotiateVersion == 0)
            #expect(connection.connectionId.count == 22)
            // The connection id is the id= of version 0.
            #expect(try await upgradeStatus(port, "/hub?id=\(connection.connectionId)") == 101)
        }
    }

    @Test func versionOneAnswersASecretToken() async throws {
        try await withHub { _, port in
            let response = try #require(try await negotiate(port, query: "?negotiateVersion=1"))
            guard case .connection(let connection) = try NegotiateResponse.parse(response.rest),
                let token = connection.connectionToken
            else {
                Issue.record("no token: \(response.body)")
                return
            }
            #expect(connection.negotiateVersion == 1)
            #expect(token != connection.connectionId)
            // The public id is not a transport id.
            #expect(try await upgradeStatus(port, "/hub?id=\(connection.connectionId)") == 404)
            #expect(try await upgradeStatus(port, "/hub?id=\(token)") == 101)
        }
    }

    @Test func versionAboveOneIsClampedAndNonIntegerIsAnError() async throws {
        try await withHub { _, port in
            let clamped = try #require(try await negotiate(port, query: "?negotiateVersion=7"))
            #expect(clamped.body.contains(#""negotiateVersion":1"#))
            let bad = try #require(try await negotiate(port, query: "?negotiateVersion=abc"))
            #expect(bad.status == 200)
            #expect(bad.body == #"{"error":"The client requested a non-integer protocol version."}"#)
        }
    }

    @Test func otherMethodsGet405() async throws {
        try await withHub { _, port in
            let response = try #require(
                try await httpRequest(port, "GET /hub/negotiate HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"))
            #expect(response.status == 405)
            #expect(response.header("Allow") == "POST")
        }
    }

    @Test func oversizedBodyGets413() async throws {
        try await withHub { _, port in
            let body = String(repeating: "a", count: 5000)
            let head = "POST /hub/negotiate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5000\r\n\r\n"
            let response = try #require(try await httpRequest(port, head + body))
            #expect(response.status == 413)
        }
    }

    @Test func unknownIdIs404AndConnectedIdIs409() async throws {
        try await withHub { _, port in
            #expect(try await upgradeStatus(port, "/hub?id=nope") == 404)
            let response = try #require(try await negotiate(port))
            guard case .connection(let connection) = try NegotiateResponse.parse(response.rest) else {
                Issue.record("no connection")
                return
            }
            var client = try await HubTestClient.connect(port, query: "?id=\(connection.connectionId)")
            #expect(try await upgradeStatus(port, "/hub?id=\(connection.connectionId)") == 409)
            try await client.send(invocation("1", "Echo", ["still here"]))
            #expect(outcome(try await client.next()) == #""still here""#)
            await client.close()
        }
    }

    @Test func authenticationOnNegotiateAndUpgrade() async throws {
        let authenticator = HubAuthenticator.bearer { token in token == "secret" ? HubUser(id: "ann") : nil }
        try await withHub(authenticator: authenticator) { _, port in
            #expect(try await negotiate(port)?.status == 401)
            #expect(try await negotiate(port, headers: ["Authorization: Bearer wrong"])?.status == 401)
            #expect(try await negotiate(port, headers: ["Authorization: Bearer secret"])?.status == 200)
            #expect(try await upgradeStatus(port, "/hub") == 401)
            #expect(try await upgradeStatus(port, "/hub", extra: ["Authorization: Bearer secret"]) == 101)
            var client = try await HubTestClient.connect(port, query: "?access_token=secret")
            try await client.send(invocation("1", "WhoAmI", []))
            #expect(outcome(try await client.next()) == #""ann""#)
            await client.close()
        }
    }
}
