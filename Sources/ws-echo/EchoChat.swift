import Backplane
import NIOConcurrencyHelpers
import WebSocketServer

/// ws-echo's `/chat` route (with `--groups`), an example of ``WebSocketGroups``: `/chat?room=R&user=U` joins
/// room `R` (a group; `lobby` by default) as user `U`; every text message a client sends goes to everyone in
/// its room, the sender included, framed once for all of them. A message `@name text` goes to every connection
/// of user `name` instead.
enum EchoChat {
    static func route(_ groups: WebSocketGroups) -> WebSocketRoute {
        let counter = NIOLockedValueBox(0)
        return WebSocketRoute(
            path: "/chat",
            handler: .async { webSocket, upgrade in
                let id = counter.withLockedValue { count in
                    count += 1
                    return "c\(count)"
                }
                let room = queryValue("room", in: upgrade.request.query) ?? "lobby"
                let user = queryValue("user", in: upgrade.request.query)
                try await groups.withMember(webSocket, connectionId: id, userId: user) { id in
                    try await groups.addToGroup(room, connectionId: id)
                    for await message in webSocket.messages where message.kind == .text {
                        let text = message.text
                        if text.hasPrefix("@"), let space = text.firstIndex(of: " ") {
                            let name = String(text[text.index(after: text.startIndex)..<space])
                            try await groups.send(
                                text: String(text[text.index(after: space)...]), to: .user(name))
                        } else {
                            try await groups.send(.text, message.payload, to: .group(room))
                        }
                    }
                }
            })
    }

    /// The raw value of the first `name=value` pair of `query` (no percent-decoding: names are plain tokens).
    private static func queryValue(_ name: String, in query: String?) -> String? {
        for pair in (query ?? "").split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1)
            if parts.count == 2, parts[0] == name, !parts[1].isEmpty { return String(parts[1]) }
        }
        return nil
    }
}
