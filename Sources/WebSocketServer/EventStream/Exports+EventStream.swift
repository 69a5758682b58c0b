// The event stream routes take and give `ServerSentEvents` types: users of the server need not import it.
@_exported import ServerSentEvents
