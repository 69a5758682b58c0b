import Foundation
import HubClient
import Hubs
import HubsJWT
import JWTKit
import Testing
import WebSocketNIOTestSupport
import WebSocketServer

/// Tells the caller who it is, for the authenticator's user and claims.
struct WhoHub: Hub {
    let context: HubContext

    static func registerMethods(_ methods: inout HubMethods<WhoHub>) {
        methods.on("WhoAmI") { (hub: WhoHub) -> String in hub.context.user?.id ?? "" }
        methods.on("Claim") { (hub: WhoHub, name: String) -> String in hub.context.user?.claims[name] ?? "" }
    }
}

/// A token payload as an identity provider would write it: a role, a list of groups, a number.
struct IssuedToken: JWTPayload {
    var sub: SubjectClaim?
    var exp: ExpirationClaim?
    var nbf: NotBeforeClaim?
    var iss: IssuerClaim?
    var role: String?
    var groups: [String]?
    var level: Int?

    func verify(using algorithm: some JWTAlgorithm) async throws {}
}

enum TokenCase: String, CaseIterable, Sendable {
    case missing, expired, badSignature, noSubject, notYetValid, wrongIssuer, notAJWT
}

@Suite struct JWTAuthenticatorTests {
    static let secret = HMACKey(from: "a secret of at least thirty-two bytes!")

    static func sign(_ payload: IssuedToken, secret: HMACKey = secret) async throws -> String {
        let keys = await JWTKeyCollection().add(hmac: secret, digestAlgorithm: .sha256)
        return try await keys.sign(payload)
    }

    static func token(_ tokenCase: TokenCase) async throws -> String? {
        let hour: TimeInterval = 3600
        var payload = IssuedToken(
            sub: "ann", exp: .init(value: Date().addingTimeInterval(hour)), iss: "https://issuer.example")
        switch tokenCase {
        case .missing: return nil
        case .notAJWT: return "not.a.jwt"
        case .expired: payload.exp = .init(value: Date().addingTimeInterval(-hour))
        case .badSignature:
            return try await sign(payload, secret: HMACKey(from: "another secret, also thirty-two bytes"))
        case .noSubject: payload.sub = nil
        case .notYetValid: payload.nbf = .init(value: Date().addingTimeInterval(hour))
        case .wrongIssuer: payload.iss = "https://elsewhere.example"
        }
        return try await sign(payload)
    }

    static func validToken() async throws -> String {
        try await sign(
            IssuedToken(sub: "ann", exp: .init(value: Date().addingTimeInterval(600)), iss: "https://issuer.example"))
    }

    /// Runs a server whose hub at `/hub` uses the JWT authenticator with ``secret``.
    static func withServer(
        requireToken: Bool = true, _ body: @escaping @Sendable (String) async throws -> Void
    ) async throws {
        let keys = await JWTKeyCollection().add(hmac: secret, digestAlgorithm: .sha256)
        let endpoint = HubEndpoint(
            path: "/hub", hub: WhoHub.self,
            authenticator: .jwt(keys: keys, requireToken: requireToken, issuer: "https://issuer.example"))
        var configuration = Server.Configuration(host: "127.0.0.1", port: 0)
        configuration.shutdownGracePeriod = .seconds(1)
        let server = Server(
            configuration: configuration, routes: [endpoint.webSocketRoute], httpRoutes: [endpoint.negotiateRoute])
        try await withTimeout(.seconds(20)) {
            try await server.withRunning { server in try await body("http://127.0.0.1:\(server.port)/hub") }
        }
    }

    /// A valid token: `sub` is the user id, the other claims are the user's claims, on negotiate + WebSocket and
    /// on a skip-negotiation WebSocket.
    @Test(arguments: [false, true])
    func validTokenIsTheUser(skipNegotiation: Bool) async throws {
        var payload = IssuedToken(
            sub: "ann", exp: .init(value: Date().addingTimeInterval(600)), iss: "https://issuer.example")
        payload.role = "admin"
        payload.groups = ["red", "blue"]
        payload.level = 3
        let token = try await Self.sign(payload)
        try await Self.withServer { url in
            let configuration = HubClientConfiguration(accessTokenProvider: { token }, skipNegotiation: skipNegotiation)
            try await withHubConnection(url: url, configuration: configuration) { hub in
                let value1 = try await hub.invoke("WhoAmI", returning: String.self)
                #expect(value1 == "ann")
                let value2 = try await hub.invoke("Claim", "role", returning: String.self)
                #expect(value2 == "admin")
                let value3 = try await hub.invoke("Claim", "groups", returning: String.self)
                #expect(value3 == "red,blue")
                let value4 = try await hub.invoke("Claim", "level", returning: String.self)
                #expect(value4 == "3")
                let value5 = try await hub.invoke("Claim", "sub", returning: String.self)
                #expect(value5 == "ann")
            }
        }
    }

    /// The `access_token` query parameter (what browsers send on the WebSocket request) is verified the same way.
    @Test func tokenInTheQuery() async throws {
        let good = try await Self.validToken()
        let expired = try #require(try await Self.token(.expired))
        try await Self.withServer { url in
            let configuration = HubClientConfiguration(skipNegotiation: true)
            try await withHubConnection(url: "\(url)?access_token=\(good)", configuration: configuration) { hub in
                let value6 = try await hub.invoke("WhoAmI", returning: String.self)
                #expect(value6 == "ann")
            }
            let error = await #expect(throws: HubClientError.self) {
                try await withHubConnection(url: "\(url)?access_token=\(expired)", configuration: configuration) {
                    _ in
                }
            }
            #expect(error?.status == 401)
        }
    }

    /// Every bad or missing token is 401, on negotiate and on the WebSocket upgrade (skip negotiation).
    @Test(arguments: TokenCase.allCases, [false, true])
    func refused(_ tokenCase: TokenCase, skipNegotiation: Bool) async throws {
        let token = try await Self.token(tokenCase)
        try await Self.withServer { url in
            let configuration = HubClientConfiguration(
                accessTokenProvider: { token }, skipNegotiation: skipNegotiation)
            let error = await #expect(throws: HubClientError.self) {
                try await withHubConnection(url: url, configuration: configuration) { _ in }
            }
            #expect(error?.status == 401)
        }
    }

    /// With `requireToken: false` no token is anonymous, and a bad token is still refused.
    @Test func optionalToken() async throws {
        let expired = try await Self.token(.expired)
        try await Self.withServer(requireToken: false) { url in
            try await withHubConnection(url: url) { hub in
                let value7 = try await hub.invoke("WhoAmI", returning: String.self)
                #expect(value7 == "")
            }
            let configuration = HubClientConfiguration(accessTokenProvider: { expired })
            let error = await #expect(throws: HubClientError.self) {
                try await withHubConnection(url: url, configuration: configuration) { _ in }
            }
            #expect(error?.status == 401)
        }
    }
}
