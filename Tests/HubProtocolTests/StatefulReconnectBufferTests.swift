import HubProtocol
import Testing

/// The sequence rules of HubProtocol.md "Stateful Reconnect", sans I/O.
@Suite struct StatefulReconnectBufferTests {
    static let item = HubMessage.streamItem(.init(invocationId: "1", item: .json(1)))

    @Test func numbersKeepsAndReleasesOnAck() {
        var buffer = StatefulReconnectBuffer<String>()
        #expect(buffer.resendSequenceId == 1)
        #expect(buffer.append("a", bytes: 10) == 1)
        #expect(buffer.append("b", bytes: 20) == 2)
        #expect(buffer.append("c", bytes: 30) == 3)
        #expect(buffer.bufferedBytes == 60)
        #expect(buffer.acknowledge(2) == 30)
        #expect(buffer.bufferedBytes == 30)
        #expect(buffer.resendSequenceId == 3)
        #expect(buffer.unacknowledged == ["c"])
        // An old Ack releases nothing; one past the last id releases everything.
        #expect(buffer.acknowledge(1) == 0)
        #expect(buffer.acknowledge(1_000) == 30)
        #expect(buffer.unacknowledged.isEmpty)
        #expect(buffer.resendSequenceId == 4)
    }

    @Test func manyAcksKeepTheOrder() {
        var buffer = StatefulReconnectBuffer<Int>()
        for value in 1...500 {
            buffer.append(value, bytes: 1)
            if value % 7 == 0 { buffer.acknowledge(Int64(value - 3)) }
        }
        // The last Ack (at 497) released up to 494.
        #expect(buffer.unacknowledged == Array(495...500))
        #expect(buffer.bufferedBytes == 6)
    }

    @Test func onlyTrackableMessagesAreCounted() throws {
        var buffer = StatefulReconnectBuffer<Int>()
        #expect(try buffer.receive(.ping) == .process)
        #expect(try buffer.receive(.close(.init())) == .process)
        #expect(try buffer.receive(Self.item) == .process)
        #expect(try buffer.receive(.cancelInvocation(.init(invocationId: "1"))) == .process)
        #expect(buffer.latestReceivedId == 2)
        #expect(buffer.takeAck() == 2)
        #expect(buffer.takeAck() == nil)
        buffer.transportReplaced()
        #expect(buffer.takeAck() == 2)
    }

    @Test func duplicatesAfterASequenceAreDropped() throws {
        var buffer = StatefulReconnectBuffer<Int>()
        for _ in 1...3 { #expect(try buffer.receive(Self.item) == .process) }
        // The peer resends from 2: 2 and 3 are duplicates, 4 is new.
        #expect(try buffer.receive(.sequence(sequenceId: 2)) == .sequenced)
        #expect(try buffer.receive(Self.item) == .duplicate)
        #expect(try buffer.receive(Self.item) == .duplicate)
        #expect(try buffer.receive(Self.item) == .process)
        #expect(buffer.latestReceivedId == 4)
    }

    @Test func aSequenceAheadIsAViolation() throws {
        var buffer = StatefulReconnectBuffer<Int>()
        _ = try buffer.receive(Self.item)
        #expect(try buffer.receive(.sequence(sequenceId: 2)) == .sequenced)
        #expect(throws: StatefulReconnectBuffer<Int>.Violation.sequenceAhead(announced: 3, expected: 2)) {
            try buffer.receive(.sequence(sequenceId: 3))
        }
    }

    @Test func anAckReleasesTheSendersBuffer() throws {
        var buffer = StatefulReconnectBuffer<Int>()
        buffer.append(1, bytes: 5)
        buffer.append(2, bytes: 5)
        #expect(try buffer.receive(.ack(sequenceId: 1)) == .acknowledged)
        #expect(buffer.unacknowledged == [2])
    }
}
