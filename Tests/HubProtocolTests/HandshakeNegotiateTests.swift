import HubProtocol
import Testing

@Suite struct HandshakeTests {
    func parse(_ text: String) throws(HubProtocolError) -> (HandshakeRequest, Int)? {
        guard let (request, offset) = try HandshakeRequest.parse(Array(text.utf8)) else { return nil }
        return (request, offset)
    }

    @Test(arguments: [
        ("json", 0), ("json", 1), ("json", 2), ("messagepack", 0), ("messagepack", 1), ("messagepack", 2),
    ])
    func acceptsTheVersionsShippedClientsSend(name: String, version: Int) throws {
        let bytes = HandshakeRequest(protocolName: name, version: version).encoded()
        #expect(bytes == Array(#"{"protocol":"\#(name)","version":\#(version)}"#.utf8) + [0x1E])
        let (request, offset) = try #require(try HandshakeRequest.parse(bytes))
        #expect(request == HandshakeRequest(protocolName: name, version: version))
        #expect(offset == bytes.count)
        try request.validate()
    }

    @Test func bytesAfterTheSeparatorAreReturned() throws {
        let ping = try MessagePackHubProtocol().encode(.ping)
        let bytes = HandshakeRequest(protocolName: "messagepack", version: 1).encoded() + ping
        let (_, offset) = try #require(try HandshakeRequest.parse(bytes))
        #expect(try MessagePackHubProtocol().decode(frame: bytes[offset...]) == [.ping])
        let text = #"{"protocol":"json","version":1}"# + "\u{1E}" + #"{"type":6}"# + "\u{1E}"
        let (_, textOffset) = try #require(try parse(text))
        #expect(try JSONHubProtocol().decode(frame: Array(text.utf8)[textOffset...]) == [.ping])
    }

    @Test func incompleteHandshakeWaitsWithinTheLimit() throws {
        #expect(try parse(#"{"protocol":"json","#) == nil)
        #expect(throws: HubProtocolError.self) {
            try HandshakeRequest.parse(Array(repeating: 0x20, count: 100), limits: .init(maximumMessageSize: 64))
        }
    }

    @Test func unknownProtocolOrVersionIsRefusedWithTheServersWording() {
        do {
            try HandshakeRequest(protocolName: "xml", version: 1).validate()
            Issue.record("accepted")
        } catch {
            #expect(error.code == .unsupportedProtocol)
            #expect(error.detail == "The protocol 'xml' is not supported.")
        }
        for version in [3, -1, 100] {
            do {
                try HandshakeRequest(protocolName: "json", version: version).validate()
                Issue.record("accepted \(version)")
            } catch {
                #expect(error.code == .unsupportedVersion)
                #expect(error.detail == "The server does not support version \(version) of the 'json' protocol.")
            }
        }
        // A server offering JSON only.
        #expect(throws: HubProtocolError.self) {
            try HandshakeRequest(protocolName: "messagepack", version: 1).validate(protocols: ["json"])
        }
    }

    @Test(arguments: [
        (#"[1]"#, HubProtocolError.Code.invalidMessage), (#"{"version":1}"#, .missingField),
        (#"{"protocol":"json"}"#, .missingField), (#"{"protocol":1,"version":1}"#, .wrongFieldType),
        (#"{"protocol":"json","version":"1"}"#, .wrongFieldType),
        (#"{"protocol":"json","version":1.5}"#, .wrongFieldType),
        (#"{"protocol":"json""#, .malformedJSON),
    ])
    func malformedHandshake(text: String, code: HubProtocolError.Code) {
        do {
            _ = try parse(text + "\u{1E}")
            Issue.record("accepted \(text)")
        } catch {
            #expect(error.code == code)
        }
    }

    @Test func unknownFieldsAreIgnored() throws {
        let (request, _) = try #require(try parse(#"{"protocol":"json","version":1,"extra":[1]}"# + "\u{1E}"))
        #expect(request.protocolName == "json")
    }

    @Test func responses() throws {
        #expect(HandshakeResponse.success.encoded() == [0x7B, 0x7D, 0x1E])
        let error = HandshakeResponse.error("The protocol 'xml' is not supported.").encoded()
        #expect(error == Array(#"{"error":"The protocol 'xml' is not supported."}"#.utf8) + [0x1E])
        #expect(try HandshakeResponse.parse(error)?.response == .error("The protocol 'xml' is not supported."))
        let withPing = HandshakeResponse.success.encoded() + Array(#"{"type":6}"#.utf8) + [0x1E]
        let (response, offset) = try #require(try HandshakeResponse.parse(withPing))
        #expect(response == .success)
        #expect(offset == 3)
        #expect(try HandshakeResponse.parse(Array("{\"error\":null,\"x\":1}\u{1E}".utf8))?.response == .success)
        #expect(try HandshakeResponse.parse(Array("{}".utf8)) == nil)
        #expect(throws: HubProtocolError.self) { try HandshakeResponse.parse(Array("{\"error\":1}\u{1E}".utf8)) }
    }
}

@Suite struct NegotiateTests {
    @Test func versionRules() throws {
        #expect(try NegotiateRequest.resolve(negotiateVersion: nil).get().version == 0)
        #expect(try NegotiateRequest.resolve(negotiateVersion: "0").get().version == 0)
        #expect(try NegotiateRequest.resolve(negotiateVersion: "1").get().version == 1)
        #expect(try NegotiateRequest.resolve(negotiateVersion: "2").get().version == 1, "clamped")
        #expect(try NegotiateRequest.resolve(negotiateVersion: "2147483647").get().version == 1)
        #expect(try NegotiateRequest.resolve(negotiateVersion: " +1 ").get().version == 1, "int.TryParse accepts")
        #expect(try NegotiateRequest.resolve(negotiateVersion: "01").get().version == 1)
        let nonInteger = NegotiateError(message: "The client requested a non-integer protocol version.")
        for text in ["abc", "", "1.0", "1e1", "2147483648", "-2147483649", "0x1", "1 2", "+", "١"] {
            #expect(NegotiateRequest.resolve(negotiateVersion: text) == .failure(nonInteger), "\(text)")
        }
        #expect(
            NegotiateRequest.resolve(negotiateVersion: "-1")
                == .failure(
                    NegotiateError(
                        message: "The client requested version '-1', but the server does not support this version.")))
        #expect(
            NegotiateRequest.resolve(negotiateVersion: nil, minimumVersion: 1)
                == .failure(
                    NegotiateError(
                        message: "The client requested version '0', but the server does not support this version.")))
        #expect(try NegotiateRequest.resolve(negotiateVersion: "1", minimumVersion: 1).get().version == 1)
    }

    @Test func statefulReconnectQuery() throws {
        #expect(
            try NegotiateRequest.resolve(negotiateVersion: "1", useStatefulReconnect: "true").get().useStatefulReconnect
        )
        #expect(
            try NegotiateRequest.resolve(negotiateVersion: "1", useStatefulReconnect: "True").get().useStatefulReconnect
        )
        #expect(
            try !NegotiateRequest.resolve(negotiateVersion: "1", useStatefulReconnect: "1").get().useStatefulReconnect)
        #expect(try !NegotiateRequest.resolve(negotiateVersion: "1").get().useStatefulReconnect)
    }

    static let transports: [AvailableTransport] = [.webSockets, .serverSentEvents, .longPolling]

    @Test func version1Response() throws {
        let response = NegotiateResponse.connection(
            .init(
                negotiateVersion: 1, connectionId: "pub", connectionToken: "secret",
                availableTransports: Self.transports))
        let text = String(decoding: response.encoded(), as: UTF8.self)
        #expect(
            text == #"{"negotiateVersion":1,"connectionId":"pub","connectionToken":"secret","availableTransports":["#
                + #"{"transport":"WebSockets","transferFormats":["Text","Binary"]},"#
                + #"{"transport":"ServerSentEvents","transferFormats":["Text"]},"#
                + #"{"transport":"LongPolling","transferFormats":["Text","Binary"]}]}"#)
        #expect(try NegotiateResponse.parse(response.encoded()) == response)
    }

    @Test func version0ResponseHasNoTokenAndTheIdIsTheTransportId() throws {
        let response = NegotiateResponse.connection(
            .init(
                negotiateVersion: 0, connectionId: "pub", connectionToken: "ignored", availableTransports: [.webSockets]
            ))
        let text = String(decoding: response.encoded(), as: UTF8.self)
        #expect(
            text == #"{"negotiateVersion":0,"connectionId":"pub","availableTransports":[{"transport":"WebSockets","#
                + #""transferFormats":["Text","Binary"]}]}"#)
        guard case .connection(let parsed) = try NegotiateResponse.parse(response.encoded()) else {
            Issue.record("not a connection")
            return
        }
        #expect(parsed.connectionToken == nil)
        #expect(parsed.transportId == "pub")
    }

    @Test func version1WithoutTokenRoundTrips() throws {
        // Found by HubProtocolFuzzer: a parsed version-1 body without a token re-encoded one (the id).
        let body = #"{"negotiateVersion":1,"connectionId":"a","availableTransports":[]}"#
        let parsed = try NegotiateResponse.parse(Array(body.utf8))
        #expect(String(decoding: parsed.encoded(), as: UTF8.self) == body)
    }

    @Test func transferFormatsAreAlwaysTextThenBinary() {
        let formats: TransferFormats = [.binary, .text]
        #expect(formats.names == ["Text", "Binary"])
    }

    @Test func statefulReconnectAndOtherForms() throws {
        let response = NegotiateResponse.connection(
            .init(
                negotiateVersion: 1, connectionId: "a", connectionToken: "b", availableTransports: [.webSockets],
                useStatefulReconnect: true))
        #expect(String(decoding: response.encoded(), as: UTF8.self).hasSuffix(#","useStatefulReconnect":true}"#))
        #expect(try NegotiateResponse.parse(response.encoded()) == response)
        let error = NegotiateResponse.error("The client requested a non-integer protocol version.")
        #expect(
            String(decoding: error.encoded(), as: UTF8.self)
                == #"{"error":"The client requested a non-integer protocol version."}"#)
        #expect(try NegotiateResponse.parse(error.encoded()) == error)
        let redirect = NegotiateResponse.redirect(url: "https://x/client/?hub=chat", accessToken: "t")
        #expect(try NegotiateResponse.parse(redirect.encoded()) == redirect)
        // Unknown fields and unknown transports are ignored.
        let body =
            #"{"connectionId":"a","negotiateVersion":0,"x":1,"#
            + #""availableTransports":[{"transport":"Carrier","transferFormats":[]}]}"#
        #expect(
            try NegotiateResponse.parse(Array(body.utf8))
                == .connection(
                    .init(negotiateVersion: 0, connectionId: "a", connectionToken: nil, availableTransports: [])))
        #expect(throws: HubProtocolError.self) { try NegotiateResponse.parse(Array(#"{"negotiateVersion":1}"#.utf8)) }
    }
}
