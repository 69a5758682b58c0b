import Testing

@testable import HubClient

@Suite struct HubURLTests {
    @Test func negotiateAndWebSocketURLs() throws {
        let url = try #require(HubURL("http://example.com:5000/chat?tenant=a"))
        #expect(url.secure == false)
        #expect(url.hostHeader == "example.com:5000")
        #expect(url.negotiateTarget == "/chat/negotiate?tenant=a&negotiateVersion=1")
        #expect(url.webSocketURL(id: "a+b/c=") == "ws://example.com:5000/chat?tenant=a&id=a%2Bb%2Fc%3D")
        #expect(url.webSocketURL(id: nil) == "ws://example.com:5000/chat?tenant=a")
    }

    @Test func defaultsAndSchemes() throws {
        let secure = try #require(HubURL("https://example.com/hub/"))
        #expect(secure.port == 443)
        #expect(secure.hostHeader == "example.com")
        #expect(secure.negotiateTarget == "/hub/negotiate?negotiateVersion=1")
        #expect(secure.webSocketURL(id: "x") == "wss://example.com:443/hub/?id=x")
        let ws = try #require(HubURL("ws://127.0.0.1:1234"))
        #expect(ws.path == "/")
        let ipv6 = try #require(HubURL("http://[::1]:8080/hub#fragment"))
        #expect(ipv6.host == "::1")
        #expect(ipv6.hostHeader == "[::1]:8080")
        #expect(ipv6.path == "/hub")
    }

    @Test(arguments: [
        "ftp://example.com/hub", "example.com/hub", "http://:80/hub", "http://host:99999/", "http://[::1/",
    ])
    func rejected(_ text: String) {
        #expect(HubURL(text) == nil)
    }
}
