import Testing
import WebSocketCore
import WebSocketDeflate
import WebSocketHandshake

private func offers(_ header: String...) throws -> [WebSocketExtension] {
    try WebSocketExtension.parse(header)
}

@Suite("permessage-deflate negotiation, server side (RFC 7692 §5, §7.1)")
struct ServerNegotiationTests {
    typealias Config = PerMessageDeflate.Configuration

    func negotiate(_ header: String, _ configuration: Config = Config()) throws -> (String, PerMessageDeflate.Parameters)? {
        guard let (response, parameters) = PerMessageDeflate.negotiate(offers: try offers(header), configuration: configuration) else {
            return nil
        }
        return (WebSocketExtension.serialize([response]), parameters)
    }

    @Test("a bare offer is accepted as is")
    func bare() throws {
        let result = try #require(try negotiate("permessage-deflate"))
        #expect(result.0 == "permessage-deflate")
        #expect(result.1 == PerMessageDeflate.Parameters())
    }

    @Test("client_max_window_bits without a value: the server may leave it out or set a limit")
    func clientMaxWindowBitsWithoutValue() throws {
        #expect(try negotiate("permessage-deflate; client_max_window_bits")?.0 == "permessage-deflate")
        var configuration = Config()
        configuration.clientMaxWindowBits = 10
        let limited = try #require(try negotiate("permessage-deflate; client_max_window_bits", configuration))
        #expect(limited.0 == "permessage-deflate; client_max_window_bits=10")
        #expect(limited.1.clientMaxWindowBits == 10)
    }

    @Test("client_max_window_bits with a value is answered with at most that value")
    func clientMaxWindowBitsWithValue() throws {
        let result = try #require(try negotiate("permessage-deflate; client_max_window_bits=12"))
        #expect(result.0 == "permessage-deflate; client_max_window_bits=12")
        #expect(result.1.clientMaxWindowBits == 12)
    }

    @Test("without client_max_window_bits in the offer the server cannot limit the client")
    func noClientLimitWithoutOffer() throws {
        var configuration = Config()
        configuration.clientMaxWindowBits = 9
        let result = try #require(try negotiate("permessage-deflate", configuration))
        #expect(result.0 == "permessage-deflate")
        #expect(result.1.clientMaxWindowBits == 15)
    }

    @Test("server_max_window_bits is always answered, with the smaller of offer and configuration")
    func serverMaxWindowBits() throws {
        #expect(try negotiate("permessage-deflate; server_max_window_bits=10")?.0 == "permessage-deflate; server_max_window_bits=10")
        var configuration = Config()
        configuration.serverMaxWindowBits = 9
        #expect(try negotiate("permessage-deflate; server_max_window_bits=10", configuration)?.1.serverMaxWindowBits == 9)
        #expect(try negotiate("permessage-deflate", configuration)?.0 == "permessage-deflate; server_max_window_bits=9")
        #expect(try negotiate("permessage-deflate; server_max_window_bits=8")?.1.serverMaxWindowBits == 8)
    }

    @Test("context takeover: requested by the client or wanted by the server")
    func contextTakeover() throws {
        let asked = try #require(try negotiate("permessage-deflate; server_no_context_takeover; client_no_context_takeover"))
        #expect(asked.0 == "permessage-deflate; server_no_context_takeover; client_no_context_takeover")
        #expect(asked.1.serverNoContextTakeover && asked.1.clientNoContextTakeover)
        var configuration = Config()
        configuration.clientNoContextTakeover = true
        #expect(try negotiate("permessage-deflate", configuration)?.0 == "permessage-deflate; client_no_context_takeover")
    }

    @Test("offers with unknown, repeated or invalid parameters are declined", arguments: [
        "permessage-deflate; foo",
        "permessage-deflate; server_max_window_bits",
        "permessage-deflate; server_max_window_bits=7",
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_max_window_bits=010",
        "permessage-deflate; client_max_window_bits=abc",
        "permessage-deflate; client_max_window_bits=8; client_max_window_bits=9",
        "permessage-deflate; server_no_context_takeover=1",
        "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
        "x-webkit-deflate-frame",
    ])
    func declined(header: String) throws {
        #expect(try negotiate(header) == nil)
    }

    @Test("the first acceptable of several offers wins, in one header or several")
    func severalOffers() throws {
        let one = try #require(try negotiate("permessage-deflate; foo=1, permessage-deflate; server_max_window_bits=11, permessage-deflate"))
        #expect(one.1.serverMaxWindowBits == 11)
        let lines = try offers("x-foo", "permessage-deflate; server_max_window_bits=99", "permessage-deflate; client_max_window_bits=9")
        let several = try #require(PerMessageDeflate.negotiate(offers: lines))
        #expect(several.parameters.clientMaxWindowBits == 9)
    }

    @Test("a quoted parameter value is accepted (RFC 6455 §9.1 allows quoted-string)")
    func quotedValue() throws {
        #expect(try negotiate("permessage-deflate; server_max_window_bits=\"10\"")?.1.serverMaxWindowBits == 10)
    }
}

@Suite("permessage-deflate negotiation, client side (RFC 7692 §7.1)")
struct ClientNegotiationTests {
    typealias Config = PerMessageDeflate.Configuration

    func accept(_ header: String, _ configuration: Config = Config()) throws -> PerMessageDeflate.Parameters? {
        try PerMessageDeflate.accept(response: try offers(header), offered: configuration)
    }

    @Test("the default offer advertises client_max_window_bits")
    func defaultOffer() {
        #expect(PerMessageDeflate.offer().description == "permessage-deflate; client_max_window_bits")
        var configuration = Config.lowMemory
        configuration.serverMaxWindowBits = 10
        #expect(PerMessageDeflate.offer(configuration).description
            == "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=9")
    }

    @Test("responses within the offer are accepted")
    func accepted() throws {
        #expect(try accept("permessage-deflate") == PerMessageDeflate.Parameters())
        let p = try #require(try accept("permessage-deflate; server_no_context_takeover; client_max_window_bits=10; server_max_window_bits=12"))
        #expect(p.serverNoContextTakeover && p.clientMaxWindowBits == 10 && p.serverMaxWindowBits == 12)
        #expect(try accept("x-other") == nil)
    }

    @Test("our own limits apply when the server does not restate them")
    func ownLimits() throws {
        var configuration = Config()
        configuration.clientMaxWindowBits = 11
        configuration.clientNoContextTakeover = true
        let p = try #require(try accept("permessage-deflate", configuration))
        #expect(p.clientMaxWindowBits == 11 && p.clientNoContextTakeover)
    }

    @Test("invalid responses are errors", arguments: [
        "permessage-deflate, permessage-deflate",
        "permessage-deflate; foo",
        "permessage-deflate; client_max_window_bits",
        "permessage-deflate; server_max_window_bits=20",
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
    ])
    func invalid(header: String) {
        #expect(throws: PerMessageDeflate.NegotiationError.self) { try accept(header) }
    }

    @Test("a response that exceeds or ignores what the client asked for is an error")
    func exceedsOffer() {
        var configuration = Config()
        configuration.clientMaxWindowBits = 10
        configuration.serverMaxWindowBits = 10
        configuration.serverNoContextTakeover = true
        #expect(throws: PerMessageDeflate.NegotiationError.self) {
            try accept("permessage-deflate; server_no_context_takeover; server_max_window_bits=10; client_max_window_bits=12", configuration)
        }
        #expect(throws: PerMessageDeflate.NegotiationError.self) {
            try accept("permessage-deflate; server_no_context_takeover; server_max_window_bits=11", configuration)
        }
        #expect(throws: PerMessageDeflate.NegotiationError.self) {
            try accept("permessage-deflate; server_no_context_takeover", configuration)
        }
        #expect(throws: PerMessageDeflate.NegotiationError.self) {
            try accept("permessage-deflate; server_max_window_bits=10", configuration)
        }
    }

    @Test("server and client negotiation agree with each other", arguments: [
        PerMessageDeflate.Configuration(), PerMessageDeflate.Configuration.lowMemory,
    ])
    func agree(configuration: PerMessageDeflate.Configuration) throws {
        let offer = PerMessageDeflate.offer(configuration)
        let (response, serverView) = try #require(PerMessageDeflate.negotiate(offers: [offer], configuration: configuration))
        let clientView = try PerMessageDeflate.accept(response: [response], offered: configuration)
        #expect(clientView == serverView)
    }
}
