// The client yields `ServerSentEvents` types (`MessageEvent`): users need not import it.
@_exported import ServerSentEvents
// `Configuration.headerFields` is an `HTTPFields` (`[.authorization] = …`).
@_exported import HTTPTypes
