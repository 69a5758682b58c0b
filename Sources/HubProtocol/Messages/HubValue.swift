/// An argument, stream item or result, independent of the hub protocol that carries it.
///
/// Decoders produce ``json(_:)`` or ``messagePack(_:)``; a sender uses ``encodable(_:)`` (any `Encodable`) or
/// either tree. Each codec converts what it is given into its own encoding at encode time, so one
/// ``HubMessage`` is built once and encoded once per protocol (a broadcast to JSON and MessagePack clients costs
/// two serializations, whatever the number of connections).
public enum HubValue: Sendable {
    case json(JSONValue)
    case messagePack(MessagePackValue)
    case encodable(any Encodable & Sendable)

    /// A typed value, encoded lazily by each protocol.
    public init(_ value: some Encodable & Sendable) {
        if let json = value as? JSONValue {
            self = .json(json)
        } else if let messagePack = value as? MessagePackValue {
            self = .messagePack(messagePack)
        } else {
            self = .encodable(value)
        }
    }

    /// The value as JSON.
    /// - Throws: ``HubProtocolError`` `.unrepresentableValue` when a MessagePack value has no JSON form
    ///   (extension, non-string key, non-finite number), or when `encode(to:)` fails (the detail names the
    ///   `EncodingError`).
    public func jsonValue() throws(HubProtocolError) -> JSONValue {
        switch self {
        case .json(let value): return value
        case .messagePack(let value): return try JSONValue(value)
        case .encodable(let value):
            do { return try JSONValue(encoding: value) } catch {
                throw HubProtocolError(.unrepresentableValue, "encoding failed: \(error)")
            }
        }
    }

    /// The value as MessagePack.
    /// - Throws: ``HubProtocolError`` `.unrepresentableValue` when `encode(to:)` fails.
    public func messagePackValue() throws(HubProtocolError) -> MessagePackValue {
        switch self {
        case .json(let value): return MessagePackValue(value)
        case .messagePack(let value): return value
        case .encodable(let value):
            do { return try MessagePackValue(encoding: value) } catch {
                throw HubProtocolError(.unrepresentableValue, "encoding failed: \(error)")
            }
        }
    }

    /// Decodes a typed value (a hub method's parameter, a client result) from whichever tree this holds.
    /// - Throws: `DecodingError` (type mismatch, missing key, number out of range).
    public func decode<T: Decodable>(_ type: T.Type = T.self) throws -> T {
        switch self {
        case .json(let value): return try value.decode(type)
        case .messagePack(let value): return try value.decode(type)
        case .encodable(let value): return try MessagePackValue(encoding: value).decode(type)
        }
    }
}

extension HubValue: Equatable {
    /// Two values are equal when their MessagePack forms are (so `.json(1) == .messagePack(1)`); values that fail
    /// to encode are unequal.
    public static func == (lhs: HubValue, rhs: HubValue) -> Bool {
        switch (lhs, rhs) {
        case (.json(let a), .json(let b)): return a == b
        case (.messagePack(let a), .messagePack(let b)): return a == b
        default:
            guard let a = try? lhs.messagePackValue(), let b = try? rhs.messagePackValue() else { return false }
            return a == b
        }
    }
}
