extension Server {
    /// HTTP/2 settings (RFC 9113), and WebSockets over HTTP/2 streams (RFC 8441 extended CONNECT).
    ///
    /// Set ``Server/Configuration/http2`` to serve HTTP/2 besides HTTP/1.1 on the same port: over TLS the
    /// server offers `h2` and `http/1.1` by ALPN (RFC 7301) and speaks what the client picks; on a plain port it
    /// accepts HTTP/2 with prior knowledge (h2c, RFC 9113 §3.3) when ``cleartextPriorKnowledge`` is set, telling
    /// it from HTTP/1.1 by the connection preface. The server sends `SETTINGS_ENABLE_CONNECT_PROTOCOL = 1` only
    /// when it has at least one WebSocket route, so that browsers never try a WebSocket it cannot accept. Event
    /// stream routes (``EventStreamRoute``) and plain HTTP answer over HTTP/2 streams too.
    public struct HTTP2Configuration: Sendable {
        /// Accept h2c with prior knowledge on a plain (non-TLS) port: a connection that starts with the HTTP/2
        /// preface (`PRI * HTTP/2.0…`) speaks HTTP/2, any other speaks HTTP/1.1. Default false. Browsers never
        /// use h2c; it serves proxies and tests.
        public var cleartextPriorKnowledge: Bool
        /// `SETTINGS_MAX_CONCURRENT_STREAMS` (RFC 9113 §6.5.2): the streams a client may have open at once on one
        /// connection; further ones are refused by the HTTP/2 layer (RST_STREAM REFUSED_STREAM). Default 100.
        public var maxConcurrentStreams: Int
        /// The WebSockets one HTTP/2 connection may carry at once; an extended CONNECT beyond it is refused with
        /// RST_STREAM `REFUSED_STREAM` (RFC 9113 §8.7: not processed, safe to retry elsewhere). Default 100.
        public var maxWebSocketsPerConnection: Int
        /// `SETTINGS_INITIAL_WINDOW_SIZE` and the per-stream receive window the server maintains, in bytes: how
        /// much a client may send on one stream before the server has read it (per-stream backpressure).
        /// Default 65 535 (the protocol's initial value).
        public var streamWindowSize: Int
        /// `SETTINGS_MAX_HEADER_LIST_SIZE` (RFC 9113 §6.5.2), in bytes: the largest request header block. Default
        /// 16 384.
        public var maxHeaderListSize: Int
        /// How long an HTTP/2 connection may stay without any open stream (no request, no WebSocket) before the
        /// server sends GOAWAY and closes it. Also ends connections whose peer stays after a connection error.
        /// Default 60 s.
        public var idleTimeout: Duration

        /// Creates a configuration with the defaults of every field.
        public init(
            cleartextPriorKnowledge: Bool = false,
            maxConcurrentStreams: Int = 100,
            maxWebSocketsPerConnection: Int = 100
        ) {
            self.cleartextPriorKnowledge = cleartextPriorKnowledge
            self.maxConcurrentStreams = maxConcurrentStreams
            self.maxWebSocketsPerConnection = maxWebSocketsPerConnection
            self.streamWindowSize = 65_535
            self.maxHeaderListSize = 16_384
            self.idleTimeout = .seconds(60)
        }
    }
}
