import Foundation
import Hubs
import JWTKit

extension HubAuthenticator {
    /// Verifies a JSON Web Token (RFC 7519) as the bearer token of every hub request (the `Authorization: Bearer`
    /// header, or the `access_token` query parameter on WebSocket and SSE requests, as ``HubAuthenticator``
    /// reads them) with vapor/jwt-kit, and makes its subject the user.
    ///
    /// A token is accepted when its signature verifies with one of `keys` (jwt-kit picks the key by the header's
    /// `kid`, else the default key; the `alg` must match the key's), it has a `sub` claim (the user id, RFC 7519
    /// §4.1.2), it has not expired (`exp`, §4.1.4; a token without `exp` is refused unless `requireExpiration` is
    /// false), it is not used before its `nbf` (§4.1.5), and, when given, `issuer` equals its `iss` (§4.1.1) and
    /// `audience` is among its `aud` (§4.1.3). `exp` and `nbf` are compared with the current time, allowing
    /// `leeway` of clock difference between the token's issuer and this server.
    ///
    /// The other claims become ``HubUser/claims``: a string as it is, a number or boolean as its JSON text, an
    /// array of those joined with `,`; objects and `null` are left out (``HubAuthorization/claim(_:_:)`` matches
    /// a value exactly). The registered claims (`sub`, `exp`, `nbf`, `iat`, `iss`, `aud`, `jti`) are there too,
    /// the times in seconds since 1970.
    ///
    /// Anything wrong with the token is ``HubAuthenticator/Result/rejected`` (401 on negotiate, on the WebSocket
    /// upgrade and on every SSE or long-polling request). Nothing is logged, so no token reaches a log.
    /// - Parameters:
    ///   - keys: the verification keys (HMAC secrets, RSA/ECDSA/EdDSA public keys, a JWKS).
    ///   - requireToken: when false, a request without any bearer token is let in as anonymous (a token that is
    ///     present must still be valid). Default true: no token is 401.
    ///   - requireExpiration: refuse tokens without `exp`. Default true.
    ///   - issuer: the required `iss`, or nil not to check it.
    ///   - audience: a value `aud` must contain, or nil not to check it.
    ///   - leeway: the clock difference tolerated for `exp` and `nbf`. Default 60 s.
    public static func jwt(
        keys: JWTKeyCollection, requireToken: Bool = true, requireExpiration: Bool = true, issuer: String? = nil,
        audience: String? = nil, leeway: Duration = .seconds(60)
    ) -> HubAuthenticator {
        let leewaySeconds = TimeInterval(leeway.components.seconds) + TimeInterval(leeway.components.attoseconds) / 1e18
        return HubAuthenticator { request in
            guard let token = request.bearerToken else { return requireToken ? .rejected : .anonymous }
            guard let claims = try? await keys.verify(token, as: HubJWTClaims.self) else { return .rejected }
            let now = Date()
            guard let subject = claims.subject?.value, !subject.isEmpty else { return .rejected }
            if let expiration = claims.expiration {
                guard (try? expiration.verifyNotExpired(currentDate: now.addingTimeInterval(-leewaySeconds))) != nil
                else { return .rejected }
            } else if requireExpiration {
                return .rejected
            }
            if let notBefore = claims.notBefore {
                guard (try? notBefore.verifyNotBefore(currentDate: now.addingTimeInterval(leewaySeconds))) != nil
                else { return .rejected }
            }
            if let issuer, claims.issuer?.value != issuer { return .rejected }
            if let audience, claims.audience?.value.contains(audience) != true { return .rejected }
            return .authenticated(HubUser(id: subject, claims: claims.userClaims))
        }
    }
}

/// The payload of a hub bearer token: the registered claims the authenticator checks, and every claim as text for
/// ``HubUser/claims``. Signature verification is jwt-kit's; the time, issuer and audience checks are done by
/// ``HubAuthenticator/jwt(keys:requireToken:requireExpiration:issuer:audience:leeway:)``, which knows its settings.
public struct HubJWTClaims: JWTPayload, Equatable {
    /// `sub`: the user id.
    public var subject: SubjectClaim?
    /// `exp`.
    public var expiration: ExpirationClaim?
    /// `nbf`.
    public var notBefore: NotBeforeClaim?
    /// `iss`.
    public var issuer: IssuerClaim?
    /// `aud` (a string or an array of strings).
    public var audience: AudienceClaim?
    /// Every claim with a string, number or boolean value (or an array of them), as text.
    public var userClaims: [String: String]

    public init(
        subject: String, expiration: Date?, notBefore: Date? = nil, issuer: String? = nil, audience: [String]? = nil,
        claims: [String: String] = [:]
    ) {
        self.subject = SubjectClaim(value: subject)
        self.expiration = expiration.map { ExpirationClaim(value: $0) }
        self.notBefore = notBefore.map { NotBeforeClaim(value: $0) }
        self.issuer = issuer.map { IssuerClaim(value: $0) }
        self.audience = audience.map { AudienceClaim(value: $0) }
        self.userClaims = claims
    }

    /// Checks nothing: the checks that need the current time and the settings run after decoding.
    public func verify(using algorithm: some JWTAlgorithm) async throws {}

    struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(_ string: String) { stringValue = string }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: Key.self)
        subject = try container.decodeIfPresent(SubjectClaim.self, forKey: Key("sub"))
        expiration = try container.decodeIfPresent(ExpirationClaim.self, forKey: Key("exp"))
        notBefore = try container.decodeIfPresent(NotBeforeClaim.self, forKey: Key("nbf"))
        issuer = try container.decodeIfPresent(IssuerClaim.self, forKey: Key("iss"))
        audience = try container.decodeIfPresent(AudienceClaim.self, forKey: Key("aud"))
        var claims: [String: String] = [:]
        for key in container.allKeys {
            if let text = try? container.decode(ClaimText.self, forKey: key).text { claims[key.stringValue] = text }
        }
        userClaims = claims
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        for (name, value) in userClaims where !Self.registered.contains(name) {
            try container.encode(value, forKey: Key(name))
        }
        try container.encodeIfPresent(subject, forKey: Key("sub"))
        try container.encodeIfPresent(expiration, forKey: Key("exp"))
        try container.encodeIfPresent(notBefore, forKey: Key("nbf"))
        try container.encodeIfPresent(issuer, forKey: Key("iss"))
        try container.encodeIfPresent(audience, forKey: Key("aud"))
    }

    static let registered: Set<String> = ["sub", "exp", "nbf", "iss", "aud"]
}

/// A claim value as text: a string, a number, a boolean, or an array of those (joined with `,`).
struct ClaimText: Decodable {
    var text: String

    init(from decoder: any Decoder) throws {
        if var array = try? decoder.unkeyedContainer() {
            var parts: [String] = []
            while !array.isAtEnd { parts.append(try array.decode(ClaimText.self).text) }
            text = parts.joined(separator: ",")
            return
        }
        let value = try decoder.singleValueContainer()
        if let string = try? value.decode(String.self) {
            text = string
        } else if let bool = try? value.decode(Bool.self) {
            text = bool ? "true" : "false"
        } else if let integer = try? value.decode(Int64.self) {
            text = String(integer)
        } else {
            text = String(try value.decode(Double.self))
        }
    }
}
