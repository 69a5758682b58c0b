import RESP

#if TLS
import NIOSSL
#endif

/// Where and how ``RedisConnection/connect(_:eventLoopGroup:)`` connects.
public struct RedisConfiguration: Sendable {
    /// Which protocol to ask for.
    public enum ProtocolPreference: Sendable, Hashable {
        /// `HELLO 3` (Redis 6+); when the server refuses it (`NOPROTO`, or an unknown command before Redis 6),
        /// fall back to RESP2 with `AUTH`. The default.
        case resp3
        /// RESP2 only: `AUTH` (if a password is set), no `HELLO`.
        case resp2
    }

    /// What happens when ``RedisConnection/messages`` holds ``messageBufferSize`` messages and another
    /// arrives.
    public enum SlowConsumerPolicy: Sendable, Hashable {
        /// Close the connection: the sequence yields what it holds, then ends with
        /// ``RedisError/slowConsumer(bufferSize:)``. Loss is never silent; the owner reconnects and resubscribes
        /// (as after Redis itself drops a subscriber over `client-output-buffer-limit pubsub`). The default.
        case closeConnection
        /// Drop the new message and count it (``RedisConnection/droppedMessages``). Delivery is at most once.
        case dropNewest
    }

    /// Host name or IP address of the server.
    public var host: String
    /// TCP port. Default 6379.
    public var port: Int
    /// ACL user for `HELLO … AUTH` / `AUTH`; `nil` means `default` (password-only `requirepass`).
    public var username: String?
    /// Password; `nil` sends no authentication.
    public var password: String?
    /// Default ``ProtocolPreference/resp3``.
    public var protocolPreference: ProtocolPreference
    /// `CLIENT SETNAME` (through `HELLO … SETNAME` in RESP3), shown by `CLIENT LIST`. Default `nil`.
    public var clientName: String?
    /// How long to wait for TCP to connect. Default 10 seconds.
    public var connectTimeout: Duration
    /// Limits for replies (``RESPParser/Configuration``): a reply above them closes the connection with
    /// ``RedisError/protocolViolation(_:)``.
    public var parser: RESPParser.Configuration
    /// How many pub/sub messages ``RedisConnection/messages`` holds for a consumer that has not read them yet.
    /// Default 4096.
    public var messageBufferSize: Int
    /// Default ``SlowConsumerPolicy/closeConnection``.
    public var slowConsumerPolicy: SlowConsumerPolicy
    #if TLS
    /// TLS (Redis's `tls-port`) with this configuration (certificate verification, trust roots, client
    /// certificate for `tls-auth-clients`); `nil` (the default) for plain TCP. Only with the package trait `TLS`.
    public var tls: TLSConfiguration?
    /// The name the server's certificate is verified against and sent as SNI; `nil` means ``host`` unless it is
    /// an IP address (then the certificate must carry that address).
    public var tlsServerName: String?
    #endif

    public init(
        host: String = "127.0.0.1",
        port: Int = 6379,
        username: String? = nil,
        password: String? = nil,
        protocolPreference: ProtocolPreference = .resp3,
        clientName: String? = nil,
        connectTimeout: Duration = .seconds(10),
        parser: RESPParser.Configuration = .init(),
        messageBufferSize: Int = 4096,
        slowConsumerPolicy: SlowConsumerPolicy = .closeConnection
    ) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.protocolPreference = protocolPreference
        self.clientName = clientName
        self.connectTimeout = connectTimeout
        self.parser = parser
        self.messageBufferSize = max(1, messageBufferSize)
        self.slowConsumerPolicy = slowConsumerPolicy
    }
}
