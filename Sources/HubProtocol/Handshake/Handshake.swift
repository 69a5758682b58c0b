/// The hub handshake (HubProtocol.md, "Overview"): the client's first message names the protocol and version,
/// `{"protocol":"json","version":1}` + 0x1E; the server answers `{}` + 0x1E or `{"error":"…"}` + 0x1E (and then
/// closes). Both are always JSON text, whatever protocol is chosen.
///
/// Versions: the spec says 1, but the shipped clients send 0 (signalrcore after a version-0 negotiate), 1
/// (pysignalr, JS and .NET without stateful reconnect) and 2 (JS and .NET with stateful reconnect); the .NET
/// protocols report version 2 and accept any version up to it. ``HandshakeRequest/supportedVersions`` is 0...2.
public struct HandshakeRequest: Sendable, Equatable {
    /// The handshake versions this module accepts: 0, 1 and 2.
    public static let supportedVersions: ClosedRange<Int> = 0...2

    /// `"json"`, `"messagepack"`, or another name (refused by ``validate(protocols:versions:)``).
    public var protocolName: String
    /// The protocol version asked for (0, 1 or 2 in practice).
    public var version: Int

    public init(protocolName: String, version: Int) {
        self.protocolName = protocolName
        self.version = version
    }

    /// Parses a handshake request from the start of `bytes`: everything up to the first 0x1E.
    ///
    /// - Returns: nil when no 0x1E has arrived yet and `bytes` is within `limits.maximumMessageSize` (feed more
    ///   bytes); otherwise the request and the offset where the bytes after its 0x1E start (messages that came in
    ///   the same frame, to be decoded with the chosen protocol; TransportProtocols.md: they must be processed).
    /// - Throws: ``HubProtocolError``: `.messageTooLarge` (no 0x1E within the limit), the JSON codes of
    ///   ``JSONValue/init(parsing:limits:)``, `.invalidMessage` (not an object), `.missingField` / `.wrongFieldType`
    ///   for `protocol` (a string) and `version` (an integer). Unknown fields are ignored.
    public static func parse(_ bytes: some Collection<UInt8>, limits: HubProtocolLimits = .default)
        throws(HubProtocolError) -> (request: HandshakeRequest, remainderOffset: Int)?
    {
        let array = Array(bytes)
        guard let end = array.firstIndex(of: JSONHubProtocol.recordSeparator) else {
            guard array.count <= limits.maximumMessageSize else {
                throw HubProtocolError(.messageTooLarge, "no handshake within \(limits.maximumMessageSize) bytes")
            }
            return nil
        }
        guard end <= limits.maximumMessageSize else {
            throw HubProtocolError(.messageTooLarge, "handshake of \(end) bytes, limit \(limits.maximumMessageSize)")
        }
        let value = try JSONValue(parsing: array[..<end], limits: limits)
        guard case .object(let object) = value else {
            throw HubProtocolError(.invalidMessage, "the handshake must be a JSON object")
        }
        guard let name = object["protocol"] else { throw .missing("protocol") }
        guard case .string(let protocolName) = name else { throw .wrongType("protocol", expected: "a string") }
        guard let versionValue = object["version"] else { throw .missing("version") }
        guard case .int(let version) = versionValue, let version = Int(exactly: version) else {
            throw .wrongType("version", expected: "an integer")
        }
        return (HandshakeRequest(protocolName: protocolName, version: version), end + 1)
    }

    /// Checks the request against what the server offers.
    /// - Parameters:
    ///   - protocols: the protocol names the server enables (default both).
    ///   - versions: the versions accepted (default ``supportedVersions``).
    /// - Throws: `.unsupportedProtocol` or `.unsupportedVersion`, whose ``HubProtocolError/detail`` is the text
    ///   to send in the error response (the .NET server's wording).
    public func validate(
        protocols: [String] = [JSONHubProtocol.name, MessagePackHubProtocol.name],
        versions: ClosedRange<Int> = supportedVersions
    ) throws(HubProtocolError) {
        guard protocols.contains(protocolName) else {
            throw HubProtocolError(
                .unsupportedProtocol, field: "protocol", "The protocol '\(protocolName)' is not supported.")
        }
        guard versions.contains(version) else {
            throw HubProtocolError(
                .unsupportedVersion, field: "version",
                "The server does not support version \(version) of the '\(protocolName)' protocol.")
        }
    }

    /// Client side: the request followed by 0x1E.
    public func encoded() -> [UInt8] {
        var bytes: [UInt8] = []
        JSONWriter.append("{\"protocol\":", &bytes)
        JSONWriter.writeString(protocolName, into: &bytes)
        JSONWriter.append(",\"version\":", &bytes)
        JSONWriter.writeInteger(version, into: &bytes)
        bytes.append(UInt8(ascii: "}"))
        bytes.append(JSONHubProtocol.recordSeparator)
        return bytes
    }
}

/// The server's answer to the handshake: success, or an error after which the server closes.
public enum HandshakeResponse: Sendable, Equatable {
    case success
    case error(String)

    /// `{}` + 0x1E (exactly these three bytes; some clients compare them) or `{"error":"…"}` + 0x1E.
    public func encoded() -> [UInt8] {
        switch self {
        case .success: return [UInt8(ascii: "{"), UInt8(ascii: "}"), JSONHubProtocol.recordSeparator]
        case .error(let message):
            var bytes: [UInt8] = []
            JSONWriter.append("{\"error\":", &bytes)
            JSONWriter.writeString(message, into: &bytes)
            bytes.append(UInt8(ascii: "}"))
            bytes.append(JSONHubProtocol.recordSeparator)
            return bytes
        }
    }

    /// Client side: parses the response at the start of `bytes` (up to the first 0x1E).
    /// - Returns: nil when no 0x1E has arrived yet (within the limit); otherwise the response and the offset of
    ///   the bytes after it (hub messages the server sent in the same frame).
    /// - Throws: `.messageTooLarge`, the JSON codes, `.invalidMessage` (not an object), `.wrongFieldType` for an
    ///   `error` that is not a string. Unknown fields are ignored; `"error": null` counts as success.
    public static func parse(_ bytes: some Collection<UInt8>, limits: HubProtocolLimits = .default)
        throws(HubProtocolError) -> (response: HandshakeResponse, remainderOffset: Int)?
    {
        let array = Array(bytes)
        guard let end = array.firstIndex(of: JSONHubProtocol.recordSeparator) else {
            guard array.count <= limits.maximumMessageSize else {
                throw HubProtocolError(
                    .messageTooLarge, "no handshake response within \(limits.maximumMessageSize) bytes")
            }
            return nil
        }
        let value = try JSONValue(parsing: array[..<end], limits: limits)
        guard case .object(let object) = value else {
            throw HubProtocolError(.invalidMessage, "the handshake response must be a JSON object")
        }
        switch object["error"] {
        case nil, .null: return (.success, end + 1)
        case .string(let message): return (.error(message), end + 1)
        default: throw .wrongType("error", expected: "a string")
        }
    }
}
