// The client yields `ServerSentEvents` types (`MessageEvent`): users need not import it.
@_exported import ServerSentEvents
