import RESP
import Testing

@Suite("RESP commands (arrays of bulk strings)")
struct CommandTests {
    func text(_ command: RESPCommand) -> String { String(decoding: command.bytes, as: UTF8.self) }

    @Test("a command is an array of bulk strings; encodedLength is exact; binary arguments survive")
    func encoding() {
        let ping = RESPCommand.ping()
        #expect(text(ping) == "*1\r\n$4\r\nPING\r\n")
        #expect(text(.ping("hi")) == "*2\r\n$4\r\nPING\r\n$2\r\nhi\r\n")
        let binary = RESPCommand.publish(channel: "c", message: [0x0D, 0x0A, 0x00])
        #expect(binary.bytes == bytes("*3\r\n$7\r\nPUBLISH\r\n$1\r\nc\r\n$3\r\n") + [0x0D, 0x0A, 0x00, 0x0D, 0x0A])
        for command in [ping, binary, RESPCommand("SET", "k", String(repeating: "v", count: 1000))] {
            #expect(command.encodedLength == command.bytes.count)
        }
        #expect(text(RESPCommand("GET", "caf\u{e9}")) == "*2\r\n$3\r\nGET\r\n$5\r\ncaf\u{e9}\r\n")
    }

    @Test("a command parses back as the array of bulk strings it is")
    func parsesBack() throws {
        let command = RESPCommand.xadd(key: "s", maxLength: 100, fields: [("a", bytes("1")), ("b", [0xFF])])
        var parser = RESPParser()
        let parsed = try parser.parse(command.bytes)
        #expect(parsed == [.array(command.arguments.map { .bulkString($0) })])
    }

    @Test("HELLO, AUTH, pub/sub, XADD and XRANGE arguments")
    func helpers() {
        #expect(RESPCommand.hello(protocolVersion: 3).arguments == [bytes("HELLO"), bytes("3")])
        #expect(
            RESPCommand.hello(protocolVersion: 3, password: "p", clientName: "n").arguments.map {
                String(decoding: $0, as: UTF8.self)
            }
                == ["HELLO", "3", "AUTH", "default", "p", "SETNAME", "n"]
        )
        #expect(RESPCommand.auth(password: "p").arguments == [bytes("AUTH"), bytes("p")])
        #expect(RESPCommand.auth(username: "u", password: "p").arguments == [bytes("AUTH"), bytes("u"), bytes("p")])
        #expect(RESPCommand.subscribe(["a", "b"]).arguments == [bytes("SUBSCRIBE"), bytes("a"), bytes("b")])
        #expect(RESPCommand.psubscribe(["a*"]).arguments == [bytes("PSUBSCRIBE"), bytes("a*")])
        #expect(RESPCommand.unsubscribe(["a"]).arguments == [bytes("UNSUBSCRIBE"), bytes("a")])
        #expect(RESPCommand.punsubscribe(["a*"]).arguments == [bytes("PUNSUBSCRIBE"), bytes("a*")])
        #expect(
            text(.xadd(key: "k", maxLength: 10, fields: [("f", bytes("v"))]))
                == "*8\r\n$4\r\nXADD\r\n$1\r\nk\r\n$6\r\nMAXLEN\r\n$1\r\n~\r\n$2\r\n10\r\n"
                + "$1\r\n*\r\n$1\r\nf\r\n$1\r\nv\r\n"
        )
        #expect(
            RESPCommand.xadd(key: "k", maxLength: 10, approximate: false, id: "1-1", fields: [("f", [])]).arguments
                == [bytes("XADD"), bytes("k"), bytes("MAXLEN"), bytes("10"), bytes("1-1"), bytes("f"), []]
        )
        #expect(RESPCommand.xrange(key: "k").arguments == [bytes("XRANGE"), bytes("k"), bytes("-"), bytes("+")])
        #expect(
            RESPCommand.xrange(key: "k", start: "(1-1", count: 5).arguments.map { String(decoding: $0, as: UTF8.self) }
                == ["XRANGE", "k", "(1-1", "+", "COUNT", "5"]
        )
    }
}
