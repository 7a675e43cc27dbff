import NIOCore

/// Checks the keep-alive of every connection on one event loop, twice a second: one timer per
/// loop instead of one per connection, which keeps an idle connection small.
///
/// `@unchecked Sendable`: `connections` is used only on `eventLoop`.
final class KeepAliveSweeper: @unchecked Sendable {
    static let period = TimeAmount.milliseconds(500)

    let eventLoop: any EventLoop
    private var connections: [ObjectIdentifier: MQTTConnection] = [:]
    private var task: RepeatedTask?

    init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    func register(_ connection: MQTTConnection) {
        connections[ObjectIdentifier(connection)] = connection
        if task == nil {
            task = eventLoop.scheduleRepeatedTask(initialDelay: Self.period, delay: Self.period) { [weak self] _ in
                self?.sweep()
            }
        }
    }

    func unregister(_ connection: MQTTConnection) {
        connections[ObjectIdentifier(connection)] = nil
        if connections.isEmpty {
            task?.cancel()
            task = nil
        }
    }

    private func sweep() {
        let now = eventLoop.now
        for connection in Array(connections.values) {
            connection.checkKeepAlive(now: now)
        }
    }
}
