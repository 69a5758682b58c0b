import Backplane
import HubProtocol
import NIOConcurrencyHelpers
import Testing
import WebSocketNIOTestSupport
import WebSocketServer

@testable import Hubs

/// The hub of the several-server tests: every kind of target, callable by the clients.
struct ClusterHub: Hub {
    let context: HubContext
    init(context: HubContext) { self.context = context }

    static func registerMethods(_ methods: inout HubMethods<ClusterHub>) {
        methods.on("ConnectionId") { (hub: ClusterHub) -> String in hub.context.connectionId }
        methods.on("Join") { (hub: ClusterHub, group: String) in
            try await hub.context.groups.add(hub.context.connectionId, to: group)
        }
        methods.on("AddToGroup") { (hub: ClusterHub, id: String, group: String) in
            try await hub.context.groups.add(id, to: group)
        }
        methods.on("RemoveFromGroup") { (hub: ClusterHub, id: String, group: String) in
            try await hub.context.groups.remove(id, from: group)
        }
        methods.on("ToAll") { (hub: ClusterHub, text: String) in
            try await hub.context.clients.all.send("Msg", text)
        }
        methods.on("ToOthers") { (hub: ClusterHub, text: String) in
            try await hub.context.clients.others.send("Msg", text)
        }
        methods.on("ToAllExcept") { (hub: ClusterHub, ids: [String], text: String) in
            try await hub.context.clients.allExcept(ids).send("Msg", text)
        }
        methods.on("ToGroup") { (hub: ClusterHub, group: String, text: String) in
            try await hub.context.clients.group(group).send("Msg", text)
        }
        methods.on("ToGroupExcept") { (hub: ClusterHub, group: String, ids: [String], text: String) in
            try await hub.context.clients.groupExcept(group, ids).send("Msg", text)
        }
        methods.on("ToOthersInGroup") { (hub: ClusterHub, group: String, text: String) in
            try await hub.context.clients.othersInGroup(group).send("Msg", text)
        }
        methods.on("ToUser") { (hub: ClusterHub, user: String, text: String) in
            try await hub.context.clients.user(user).send("Msg", text)
        }
        methods.on("ToClient") { (hub: ClusterHub, id: String, text: String) in
            try await hub.context.clients.client(id).send("Msg", text)
        }
        methods.on("Ask") { (hub: ClusterHub, id: String) -> Int in
            try await hub.context.clients.client(id).invoke("Question", "?", returning: Int.self, timeout: .seconds(2))
        }
    }

    func onConnected() async throws {
        // HubTestClient.connect expects a greeting first.
        try await context.clients.caller.send("Welcome", 0)
    }
}

/// Several servers in one process, each with a ClusterHub endpoint at `/hub` on a shared backplane.
func withHubCluster(
    servers count: Int = 3,
    configuration: HubConfiguration = .init(),
    authenticator: HubAuthenticator = .anonymous,
    backplanes: [any Backplane]? = nil,
    _ body: @escaping @Sendable ([HubEndpoint<ClusterHub>], [Int]) async throws -> Void
) async throws {
    let bus = InProcessBackplane.Bus()
    let ids = (0..<count).map { "server-\($0)" }
    let planes = backplanes ?? ids.map { InProcessBackplane(serverId: $0, bus: bus) as any Backplane }
    let endpoints = planes.map { backplane in
        HubEndpoint(
            path: "/hub", hub: ClusterHub.self, configuration: configuration, authenticator: authenticator,
            backplane: backplane)
    }
    var serverConfiguration = Server.Configuration(port: 0)
    serverConfiguration.shutdownGracePeriod = .seconds(1)
    let servers = endpoints.map {
        Server(configuration: serverConfiguration, routes: [$0.webSocketRoute], httpRoutes: [$0.negotiateRoute])
    }
    try await withTimeout(.seconds(30)) {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for endpoint in endpoints { group.addTask { try await endpoint.run() } }
            defer { group.cancelAll() }
            while !endpoints.allSatisfy({ $0.manager.link?.isRunning == true }) {
                try await Task.sleep(for: .milliseconds(5))
            }
            try await runServers(servers[...], ports: []) { ports in try await body(endpoints, ports) }
        }
    }
}

private func runServers(
    _ servers: ArraySlice<Server>, ports: [Int], _ body: @escaping @Sendable ([Int]) async throws -> Void
) async throws {
    guard let first = servers.first else { return try await body(ports) }
    try await first.withRunning { server in
        try await runServers(servers.dropFirst(), ports: ports + [server.port], body)
    }
}

/// A backplane whose broker never answers a publish (a stalled connection): publishes wait until cancelled.
final class StalledBackplane: Backplane {
    let serverId = "stalled"
    func register(scope: String, receiver: any BackplaneReceiver) async throws {}
    func unregister(scope: String) async {}
    func connectionAdded(_ scope: String, connectionId: String, userId: String?) async {}
    func connectionRemoved(_ scope: String, connectionId: String, userId: String?) async {}
    func localGroupJoined(_ scope: String, group: String) async {}
    func localGroupLeft(_ scope: String, group: String) async {}
    func publish(_ message: BackplaneMessage, scope: String) async throws {
        try await Task.sleep(for: .seconds(3600))
    }
    func requestGroupChange(
        _ change: GroupMembershipChange, connectionId: String, group: String, scope: String, timeout: Duration
    ) async throws {
        throw BackplaneError(.unavailable, "stalled")
    }
}

/// A backplane whose broker takes 200 ms per publish; records the order in which operations reach it.
final class SlowPublishBackplane: Backplane {
    let serverId = "slow-publish"
    let log = NIOLockedValueBox([String]())
    func register(scope: String, receiver: any BackplaneReceiver) async throws {}
    func unregister(scope: String) async {}
    func connectionAdded(_ scope: String, connectionId: String, userId: String?) async {
        log.withLockedValue { $0.append("added") }
    }
    func connectionRemoved(_ scope: String, connectionId: String, userId: String?) async {}
    func localGroupJoined(_ scope: String, group: String) async {}
    func localGroupLeft(_ scope: String, group: String) async {}
    func publish(_ message: BackplaneMessage, scope: String) async throws {
        try await Task.sleep(for: .milliseconds(200))
        log.withLockedValue { $0.append("published") }
    }
    func requestGroupChange(
        _ change: GroupMembershipChange, connectionId: String, group: String, scope: String, timeout: Duration
    ) async throws {
        throw BackplaneError(.unavailable, "slow")
    }
}

/// A backplane whose broker is down: every publish fails at once.
final class DownBackplane: Backplane {
    let serverId = "down"
    func register(scope: String, receiver: any BackplaneReceiver) async throws {
        throw BackplaneError(.unavailable, "down")
    }
    func unregister(scope: String) async {}
    func connectionAdded(_ scope: String, connectionId: String, userId: String?) async {}
    func connectionRemoved(_ scope: String, connectionId: String, userId: String?) async {}
    func localGroupJoined(_ scope: String, group: String) async {}
    func localGroupLeft(_ scope: String, group: String) async {}
    func publish(_ message: BackplaneMessage, scope: String) async throws {
        throw BackplaneError(.unavailable, "down")
    }
    func requestGroupChange(
        _ change: GroupMembershipChange, connectionId: String, group: String, scope: String, timeout: Duration
    ) async throws {
        throw BackplaneError(.unavailable, "down")
    }
}

/// Hubs across servers on the in-process backplane: every target, exactly once, and group changes of connections
/// of another server.
@Suite struct BackplaneTests {
    static func next(_ client: inout HubTestClient) async throws -> String? {
        try await FanOutTests.nextInvocation(&client)
    }

    /// Invokes `method` and returns the Completion's outcome (`void`, `error: …`, or the value as JSON); messages
    /// that arrive before the Completion stay for ``next(_:)``, in order.
    static func call(_ client: inout HubTestClient, _ method: String, _ arguments: [JSONValue]) async throws -> String {
        try await client.send(invocation("c", method, arguments))
        var before: [HubMessage] = []
        while let message = try await client.next() {
            if case .completion = message {
                client.pending = before + client.pending
                return outcome(message)
            }
            before.append(message)
        }
        return "closed"
    }

    static func connectionId(_ client: inout HubTestClient) async throws -> String {
        try await client.send(invocation("id", "ConnectionId", []))
        guard case .completion(let completion)? = try await client.next(), case .value(let value) = completion.result
        else { throw HubError("no connection id") }
        return try value.decode(String.self)
    }

    /// Sends `Msg("end")` to everyone from `endpoint` and checks that it is every client's next message: nothing
    /// else (no duplicate, nothing not meant for it) is queued before it.
    static func expectNothingBut(
        marker: String, from endpoint: HubEndpoint<ClusterHub>, _ clients: inout [HubTestClient],
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws {
        try await endpoint.clients.all.send("Msg", marker)
        for index in clients.indices {
            #expect(try await next(&clients[index]) == #"Msg("\#(marker)")"#, sourceLocation: sourceLocation)
        }
    }

    /// Two clients per server, JSON and MessagePack.
    static func connectSpread(_ ports: [Int], query: String = "") async throws -> [HubTestClient] {
        var clients: [HubTestClient] = []
        for port in ports {
            clients.append(try await HubTestClient.connect(port, query: query))
            clients.append(try await HubTestClient.connect(port, query: query, protocol: "messagepack"))
        }
        return clients
    }

    @Test func broadcastReachesEveryConnectionExactlyOnce() async throws {
        try await withHubCluster { endpoints, ports in
            var clients = try await Self.connectSpread(ports)
            let framingsBefore = endpoints.map { $0.manager.framingCount }
            let sharedFramesBefore = endpoints.map { $0.manager.sharedFrameCount }
            let serializationsBefore = endpoints[0].manager.serializationCount
            #expect(try await Self.call(&clients[0], "ToAll", ["hello"]) == "void")
            // Serialized once per protocol on the sender, framed once per protocol on each receiver.
            #expect(endpoints[0].manager.serializationCount - serializationsBefore == 2)
            #expect(endpoints[0].manager.sharedFrameCount - sharedFramesBefore[0] == 2)
            for index in clients.indices {
                #expect(try await Self.next(&clients[index]) == #"Msg("hello")"#)
            }
            for server in [1, 2] {
                #expect(await eventually { endpoints[server].manager.framingCount - framingsBefore[server] >= 2 })
                #expect(endpoints[server].manager.framingCount - framingsBefore[server] == 2)
                #expect(endpoints[server].manager.sharedFrameCount - sharedFramesBefore[server] == 2)
            }
            try await Self.expectNothingBut(marker: "end", from: endpoints[2], &clients)
            #expect(endpoints[0].backplaneStatistics?.dropped == 0)
            for client in clients { await client.close() }
        }
    }

    @Test func groupSendReachesOnlyMembersOnEveryServer() async throws {
        try await withHubCluster { endpoints, ports in
            var clients = try await Self.connectSpread(ports)
            // Members: the JSON client of server 0, both clients of server 1, none of server 2.
            for index in [0, 2, 3] {
                #expect(try await Self.call(&clients[index], "Join", ["room"]) == "void")
            }
            // Sent from a non-member on the server without members.
            #expect(try await Self.call(&clients[5], "ToGroup", ["room", "in the room"]) == "void")
            for index in [0, 2, 3] {
                #expect(try await Self.next(&clients[index]) == #"Msg("in the room")"#)
            }
            try await Self.expectNothingBut(marker: "end", from: endpoints[2], &clients)
            for client in clients { await client.close() }
        }
    }

    @Test func exclusionsHoldAcrossServers() async throws {
        try await withHubCluster { endpoints, ports in
            var clients = try await Self.connectSpread(ports)
            var ids: [String] = []
            for index in clients.indices { ids.append(try await Self.connectionId(&clients[index])) }
            let everyone = Set(clients.indices)

            // others: everyone but the caller (on server 1).
            #expect(try await Self.call(&clients[2], "ToOthers", ["others"]) == "void")
            for index in everyone.subtracting([2]).sorted() {
                #expect(try await Self.next(&clients[index]) == #"Msg("others")"#)
            }
            try await Self.expectNothingBut(marker: "1", from: endpoints[0], &clients)

            // allExcept: two connections of other servers than the caller's.
            let except: JSONValue = [.string(ids[3]), .string(ids[5])]
            #expect(try await Self.call(&clients[0], "ToAllExcept", [except, "ax"]) == "void")
            for index in everyone.subtracting([3, 5]).sorted() {
                #expect(try await Self.next(&clients[index]) == #"Msg("ax")"#)
            }
            try await Self.expectNothingBut(marker: "2", from: endpoints[1], &clients)

            // groupExcept and othersInGroup: everyone joins g.
            for index in clients.indices {
                #expect(try await Self.call(&clients[index], "Join", ["g"]) == "void")
            }
            #expect(
                try await Self.call(&clients[1], "ToGroupExcept", ["g", [.string(ids[0]), .string(ids[4])], "gx"])
                    == "void")
            for index in everyone.subtracting([0, 4]).sorted() {
                #expect(try await Self.next(&clients[index]) == #"Msg("gx")"#)
            }
            try await Self.expectNothingBut(marker: "3", from: endpoints[2], &clients)
            #expect(try await Self.call(&clients[4], "ToOthersInGroup", ["g", "og"]) == "void")
            for index in everyone.subtracting([4]).sorted() {
                #expect(try await Self.next(&clients[index]) == #"Msg("og")"#)
            }
            try await Self.expectNothingBut(marker: "4", from: endpoints[0], &clients)

            // One connection of another server, by id.
            #expect(try await Self.call(&clients[0], "ToClient", [.string(ids[5]), "direct"]) == "void")
            #expect(try await Self.next(&clients[5]) == #"Msg("direct")"#)
            try await Self.expectNothingBut(marker: "5", from: endpoints[1], &clients)
            for client in clients { await client.close() }
        }
    }

    @Test func userTargetingReachesEveryConnectionOfTheUser() async throws {
        let authenticator = HubAuthenticator { request in
            guard let token = request.bearerToken else { return .anonymous }
            return .authenticated(HubUser(id: token))
        }
        try await withHubCluster(authenticator: authenticator) { endpoints, ports in
            // ann on every server (both protocols), bob on server 1, an anonymous client on server 2.
            var clients = try await Self.connectSpread(ports, query: "?access_token=ann")
            clients.append(try await HubTestClient.connect(ports[1], query: "?access_token=bob"))
            clients.append(try await HubTestClient.connect(ports[2]))
            #expect(try await Self.call(&clients[7], "ToUser", ["ann", "for ann"]) == "void")
            for index in 0..<6 {
                #expect(try await Self.next(&clients[index]) == #"Msg("for ann")"#)
            }
            try await Self.expectNothingBut(marker: "end", from: endpoints[0], &clients)
            #expect(try await Self.call(&clients[0], "ToUser", ["bob", "for bob"]) == "void")
            #expect(try await Self.next(&clients[6]) == #"Msg("for bob")"#)
            try await Self.expectNothingBut(marker: "end2", from: endpoints[2], &clients)
            for client in clients { await client.close() }
        }
    }

    @Test func groupChangesOfAConnectionOfAnotherServer() async throws {
        try await withHubCluster { endpoints, ports in
            var a = try await HubTestClient.connect(ports[0])
            var b = try await HubTestClient.connect(ports[1], protocol: "messagepack")
            var c = try await HubTestClient.connect(ports[2])
            let bId = try await Self.connectionId(&b)
            // a (server 0) adds b (server 1) to g: server 1 applies it and acknowledges.
            #expect(try await Self.call(&a, "AddToGroup", [.string(bId), "g"]) == "void")
            #expect(endpoints[1].manager.members(of: "g") == [bId])
            #expect(endpoints[0].manager.members(of: "g").isEmpty)
            // c (server 2, not a member) sends to g: b gets it.
            #expect(try await Self.call(&c, "ToGroup", ["g", "to g"]) == "void")
            #expect(try await Self.next(&b) == #"Msg("to g")"#)
            // c removes b; the group's messages no longer reach it.
            #expect(try await Self.call(&c, "RemoveFromGroup", [.string(bId), "g"]) == "void")
            #expect(endpoints[1].manager.members(of: "g").isEmpty)
            #expect(try await Self.call(&a, "ToGroup", ["g", "nobody"]) == "void")
            var clients = [a, b, c]
            try await Self.expectNothingBut(marker: "end", from: endpoints[1], &clients)
            for client in clients { await client.close() }
        }
    }

    @Test func unknownConnectionFailsTheInvocation() async throws {
        var configuration = HubConfiguration()
        configuration.backplaneGroupChangeTimeout = .milliseconds(300)
        try await withHubCluster(servers: 2, configuration: configuration) { _, ports in
            var a = try await HubTestClient.connect(ports[0])
            let added = try await Self.call(&a, "AddToGroup", ["no-such-connection", "g"])
            #expect(added.hasPrefix("error: "))
            #expect(added.contains("'no-such-connection'"))
            let removed = try await Self.call(&a, "RemoveFromGroup", ["no-such-connection", "g"])
            #expect(removed.hasPrefix("error: "))
            // The connection is still served.
            #expect(try await Self.call(&a, "ConnectionId", []).count > 2)
            await a.close()
        }
    }

    @Test func clientResultsAreLocalOnly() async throws {
        try await withHubCluster(servers: 2) { _, ports in
            var a = try await HubTestClient.connect(ports[0])
            var b = try await HubTestClient.connect(ports[1])
            let bId = try await Self.connectionId(&b)
            let answer = try await Self.call(&a, "Ask", [.string(bId)])
            #expect(answer.hasPrefix("error: "))
            #expect(answer.contains("not connected to this server"))
            await a.close()
            await b.close()
        }
    }

    @Test func connectionsLeavingUnsubscribe() async throws {
        try await withHubCluster(servers: 2) { endpoints, ports in
            var a = try await HubTestClient.connect(ports[0])
            var b = try await HubTestClient.connect(ports[1])
            #expect(try await Self.call(&b, "Join", ["g"]) == "void")
            let bId = try await Self.connectionId(&b)
            await b.close()
            #expect(await eventually { endpoints[1].connectionCount == 0 })
            // Server 1 no longer holds b: adding it from server 0 is not acknowledged.
            let added = try await Self.call(&a, "AddToGroup", [.string(bId), "g"])
            #expect(added.hasPrefix("error: "))
            // Server 1 gets nothing for its former group and connection, only the broadcast.
            let received = endpoints[1].backplaneStatistics?.received ?? 0
            let published = endpoints[0].backplaneStatistics?.published ?? 0
            #expect(try await Self.call(&a, "ToGroup", ["g", "x"]) == "void")
            #expect(try await Self.call(&a, "ToClient", [.string(bId), "x"]) == "void")
            #expect(try await Self.call(&a, "ToAll", ["all"]) == "void")
            #expect(try await Self.next(&a) == #"Msg("all")"#)
            #expect(await eventually { endpoints[0].backplaneStatistics?.published == published + 3 })
            #expect(endpoints[1].backplaneStatistics?.received == received + 1)
            await a.close()
        }
    }

    /// A broker that never answers: local delivery goes on, hub sends do not wait, and the publish queue stays
    /// bounded (the surplus is dropped and counted).
    @Test func stalledBrokerDoesNotHoldLocalDelivery() async throws {
        var configuration = HubConfiguration()
        configuration.backplanePublishQueueLimit = 5
        try await withHubCluster(servers: 1, configuration: configuration, backplanes: [StalledBackplane()]) {
            endpoints, ports in
            var a = try await HubTestClient.connect(ports[0])
            // Twenty broadcasts without invocation id (no Completions): the caller gets all twenty at once.
            for number in 0..<20 { try await a.send(invocation(nil, "ToAll", [.string("\(number)")])) }
            for number in 0..<20 { #expect(try await Self.next(&a) == #"Msg("\#(number)")"#) }
            let statistics = try #require(endpoints[0].backplaneStatistics)
            #expect(statistics.published == 0)
            // One publication is held by the stalled broker, five wait (the limit), the rest were dropped.
            #expect(statistics.dropped + statistics.queued == 19)
            #expect(statistics.dropped >= 14)
            await a.close()
        }
    }

    /// A slow broker with a backlog of publications: a new connection's subscription is not queued behind it.
    @Test func interestChangesPassQueuedPublications() async throws {
        let backplane = SlowPublishBackplane()
        try await withHubCluster(servers: 1, backplanes: [backplane]) { _, ports in
            var a = try await HubTestClient.connect(ports[0])
            #expect(await eventually { backplane.log.withLockedValue { $0 } == ["added"] })
            // Ten broadcasts: two seconds of publishing for the slow broker.
            for number in 0..<10 { try await a.send(invocation(nil, "ToAll", [.string("\(number)")])) }
            for number in 0..<10 { #expect(try await Self.next(&a) == #"Msg("\#(number)")"#) }
            let b = try await HubTestClient.connect(ports[0])
            #expect(await eventually { backplane.log.withLockedValue { $0.filter { $0 == "added" }.count } == 2 })
            let log = backplane.log.withLockedValue { $0 }
            let secondAdded = try #require(log.lastIndex(of: "added"))
            // Before the fix it came after all ten publications.
            #expect(log[..<secondAdded].filter { $0 == "published" }.count < 10)
            #expect(await eventually(timeout: .seconds(5)) {
                backplane.log.withLockedValue { $0.filter { $0 == "published" }.count } == 10
            })
            await a.close()
            await b.close()
        }
    }

    /// A broker that is down: every publication fails and is counted; local traffic and local groups go on.
    @Test func brokerDownKeepsLocalTraffic() async throws {
        try await withHubCluster(servers: 1, backplanes: [DownBackplane()]) { endpoints, ports in
            var a = try await HubTestClient.connect(ports[0])
            var b = try await HubTestClient.connect(ports[0], protocol: "messagepack")
            #expect(try await Self.call(&b, "Join", ["g"]) == "void")
            #expect(try await Self.call(&a, "ToGroup", ["g", "local"]) == "void")
            #expect(try await Self.next(&b) == #"Msg("local")"#)
            #expect(try await Self.call(&a, "ToAll", ["all"]) == "void")
            #expect(try await Self.next(&a) == #"Msg("all")"#)
            #expect(try await Self.next(&b) == #"Msg("all")"#)
            #expect(await eventually { endpoints[0].backplaneStatistics?.failed == 2 })
            await a.close()
            await b.close()
        }
    }
}
