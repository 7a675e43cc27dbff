import Logging

/// `StreamLogHandler`, with its metadata formatted when a line is written rather than each time a
/// key is set.
///
/// `StreamLogHandler` sorts and formats all of its metadata in the setter. Hummingbird sets a
/// request id on every request's logger, so every API call paid for formatting a line that, at
/// the default level, is never written (1.5 % of the server's CPU under CreateThing). This handler
/// keeps the metadata itself and hands it to the stream handler with the event, which writes the
/// same line: the metadata merged, sorted, and the event's own values winning over the logger's.
struct LazyMetadataLogHandler: LogHandler {
    private var base: StreamLogHandler
    var metadata: Logger.Metadata = [:]

    init(base: StreamLogHandler) {
        self.base = base
    }

    var logLevel: Logger.Level {
        get { base.logLevel }
        set { base.logLevel = newValue }
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var event = event
        if !metadata.isEmpty {
            event.metadata = metadata.merging(event.metadata ?? [:]) { _, explicit in explicit }
        }
        base.log(event: event)
    }
}
