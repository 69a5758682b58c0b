import FuzzSupport
import WebSocketHandshake

// Arbitrary `Sec-WebSocket-Extensions` values (one or several field lines). Invariants: parsing never traps;
// what parses serialises to a value that parses back to the same list, and serialising is then stable.

@_cdecl("LLVMFuzzerTestOneInput")
public func extensionHeaderFuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = FuzzInput(data, size)
    let lines = input.bytes.split(separator: 0x0A, omittingEmptySubsequences: false)
        .map { String(decoding: $0, as: UTF8.self) }
    guard let parsed = try? WebSocketExtension.parse(lines) else { return 0 }
    let serialized = WebSocketExtension.serialize(parsed)
    let reparsed: [WebSocketExtension]
    do throws(ExtensionHeaderError) {
        reparsed = try WebSocketExtension.parse(serialized)
    } catch {
        violated("serialised form does not parse: \(serialized) (\(error))")
    }
    if reparsed != parsed { violated("round trip changed the list: \(serialized)") }
    if WebSocketExtension.serialize(reparsed) != serialized { violated("serialisation not stable") }
    return 0
}

@_cdecl("ExtensionHeaderFuzzer_main")
func extensionHeaderFuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv, extensionHeaderFuzz)
}
