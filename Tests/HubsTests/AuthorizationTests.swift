import HubProtocol
import Testing
import WebSocketNIOTestSupport
import WebSocketServer
import WebSocketTestSupport

@testable import Hubs

/// A hub only ann may connect to.
struct AnnsHub: Hub {
    init(context: HubContext) {}
    static var authorization: HubAuthorization? { .users("ann") }
    static func registerMethods(_ methods: inout HubMethods<AnnsHub>) {
        methods.on("Ping") { (_: AnnsHub) -> String in "pong" }
    }
}

@Suite struct AuthorizationTests {
    /// Tokens are user ids; the token `admin` also has the claim role=admin.
    static let authenticator = HubAuthenticator { request in
        guard let token = request.bearerToken else { return .anonymous }
        return .authenticated(HubUser(id: token, claims: token == "admin" ? ["role": "admin"] : [:]))
    }

    @Test func perMethodRules() async throws {
        try await withHub(authenticator: Self.authenticator) { _, port in
            var anonymous = try await HubTestClient.connect(port)
            var admin = try await HubTestClient.connect(port, query: "?access_token=admin")
            var ann = try await HubTestClient.connect(port, query: "?access_token=ann")
            try await anonymous.send(invocation("1", "AdminOnly", []))
            #expect(
                outcome(try await anonymous.next())
                    == "error: Failed to invoke 'AdminOnly' because user is unauthorized")
            try await ann.send(invocation("1", "AdminOnly", []))
            #expect(outcome(try await ann.next()).hasSuffix("because user is unauthorized"))
            try await admin.send(invocation("1", "AdminOnly", []))
            #expect(outcome(try await admin.next()) == #""secret""#)
            try await admin.send(.streamInvocation(.init(invocationId: "s", target: "AnnsStream", arguments: [])))
            #expect(
                outcome(try await admin.next()) == "error: Failed to invoke 'AnnsStream' because user is unauthorized")
            try await ann.send(.streamInvocation(.init(invocationId: "s", target: "AnnsStream", arguments: [])))
            guard case .streamItem? = try await ann.next() else {
                Issue.record("no item for ann")
                return
            }
            #expect(outcome(try await ann.next()) == "void")
            for client in [anonymous, admin, ann] { await client.close() }
        }
    }

    @Test func hubRuleOnNegotiateAndUpgrade() async throws {
        let endpoint = HubEndpoint(path: "/hub", hub: AnnsHub.self, authenticator: Self.authenticator)
        var configuration = Server.Configuration(port: 0)
        configuration.shutdownGracePeriod = .seconds(1)
        let server = Server(
            configuration: configuration, routes: [endpoint.webSocketRoute], httpRoutes: [endpoint.negotiateRoute])
        try await withTimeout(.seconds(30)) {
            try await server.withRunning { server in
                let port = server.port
                #expect(try await negotiate(port)?.status == 401)
                #expect(try await negotiate(port, headers: ["Authorization: Bearer bob"])?.status == 403)
                #expect(try await negotiate(port, headers: ["Authorization: Bearer ann"])?.status == 200)
                #expect(try await upgradeStatus(port, "/hub") == 401)
                #expect(try await upgradeStatus(port, "/hub?access_token=bob") == 403)
                #expect(try await upgradeStatus(port, "/hub?access_token=ann") == 101)
                // A connection negotiated by ann may upgrade without repeating the token.
                let response = try #require(try await negotiate(port, headers: ["Authorization: Bearer ann"]))
                guard case .connection(let connection) = try NegotiateResponse.parse(response.rest) else {
                    Issue.record("no connection")
                    return
                }
                #expect(try await upgradeStatus(port, "/hub?id=\(connection.connectionId)") == 101)
            }
        }
    }
}
