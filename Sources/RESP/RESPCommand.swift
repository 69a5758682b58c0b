/// A command for a Redis server: an array of bulk strings, the only form clients send (Redis protocol
/// specification, "Sending commands to a Redis server"), e.g. `*2\r\n$4\r\nPING\r\n$2\r\nhi\r\n`.
public struct RESPCommand: Sendable, Hashable {
    /// The command name and its arguments, each sent as one binary-safe bulk string.
    public var arguments: [[UInt8]]

    /// - Parameter arguments: the name first (e.g. `PUBLISH`), then the arguments. Must not be empty.
    public init(_ arguments: [[UInt8]]) {
        precondition(!arguments.isEmpty, "a command has a name")
        self.arguments = arguments
    }

    /// A command of text arguments, each sent as its UTF-8 bytes.
    public init(_ name: String, _ arguments: String...) {
        self.init([Array(name.utf8)] + arguments.map { Array($0.utf8) })
    }

    /// A command of text arguments, each sent as its UTF-8 bytes.
    public init(_ name: String, arguments: [String]) {
        self.init([Array(name.utf8)] + arguments.map { Array($0.utf8) })
    }

    /// The name, as sent.
    public var name: String { String(decoding: arguments[0], as: UTF8.self) }

    /// Appends the wire form to `buffer`.
    public func encode(into buffer: inout [UInt8]) {
        RESPValue.appendHeader(UInt8(ascii: "*"), arguments.count, to: &buffer)
        for argument in arguments {
            RESPValue.appendHeader(UInt8(ascii: "$"), argument.count, to: &buffer)
            buffer.append(contentsOf: argument)
            buffer.append(contentsOf: [0x0D, 0x0A])
        }
    }

    /// The wire form.
    public var bytes: [UInt8] {
        var buffer: [UInt8] = []
        encode(into: &buffer)
        return buffer
    }

    /// How many bytes ``encode(into:)`` appends.
    public var encodedLength: Int {
        arguments.reduce(RESPValue.headerLength(arguments.count)) {
            $0 + RESPValue.headerLength($1.count) + $1.count + 2
        }
    }
}

// MARK: - The commands a pub/sub backplane and an event history need

extension RESPCommand {
    /// `PING [message]`: the reply is `PONG`, or `message` as a bulk string.
    public static func ping(_ message: String? = nil) -> RESPCommand {
        message.map { RESPCommand("PING", $0) } ?? RESPCommand("PING")
    }

    /// `HELLO protover [AUTH username password] [SETNAME name]` (Redis 6+): switches the protocol (2 or 3) and
    /// authenticates in one round trip. The reply is a map (RESP3) or a flat array (RESP2) describing the server.
    public static func hello(
        protocolVersion: Int,
        username: String? = nil,
        password: String? = nil,
        clientName: String? = nil
    ) -> RESPCommand {
        var arguments = [String(protocolVersion)]
        if let password { arguments += ["AUTH", username ?? "default", password] }
        if let clientName { arguments += ["SETNAME", clientName] }
        return RESPCommand("HELLO", arguments: arguments)
    }

    /// `AUTH [username] password`: the reply is `OK` or an error (`WRONGPASS`).
    public static func auth(username: String? = nil, password: String) -> RESPCommand {
        username.map { RESPCommand("AUTH", $0, password) } ?? RESPCommand("AUTH", password)
    }

    /// `PUBLISH channel message`: the reply is the number of clients that received the message.
    public static func publish(channel: String, message: [UInt8]) -> RESPCommand {
        RESPCommand([Array("PUBLISH".utf8), Array(channel.utf8), message])
    }

    /// `SUBSCRIBE channel…`: one confirmation per channel.
    public static func subscribe(_ channels: [String]) -> RESPCommand {
        RESPCommand("SUBSCRIBE", arguments: channels)
    }

    /// `UNSUBSCRIBE channel…`: one confirmation per channel.
    public static func unsubscribe(_ channels: [String]) -> RESPCommand {
        RESPCommand("UNSUBSCRIBE", arguments: channels)
    }

    /// `PSUBSCRIBE pattern…`: one confirmation per pattern (glob-style: `*`, `?`, `[…]`).
    public static func psubscribe(_ patterns: [String]) -> RESPCommand {
        RESPCommand("PSUBSCRIBE", arguments: patterns)
    }

    /// `PUNSUBSCRIBE pattern…`: one confirmation per pattern.
    public static func punsubscribe(_ patterns: [String]) -> RESPCommand {
        RESPCommand("PUNSUBSCRIBE", arguments: patterns)
    }

    /// `XADD key [MAXLEN ~ maxLength] id field value [field value …]`: appends an entry to a stream, trimming
    /// it to about `maxLength` entries (`~`: Redis trims whole macro nodes, so the stream may hold a few more;
    /// exact trimming, `approximate: false`, costs more). `id` `*` lets the server choose the ID, which is the
    /// reply (a bulk string `milliseconds-sequence`).
    public static func xadd(
        key: String,
        maxLength: Int? = nil,
        approximate: Bool = true,
        id: String = "*",
        fields: [(field: String, value: [UInt8])]
    ) -> RESPCommand {
        precondition(!fields.isEmpty, "XADD needs at least one field")
        var arguments: [[UInt8]] = [Array("XADD".utf8), Array(key.utf8)]
        if let maxLength {
            arguments.append(Array("MAXLEN".utf8))
            if approximate { arguments.append([UInt8(ascii: "~")]) }
            arguments.append(Array(String(maxLength).utf8))
        }
        arguments.append(Array(id.utf8))
        for (field, value) in fields {
            arguments.append(Array(field.utf8))
            arguments.append(value)
        }
        return RESPCommand(arguments)
    }

    /// `XRANGE key start end [COUNT count]`: entries with IDs from `start` to `end` inclusive (`-` and `+` are
    /// the extremes; `(id` excludes `id`, Redis 6.2+). The reply is an array of `[id, [field, value, …]]`.
    public static func xrange(key: String, start: String = "-", end: String = "+", count: Int? = nil) -> RESPCommand {
        var arguments = [key, start, end]
        if let count { arguments += ["COUNT", String(count)] }
        return RESPCommand("XRANGE", arguments: arguments)
    }
}
