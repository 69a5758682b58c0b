import RESP

/// Why a Redis command, connection or subscription failed.
public enum RedisError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The server closed the connection, or it was lost; `midReply` when it ended inside a reply. Every command
    /// waiting for a reply fails with it, and ``RedisConnection/messages`` ends with it. Connect again.
    case connectionClosed(midReply: Bool)
    /// The connection was closed by ``RedisConnection/close()`` before the reply came.
    case closedLocally
    /// The server sent bytes that are not RESP, or a reply over the parser's limits
    /// (``RedisConfiguration/parser``). The connection was closed.
    case protocolViolation(RESPParseError)
    /// The server sent a reply that no command was waiting for, or a reply of the wrong shape for the command.
    case unexpectedReply(String)
    /// The server answered with an error reply (the message starts with its code, e.g. `ERR`, `WRONGTYPE`).
    case server(String)
    /// `HELLO … AUTH` or `AUTH` was refused (`WRONGPASS`, `NOAUTH`, `NOPERM`): the server's message.
    case authenticationFailed(String)
    /// The subscriber did not read ``RedisConnection/messages`` fast enough: `bufferSize` messages were
    /// waiting and ``RedisConfiguration/SlowConsumerPolicy/closeConnection`` closed the connection.
    case slowConsumer(bufferSize: Int)
    /// A socket error (its description).
    case io(String)
    /// A command this client cannot match replies for (its name): (P)UNSUBSCRIBE without arguments, the sharded
    /// `SSUBSCRIBE`/`SUNSUBSCRIBE`, and `HELLO`/`RESET` (they switch the protocol). Nothing was sent.
    case unsupportedCommand(String)

    public var description: String {
        switch self {
        case .connectionClosed(let midReply):
            midReply ? "the Redis connection closed in the middle of a reply" : "the Redis connection closed"
        case .closedLocally: "the Redis connection was closed by this client"
        case .protocolViolation(let error): "Redis protocol violation: \(error)"
        case .unexpectedReply(let text): "unexpected Redis reply: \(text)"
        case .server(let message): "Redis error: \(message)"
        case .authenticationFailed(let message): "Redis authentication failed: \(message)"
        case .slowConsumer(let size): "pub/sub consumer too slow: \(size) messages waiting; connection closed"
        case .io(let text): "Redis connection error: \(text)"
        case .unsupportedCommand(let name): "\(name) is not supported by this client in this form"
        }
    }
}
