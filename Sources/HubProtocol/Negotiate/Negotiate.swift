/// The transports of TransportProtocols.md, with their names in the negotiate response.
public enum HubTransport: String, Sendable, CaseIterable {
    case webSockets = "WebSockets"
    case serverSentEvents = "ServerSentEvents"
    case longPolling = "LongPolling"
}

/// The transfer formats a transport can carry. Always written in the order `["Text","Binary"]`: signalrcore
/// picks its hub protocol from the first entry, so Binary first would switch it to MessagePack.
public struct TransferFormats: OptionSet, Sendable, Hashable {
    public let rawValue: Int
    public init(rawValue: Int) { self.rawValue = rawValue }

    public static let text = TransferFormats(rawValue: 1)
    public static let binary = TransferFormats(rawValue: 2)
    public static let both: TransferFormats = [.text, .binary]

    /// The names in wire order.
    public var names: [String] {
        var names: [String] = []
        if contains(.text) { names.append("Text") }
        if contains(.binary) { names.append("Binary") }
        return names
    }
}

/// The query parameters of `POST {hub}/negotiate` (TransportProtocols.md, "Negotiate"), resolved as the .NET
/// server does.
public struct NegotiateRequest: Sendable, Equatable {
    /// The highest negotiate version: 1.
    public static let maximumVersion = 1

    /// The version to answer with (0 or 1).
    public var version: Int
    /// The client asked for stateful reconnect (`useStatefulReconnect=true`).
    public var useStatefulReconnect: Bool

    public init(version: Int, useStatefulReconnect: Bool = false) {
        self.version = version
        self.useStatefulReconnect = useStatefulReconnect
    }

    /// Resolves the query values (already percent-decoded; the caller finds the keys case-insensitively).
    ///
    /// - `negotiateVersion` absent → version 0 (both Python clients send none); an error if `minimumVersion > 0`.
    /// - not an integer (.NET `int.TryParse`: optional surrounding spaces and sign, digits, within Int32) → the
    ///   error "The client requested a non-integer protocol version.".
    /// - below `minimumVersion` → "The client requested version 'N', but the server does not support this
    ///   version.".
    /// - above ``maximumVersion`` → clamped to it.
    /// - `useStatefulReconnect`: true only for `true` in any letter case (surrounding spaces allowed).
    ///
    /// - Returns: the request, or the error text for ``NegotiateResponse/error(_:)`` (which .NET sends with
    ///   status 200).
    public static func resolve(
        negotiateVersion: String?, useStatefulReconnect: String? = nil, minimumVersion: Int = 0
    ) -> Result<NegotiateRequest, NegotiateError> {
        var version = 0
        if let negotiateVersion {
            guard let parsed = parseInt32(negotiateVersion) else {
                return .failure(NegotiateError(message: "The client requested a non-integer protocol version."))
            }
            version = parsed
            if version < minimumVersion {
                return .failure(versionError(version))
            }
            version = min(version, maximumVersion)
        } else if minimumVersion > 0 {
            return .failure(versionError(0))
        }
        let stateful = useStatefulReconnect.map { trimSpaces($0).lowercased() == "true" } ?? false
        return .success(NegotiateRequest(version: version, useStatefulReconnect: stateful))
    }

    private static func versionError(_ version: Int) -> NegotiateError {
        NegotiateError(
            message: "The client requested version '\(version)', but the server does not support this version.")
    }

    private static func trimSpaces(_ text: String) -> Substring {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }
        var slice = Substring(text)
        while let first = slice.first, isSpace(first) { slice.removeFirst() }
        while let last = slice.last, isSpace(last) { slice.removeLast() }
        return slice
    }

    /// .NET `int.TryParse` (NumberStyles.Integer, invariant): optional white space, optional sign, ASCII digits,
    /// optional white space, within Int32.
    static func parseInt32(_ text: String) -> Int? {
        let trimmed = trimSpaces(text)
        var digits = trimmed.utf8[...]
        var negative = false
        if let sign = digits.first, sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-") {
            negative = sign == UInt8(ascii: "-")
            digits = digits.dropFirst()
        }
        guard !digits.isEmpty, digits.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }) else {
            return nil
        }
        var value: Int64 = 0
        for digit in digits {
            value = value * 10 + Int64(digit - UInt8(ascii: "0"))
            if value > Int64(Int32.max) + 1 { return nil }
        }
        if negative { value = -value }
        guard let result = Int32(exactly: value) else { return nil }
        return Int(result)
    }
}

/// A negotiate failure: its ``message`` goes in `{"error":"…"}`.
public struct NegotiateError: Error, Sendable, Equatable {
    public var message: String
    public init(message: String) { self.message = message }
}

/// One entry of `availableTransports`.
public struct AvailableTransport: Sendable, Equatable {
    public var transport: HubTransport
    public var transferFormats: TransferFormats

    public init(transport: HubTransport, transferFormats: TransferFormats) {
        self.transport = transport
        self.transferFormats = transferFormats
    }

    /// WebSockets with Text and Binary.
    public static let webSockets = AvailableTransport(transport: .webSockets, transferFormats: .both)
    /// Server-Sent Events: Text only (so JSON only).
    public static let serverSentEvents = AvailableTransport(transport: .serverSentEvents, transferFormats: .text)
    /// Long polling with Text and Binary.
    public static let longPolling = AvailableTransport(transport: .longPolling, transferFormats: .both)
}

/// The body of a negotiate answer (TransportProtocols.md, "POST [endpoint-base]/negotiate request").
public enum NegotiateResponse: Sendable, Equatable {
    /// A new connection. With version 0 the body carries `connectionId` only (the client uses it as `id=`); with
    /// version 1 also `connectionToken` (secret, the `id=`), while `connectionId` is public.
    case connection(NegotiateConnection)
    /// Azure SignalR style redirect: the client negotiates again at `url` with `accessToken`.
    case redirect(url: String, accessToken: String?)
    /// `{"error":"…"}`.
    case error(String)

    /// The JSON body. A connection is written as `negotiateVersion`, `connectionId`, `connectionToken` (version
    /// ≥ 1 only, when set: a version-1 server always sets it), `availableTransports`, then
    /// `useStatefulReconnect: true` when set.
    public func encoded() -> [UInt8] {
        var object = JSONObject()
        switch self {
        case .connection(let connection):
            object["negotiateVersion"] = .int(Int64(connection.negotiateVersion))
            object["connectionId"] = .string(connection.connectionId)
            if connection.negotiateVersion >= 1, let token = connection.connectionToken {
                object["connectionToken"] = .string(token)
            }
            object["availableTransports"] = .array(
                connection.availableTransports.map {
                    [
                        "transport": .string($0.transport.rawValue),
                        "transferFormats": .array($0.transferFormats.names.map { .string($0) }),
                    ]
                })
            if connection.useStatefulReconnect { object["useStatefulReconnect"] = .bool(true) }
        case .redirect(let url, let accessToken):
            object["url"] = .string(url)
            if let accessToken { object["accessToken"] = .string(accessToken) }
        case .error(let message):
            object["error"] = .string(message)
        }
        var bytes: [UInt8] = []
        JSONWriter.write(.object(object), into: &bytes, nonFinite: .null)
        return bytes
    }

    /// Client side: parses a negotiate body. `error` wins, then `url` (redirect), then a connection. Unknown
    /// fields are ignored (TransportProtocols.md). A version-0 body has no `connectionToken`:
    /// ``NegotiateConnection/connectionToken`` is then nil and the client uses `connectionId` as `id=`.
    /// - Throws: ``HubProtocolError``: JSON syntax and limit codes, `.invalidMessage` (not an object),
    ///   `.missingField` (`connectionId`), `.wrongFieldType`.
    public static func parse(_ bytes: some Collection<UInt8>, limits: HubProtocolLimits = .default)
        throws(HubProtocolError) -> NegotiateResponse
    {
        let value = try JSONValue(parsing: bytes, limits: limits)
        guard case .object(let object) = value else {
            throw HubProtocolError(.invalidMessage, "the negotiate response must be a JSON object")
        }
        func string(_ name: String) throws(HubProtocolError) -> String? {
            switch object[name] {
            case nil, .null: return nil
            case .string(let text): return text
            default: throw .wrongType(name, expected: "a string")
            }
        }
        if let error = try string("error") { return .error(error) }
        if let url = try string("url") { return .redirect(url: url, accessToken: try string("accessToken")) }
        guard let connectionId = try string("connectionId") else { throw .missing("connectionId") }
        var version = 0
        switch object["negotiateVersion"] {
        case nil, .null: break
        case .int(let number): version = Int(clamping: number)
        default: throw .wrongType("negotiateVersion", expected: "an integer")
        }
        var transports: [AvailableTransport] = []
        switch object["availableTransports"] {
        case nil, .null: break
        case .array(let entries):
            for (index, entry) in entries.enumerated() {
                guard case .string(let name) = entry["transport"] ?? .null else {
                    throw .wrongType("availableTransports[\(index)].transport", expected: "a string")
                }
                // Transports this module does not know are skipped, as clients do.
                guard let transport = HubTransport(rawValue: name) else { continue }
                var formats: TransferFormats = []
                if case .array(let names) = entry["transferFormats"] ?? .null {
                    for name in names {
                        if name == "Text" { formats.insert(.text) }
                        if name == "Binary" { formats.insert(.binary) }
                    }
                }
                transports.append(AvailableTransport(transport: transport, transferFormats: formats))
            }
        default: throw .wrongType("availableTransports", expected: "an array")
        }
        var stateful = false
        if case .bool(let flag) = object["useStatefulReconnect"] ?? .null { stateful = flag }
        return .connection(
            NegotiateConnection(
                negotiateVersion: version, connectionId: connectionId, connectionToken: try string("connectionToken"),
                availableTransports: transports, useStatefulReconnect: stateful))
    }
}

/// A successful negotiate: the new connection's ids and what it may use.
public struct NegotiateConnection: Sendable, Equatable {
    /// The version answered (0 or 1; see
    /// ``NegotiateRequest/resolve(negotiateVersion:useStatefulReconnect:minimumVersion:)``).
    public var negotiateVersion: Int
    /// The public id hubs and other clients see.
    public var connectionId: String
    /// The secret id used as `id=` on transport requests (version ≥ 1). Nil means "same as connectionId"
    /// (version 0).
    public var connectionToken: String?
    /// The enabled transports in the order clients should try them.
    public var availableTransports: [AvailableTransport]
    /// True only when the server allows stateful reconnect and the client asked for it (the JS client refuses a
    /// server that sets it unasked).
    public var useStatefulReconnect: Bool

    public init(
        negotiateVersion: Int, connectionId: String, connectionToken: String?,
        availableTransports: [AvailableTransport], useStatefulReconnect: Bool = false
    ) {
        self.negotiateVersion = negotiateVersion
        self.connectionId = connectionId
        self.connectionToken = connectionToken
        self.availableTransports = availableTransports
        self.useStatefulReconnect = useStatefulReconnect
    }

    /// The value clients put in `id=`: the token for version ≥ 1, the connection id for version 0.
    public var transportId: String { negotiateVersion >= 1 ? (connectionToken ?? connectionId) : connectionId }
}
