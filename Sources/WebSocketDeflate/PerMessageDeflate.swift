import WebSocketCore
import WebSocketHandshake

/// permessage-deflate (RFC 7692): compresses each message with DEFLATE (RFC 1951), marked with RSV1.
///
/// Negotiation is sans-I/O: a server calls ``negotiate(offers:configuration:)`` with the client's parsed
/// `Sec-WebSocket-Extensions` offers and puts the returned response element in its 101 response; a client sends
/// ``offer(_:)`` and checks the server's answer with ``accept(response:offered:)``. Both sides then give a
/// ``PerMessageDeflateCodec`` to `Connection(role:configuration:codec:)`.
///
/// Compression uses the system zlib (raw DEFLATE, `Z_SYNC_FLUSH`, the `00 00 ff ff` tail stripped on send and
/// appended on receive, RFC 7692 §7.2). zlib is called directly on the connection's buffers, so no payload is
/// copied on the way in or out of zlib.
public enum PerMessageDeflate {
    /// The extension token, `permessage-deflate` (RFC 7692 §7).
    public static let extensionName = "permessage-deflate"

    /// What this endpoint wants from the negotiation and how it compresses. Field names follow RFC 7692 §7.1.
    public struct Configuration: Sendable, Hashable {
        /// The server resets its compressor after every message (RFC 7692 §7.1.1.1). A server with this set
        /// always answers with `server_no_context_takeover`; a client with this set asks for it. Default: `false`.
        public var serverNoContextTakeover: Bool = false
        /// The client resets its compressor after every message (RFC 7692 §7.1.1.2). A server with this set
        /// answers with `client_no_context_takeover`; a client with this set announces it. Default: `false`.
        public var clientNoContextTakeover: Bool = false
        /// The largest LZ77 window the server may use, as a base-2 logarithm, 8...15 (RFC 7692 §7.1.2.1).
        /// A server uses at most this; a client asks the server for it. `nil`: 15 (32 KiB). Default: `nil`.
        public var serverMaxWindowBits: Int? = nil
        /// The largest LZ77 window the client may use, 8...15 (RFC 7692 §7.1.2.2). A server limits the client to
        /// it when the client offered `client_max_window_bits`; a client uses at most this. `nil`: 15.
        public var clientMaxWindowBits: Int? = nil
        /// zlib compression level, 0 (none) ... 9 (best). Default: 6.
        public var compressionLevel: Int = 6
        /// zlib `memLevel`, 1 ... 9: memory for the compressor's hash table (`2^(memLevel + 9)` bytes). Default: 8.
        public var memoryLevel: Int = 8
        /// Messages shorter than this many bytes are sent uncompressed (RSV1 clear). Default: 32.
        public var minimumMessageLength: Int = 32

        public init() {}

        /// The smallest memory footprint: no context takeover in both directions (so no zlib state is kept
        /// between messages), 512-byte windows (`max_window_bits=9`) and `memLevel` 1. Costs compression ratio
        /// on streams of similar messages.
        public static var lowMemory: Configuration {
            var configuration = Configuration()
            configuration.serverNoContextTakeover = true
            configuration.clientNoContextTakeover = true
            configuration.serverMaxWindowBits = 9
            configuration.clientMaxWindowBits = 9
            configuration.memoryLevel = 1
            return configuration
        }
    }

    /// The parameters both endpoints agreed on (RFC 7692 §7.1).
    public struct Parameters: Sendable, Hashable {
        /// The server resets its compressor after each message.
        public var serverNoContextTakeover = false
        /// The client resets its compressor after each message.
        public var clientNoContextTakeover = false
        /// The server's LZ77 window, 8...15 (bits).
        public var serverMaxWindowBits = 15
        /// The client's LZ77 window, 8...15 (bits).
        public var clientMaxWindowBits = 15

        public init(
            serverNoContextTakeover: Bool = false,
            clientNoContextTakeover: Bool = false,
            serverMaxWindowBits: Int = 15,
            clientMaxWindowBits: Int = 15
        ) {
            self.serverNoContextTakeover = serverNoContextTakeover
            self.clientNoContextTakeover = clientNoContextTakeover
            self.serverMaxWindowBits = serverMaxWindowBits
            self.clientMaxWindowBits = clientMaxWindowBits
        }
    }

    /// Why a client refuses the server's permessage-deflate response (RFC 7692 §5.1, §7.1): the client must then
    /// fail the connection (RFC 6455 §4.1).
    public struct NegotiationError: Error, Sendable, Hashable, CustomStringConvertible {
        /// What was wrong.
        public let reason: String
        public var description: String { "permessage-deflate: \(reason)" }
    }

    /// The parameters of one offer or response element, checked against RFC 7692 §7.1's grammar.
    struct Elements {
        var serverNoContextTakeover = false
        var clientNoContextTakeover = false
        var serverMaxWindowBits: Int? = nil
        /// `.some(nil)`: present without a value.
        var clientMaxWindowBits: Int?? = nil

        /// Parses the parameters; returns a reason when one is unknown, repeated or has an invalid value.
        static func parse(_ element: WebSocketExtension) -> Result<Elements, NegotiationError> {
            var elements = Elements()
            var seen = Set<String>()
            for parameter in element.parameters {
                guard seen.insert(parameter.name).inserted else {
                    return .failure(NegotiationError(reason: "parameter \(parameter.name) repeated"))
                }
                switch parameter.name {
                case "server_no_context_takeover", "client_no_context_takeover":
                    guard parameter.value == nil else {
                        return .failure(NegotiationError(reason: "\(parameter.name) takes no value"))
                    }
                    if parameter.name == "server_no_context_takeover" {
                        elements.serverNoContextTakeover = true
                    } else {
                        elements.clientNoContextTakeover = true
                    }
                case "server_max_window_bits":
                    guard let bits = parameter.value.flatMap(windowBits) else {
                        return .failure(NegotiationError(reason: "server_max_window_bits needs a value 8-15"))
                    }
                    elements.serverMaxWindowBits = bits
                case "client_max_window_bits":
                    if let value = parameter.value {
                        guard let bits = windowBits(value) else {
                            return .failure(NegotiationError(reason: "client_max_window_bits value must be 8-15"))
                        }
                        elements.clientMaxWindowBits = .some(bits)
                    } else {
                        elements.clientMaxWindowBits = .some(nil)
                    }
                default:
                    return .failure(NegotiationError(reason: "unknown parameter \(parameter.name)"))
                }
            }
            return .success(elements)
        }

        /// A decimal 8...15 without leading zeros (RFC 7692 §7.1.2.1).
        static func windowBits(_ value: String) -> Int? {
            guard let bits = Int(value), (8...15).contains(bits), String(bits) == value else { return nil }
            return bits
        }
    }

    // MARK: - Server

    /// Chooses the first acceptable permessage-deflate offer (RFC 7692 §5, §7.1) and builds the response.
    ///
    /// An offer with an unknown, repeated or invalid parameter is declined and the next one is tried. The response
    /// contains exactly what was agreed: `server_no_context_takeover` when the client asked for it or
    /// `configuration` wants it; `client_no_context_takeover` when `configuration` wants it or the client
    /// announced it; `server_max_window_bits` when the client asked for a limit or `configuration` sets one
    /// below 15; `client_max_window_bits` only when the client offered that parameter and a limit below 15 (or the
    /// client's own value) applies.
    ///
    /// - Parameters:
    ///   - offers: every element of the request's `Sec-WebSocket-Extensions` fields, in order; elements of other
    ///     extensions are ignored.
    ///   - configuration: the server's wishes.
    /// - Returns: the response element and the agreed parameters, or `nil` to decline permessage-deflate.
    public static func negotiate(
        offers: [WebSocketExtension],
        configuration: Configuration = Configuration()
    ) -> (response: WebSocketExtension, parameters: Parameters)? {
        for offer in offers where offer.name == extensionName {
            guard case .success(let asked) = Elements.parse(offer) else { continue }
            var parameters = Parameters()
            var response = WebSocketExtension(name: extensionName)
            parameters.serverNoContextTakeover = asked.serverNoContextTakeover || configuration.serverNoContextTakeover
            if parameters.serverNoContextTakeover {
                response.parameters.append(.init(name: "server_no_context_takeover"))
            }
            parameters.clientNoContextTakeover = asked.clientNoContextTakeover || configuration.clientNoContextTakeover
            if parameters.clientNoContextTakeover {
                response.parameters.append(.init(name: "client_no_context_takeover"))
            }
            let serverBits = min(asked.serverMaxWindowBits ?? 15, configuration.serverMaxWindowBits.map(clamp) ?? 15)
            parameters.serverMaxWindowBits = serverBits
            if asked.serverMaxWindowBits != nil || serverBits < 15 {
                response.parameters.append(.init(name: "server_max_window_bits", value: String(serverBits)))
            }
            if let offered = asked.clientMaxWindowBits {
                let clientBits = min(offered ?? 15, configuration.clientMaxWindowBits.map(clamp) ?? 15)
                parameters.clientMaxWindowBits = clientBits
                if clientBits < 15 || offered != nil {
                    response.parameters.append(.init(name: "client_max_window_bits", value: String(clientBits)))
                }
            }
            return (response, parameters)
        }
        return nil
    }

    // MARK: - Client

    /// The client's offer (RFC 7692 §7.1): always `client_max_window_bits` (with the configured limit, or bare
    /// to say the client accepts a limit), plus the context-takeover and server-window wishes of `configuration`.
    public static func offer(_ configuration: Configuration = Configuration()) -> WebSocketExtension {
        var offer = WebSocketExtension(name: extensionName)
        if configuration.serverNoContextTakeover { offer.parameters.append(.init(name: "server_no_context_takeover")) }
        if configuration.clientNoContextTakeover { offer.parameters.append(.init(name: "client_no_context_takeover")) }
        if let bits = configuration.serverMaxWindowBits {
            offer.parameters.append(.init(name: "server_max_window_bits", value: String(clamp(bits))))
        }
        offer.parameters.append(.init(name: "client_max_window_bits", value: configuration.clientMaxWindowBits.map { String(clamp($0)) }))
        return offer
    }

    /// Checks the server's response to ``offer(_:)`` (RFC 7692 §7.1).
    ///
    /// - Parameters:
    ///   - response: every element of the response's `Sec-WebSocket-Extensions` fields.
    ///   - offered: the configuration the offer was made from.
    /// - Returns: the agreed parameters, or `nil` when the server did not accept permessage-deflate.
    /// - Throws: ``NegotiationError`` when the response has permessage-deflate more than once, an unknown,
    ///   repeated or invalid parameter, `client_max_window_bits` above what was offered, a
    ///   `server_max_window_bits` above what was asked or missing although asked, or lacks
    ///   `server_no_context_takeover` although asked.
    public static func accept(
        response: [WebSocketExtension],
        offered: Configuration = Configuration()
    ) throws(NegotiationError) -> Parameters? {
        let elements = response.filter { $0.name == extensionName }
        guard let element = elements.first else { return nil }
        guard elements.count == 1 else { throw NegotiationError(reason: "accepted more than once") }
        let agreed: Elements
        switch Elements.parse(element) {
        case .success(let parsed): agreed = parsed
        case .failure(let error): throw error
        }
        if offered.serverNoContextTakeover && !agreed.serverNoContextTakeover {
            throw NegotiationError(reason: "server_no_context_takeover was requested but not accepted")
        }
        var parameters = Parameters()
        parameters.serverNoContextTakeover = agreed.serverNoContextTakeover
        parameters.clientNoContextTakeover = agreed.clientNoContextTakeover || offered.clientNoContextTakeover
        if let asked = offered.serverMaxWindowBits.map(clamp) {
            guard let bits = agreed.serverMaxWindowBits else {
                throw NegotiationError(reason: "server_max_window_bits was requested but not answered")
            }
            guard bits <= asked else { throw NegotiationError(reason: "server_max_window_bits \(bits) above \(asked)") }
        }
        parameters.serverMaxWindowBits = agreed.serverMaxWindowBits ?? 15
        let ownLimit = offered.clientMaxWindowBits.map(clamp) ?? 15
        switch agreed.clientMaxWindowBits {
        case .none:
            parameters.clientMaxWindowBits = ownLimit
        case .some(.none):
            throw NegotiationError(reason: "client_max_window_bits needs a value in a response")
        case .some(.some(let bits)):
            guard bits <= ownLimit else {
                throw NegotiationError(reason: "client_max_window_bits \(bits) above the offered \(ownLimit)")
            }
            parameters.clientMaxWindowBits = bits
        }
        return parameters
    }

    private static func clamp(_ bits: Int) -> Int { min(15, max(8, bits)) }
}
