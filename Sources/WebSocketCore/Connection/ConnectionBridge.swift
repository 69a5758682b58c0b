// TEMPORARY (replaced by the core-lifecycle branch at merge).
extension Connection {
    public mutating func receive(
        _ buffer: UnsafeMutableRawBufferPointer,
        _ body: (Event) -> Void
    ) throws(ProtocolError) {
        var rest = buffer
        while true {
            let (consumed, event) = try self.receive(rest)
            rest = UnsafeMutableRawBufferPointer(rebasing: rest[consumed...])
            guard let event else { return }
            body(event)
        }
    }

    public mutating func notePeerActivity() {
        self.activity = true
    }
}
