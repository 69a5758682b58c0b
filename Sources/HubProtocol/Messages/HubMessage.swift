/// One hub protocol message (HubProtocol.md, "Overview": message types 1-9).
///
/// Headers are string pairs that every message except Ping and Close may carry; receivers keep them and need not
/// understand them (HubProtocol.md, "Message Headers"). Encoders write headers sorted by key, so equal messages
/// encode to equal bytes.
public enum HubMessage: Sendable, Equatable {
    /// Type 1: call `target` with `arguments`; no `invocationId` means the caller expects no answer.
    case invocation(Invocation)
    /// Type 2: one item of a streamed result (server → client) or of an upload stream (client → server, the
    /// invocation id being the stream id).
    case streamItem(StreamItem)
    /// Type 3: the end of an invocation or a stream: a result, an error, or nothing (void).
    case completion(Completion)
    /// Type 4: call a streaming method; the callee answers StreamItems then a Completion.
    case streamInvocation(StreamInvocation)
    /// Type 5: the caller cancels an invocation or stream.
    case cancelInvocation(CancelInvocation)
    /// Type 6: keep-alive. No fields (HubProtocol.md, "Ping (aka Keep Alive)").
    case ping
    /// Type 7: the sender closes the connection, with an optional error and a reconnect hint.
    case close(Close)
    /// Type 8: the highest trackable sequence id the sender has processed (stateful reconnect only).
    case ack(sequenceId: Int64)
    /// Type 9: the sequence id of the next trackable message the sender will send (first message after a
    /// stateful reconnect).
    case sequence(sequenceId: Int64)

    /// The wire number of the message type (1...9).
    public var type: HubMessageType {
        switch self {
        case .invocation: .invocation
        case .streamItem: .streamItem
        case .completion: .completion
        case .streamInvocation: .streamInvocation
        case .cancelInvocation: .cancelInvocation
        case .ping: .ping
        case .close: .close
        case .ack: .ack
        case .sequence: .sequence
        }
    }

    /// Whether stateful reconnect numbers, buffers and replays the message (types 1-5; HubProtocol.md, "Stateful
    /// Reconnect", "Trackable messages").
    public var isTrackable: Bool { type.rawValue <= 5 }

    /// Type 1 (HubProtocol.md, "Invocation Message Encoding").
    public struct Invocation: Sendable, Equatable {
        /// String pairs the receiver keeps but need not understand (e.g. trace context).
        public var headers: [String: String]
        /// Nil for a non-blocking invocation (the callee must not answer).
        public var invocationId: String?
        /// The method name, case-sensitive; no overloading (HubProtocol.md, "Invocations").
        public var target: String
        /// The method's arguments, in order.
        public var arguments: [HubValue]
        /// Ids of the upload streams that feed this invocation's stream parameters.
        public var streamIds: [String]

        public init(
            headers: [String: String] = [:], invocationId: String?, target: String, arguments: [HubValue],
            streamIds: [String] = []
        ) {
            self.headers = headers
            self.invocationId = invocationId
            self.target = target
            self.arguments = arguments
            self.streamIds = streamIds
        }
    }

    /// Type 4 (HubProtocol.md, "StreamInvocation Message Encoding").
    public struct StreamInvocation: Sendable, Equatable {
        /// String pairs the receiver keeps but need not understand (e.g. trace context).
        public var headers: [String: String]
        /// The caller-chosen id that every answer repeats (for an upload's StreamItem or Completion: the stream id).
        public var invocationId: String
        /// The method name, case-sensitive; no overloading (HubProtocol.md, "Invocations").
        public var target: String
        /// The method's arguments, in order.
        public var arguments: [HubValue]
        /// Ids of the upload streams that feed this invocation's stream parameters.
        public var streamIds: [String]

        public init(
            headers: [String: String] = [:], invocationId: String, target: String, arguments: [HubValue],
            streamIds: [String] = []
        ) {
            self.headers = headers
            self.invocationId = invocationId
            self.target = target
            self.arguments = arguments
            self.streamIds = streamIds
        }
    }

    /// Type 2 (HubProtocol.md, "StreamItem Message Encoding").
    public struct StreamItem: Sendable, Equatable {
        /// String pairs the receiver keeps but need not understand (e.g. trace context).
        public var headers: [String: String]
        /// The caller-chosen id that every answer repeats (for an upload's StreamItem or Completion: the stream id).
        public var invocationId: String
        /// The streamed value.
        public var item: HubValue

        public init(headers: [String: String] = [:], invocationId: String, item: HubValue) {
            self.headers = headers
            self.invocationId = invocationId
            self.item = item
        }
    }

    /// Type 3 (HubProtocol.md, "Completion Message Encoding"; "Completion and results").
    public struct Completion: Sendable, Equatable {
        /// The three outcomes (MessagePack ResultKind 2, 3 and 1).
        public enum Result: Sendable, Equatable {
            case void
            case value(HubValue)
            case error(String)
        }

        /// String pairs the receiver keeps but need not understand (e.g. trace context).
        public var headers: [String: String]
        /// The caller-chosen id that every answer repeats (for an upload's StreamItem or Completion: the stream id).
        public var invocationId: String
        /// The outcome.
        public var result: Result

        public init(headers: [String: String] = [:], invocationId: String, result: Result) {
            self.headers = headers
            self.invocationId = invocationId
            self.result = result
        }
    }

    /// Type 5 (HubProtocol.md, "CancelInvocation Message Encoding").
    public struct CancelInvocation: Sendable, Equatable {
        /// String pairs the receiver keeps but need not understand (e.g. trace context).
        public var headers: [String: String]
        /// The caller-chosen id that every answer repeats (for an upload's StreamItem or Completion: the stream id).
        public var invocationId: String

        public init(headers: [String: String] = [:], invocationId: String) {
            self.headers = headers
            self.invocationId = invocationId
        }
    }

    /// Type 7 (HubProtocol.md, "Close Message Encoding").
    public struct Close: Sendable, Equatable {
        /// Why the connection closes; nil for a normal close.
        public var error: String?
        /// Whether a client with automatic reconnect should reconnect. Written only when true (JSON) and always
        /// as the third element (MessagePack).
        public var allowReconnect: Bool

        public init(error: String? = nil, allowReconnect: Bool = false) {
            self.error = error
            self.allowReconnect = allowReconnect
        }
    }
}

/// The message type numbers of HubProtocol.md.
public enum HubMessageType: Int, Sendable, CaseIterable {
    case invocation = 1
    case streamItem = 2
    case completion = 3
    case streamInvocation = 4
    case cancelInvocation = 5
    case ping = 6
    case close = 7
    case ack = 8
    case sequence = 9
}
