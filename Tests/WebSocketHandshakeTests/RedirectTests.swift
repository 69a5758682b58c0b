import Testing
import WebSocketHandshake

@Suite("Redirects of the opening handshake (RFC 9110 §15.4, RFC 3986 §5.2)")
struct RedirectTests {
    @Test(
        "Location resolution against ws://h:8080/a/b?q",
        arguments: [
            ("wss://other.example/x?y", "wss://other.example/x?y"),
            ("ws://other.example:81", "ws://other.example:81/"),
            ("https://other.example/s", "wss://other.example/s"),
            ("HTTP://other.example/s", "ws://other.example/s"),
            ("//other.example/n", "ws://other.example/n"),
            ("/root?x=1", "ws://h:8080/root?x=1"),
            ("c", "ws://h:8080/a/c"),
            ("../c/./d", "ws://h:8080/c/d"),
            ("../../../../c", "ws://h:8080/c"),
            ("?z", "ws://h:8080/a/b?z"),
            ("/p#frag", "ws://h:8080/p"),
            ("./", "ws://h:8080/a/"),
        ]
    )
    func resolution(location: String, expected: String) throws {
        let base = try WebSocketURL("ws://h:8080/a/b?q")
        #expect(try base.resolving(location).description == expected)
    }

    @Test("unusable Locations", arguments: ["ftp://x/", "ws://user@x/", "ws://x:0/", "/a b"])
    func unusable(location: String) throws {
        var redirects = WebSocketRedirects(start: try WebSocketURL("ws://h/"))
        #expect(throws: WebSocketRedirectError.invalidLocation) { try redirects.follow(location: location) }
    }

    @Test("the five redirect statuses, and no others")
    func statuses() {
        for status in 300...399 {
            #expect(WebSocketRedirects.isRedirect(status) == [301, 302, 303, 307, 308].contains(status))
        }
    }

    @Test("wss never redirects to ws; ws may go to wss")
    func downgrade() throws {
        var secure = WebSocketRedirects(start: try WebSocketURL("wss://h/"))
        #expect(throws: WebSocketRedirectError.insecureRedirect) { try secure.follow(location: "ws://h/") }
        #expect(throws: WebSocketRedirectError.insecureRedirect) { try secure.follow(location: "http://h/") }
        var plain = WebSocketRedirects(start: try WebSocketURL("ws://h/"))
        #expect(try plain.follow(location: "wss://h/").isSecure)
    }

    @Test("a loop is found at its first repetition; the count is bounded")
    func loopAndCount() throws {
        var loop = WebSocketRedirects(start: try WebSocketURL("ws://h/a"))
        _ = try loop.follow(location: "/b")
        #expect(throws: WebSocketRedirectError.loop) { try loop.follow(location: "/a") }
        var selfLoop = WebSocketRedirects(start: try WebSocketURL("ws://H:80/a"))
        #expect(throws: WebSocketRedirectError.loop) { try selfLoop.follow(location: "ws://h/a") }

        var chain = WebSocketRedirects(start: try WebSocketURL("ws://h/0"), maxRedirects: 3)
        for hop in 1...3 {
            #expect(try chain.follow(location: "/\(hop)").path == "/\(hop)")
        }
        #expect(throws: WebSocketRedirectError.tooManyRedirects) { try chain.follow(location: "/4") }
        var none = WebSocketRedirects(start: try WebSocketURL("ws://h/0"), maxRedirects: 0)
        #expect(throws: WebSocketRedirectError.tooManyRedirects) { try none.follow(location: "/1") }
        var missing = WebSocketRedirects(start: try WebSocketURL("ws://h/0"))
        #expect(throws: WebSocketRedirectError.missingLocation) { try missing.follow(location: nil) }
    }

    @Test("origins: scheme, host case-insensitively, port")
    func origins() throws {
        #expect(try WebSocketURL("ws://Example.com/a").origin == WebSocketURL("ws://example.com:80/b").origin)
        #expect(try WebSocketURL("ws://example.com/").origin != WebSocketURL("wss://example.com/").origin)
        #expect(try WebSocketURL("ws://example.com/").origin != WebSocketURL("ws://example.com:81/").origin)
        #expect(try WebSocketURL("ws://a.example/").origin != WebSocketURL("ws://b.example/").origin)
    }
}
