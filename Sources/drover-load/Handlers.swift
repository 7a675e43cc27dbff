import NIOCore

@inline(__always)
func monotonicNanos() -> UInt64 {
    NIODeadline.now().uptimeNanoseconds
}

/// Publishes as fast as the connection allows until a deadline.
///
/// QoS 0: writes batches of `batchSize` PUBLISHes (one pre-encoded buffer, no copying), flushing per batch, for as
/// long as the channel is writable; when it is not, it waits for writability, so TCP paces it. It yields to the event
/// loop after a few batches so that the other connections on the loop get their turn.
/// QoS 1: keeps at most `inflight` PUBLISHes unacknowledged, topping the window up once per read burst.
final class FloodPublisher: LoadConnection {
    private let template: PublishTemplate
    private let qos: UInt8
    private let batchSize: Int
    private let window: Int
    private var batch: ByteBuffer?
    private var running = false
    private var deadline = NIODeadline.distantPast
    private var pumpScheduled = false
    private var nextPacketID: UInt16 = 0
    private var needsTopUp = false
    /// QoS 1: stamp each PUBLISH with its send time, for a subscriber that records latency.
    private let stamp: Bool

    private(set) var published = 0
    private(set) var acked = 0
    private(set) var inflight = 0

    init(
        options: Options, topic: String, qos: UInt8, payloadSize: Int, tag: UInt64, batchSize: Int, inflight: Int,
        stamp: Bool = false
    ) {
        self.template = PublishTemplate(topic: topic, qos: qos, payloadSize: payloadSize, tag: tag)
        self.qos = qos
        self.stamp = stamp
        self.batchSize = max(1, batchSize)
        self.window = max(1, inflight)
        super.init(options: options)
    }

    func start(until deadline: NIODeadline) {
        self.deadline = deadline
        running = true
        // Stop exactly at the deadline even if we are parked waiting for writability or acks.
        context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) { self.running = false }
        if qos == 0 {
            var buffer = context.channel.allocator.buffer(capacity: template.size * batchSize)
            for _ in 0..<batchSize { template.write(into: &buffer) }
            batch = buffer
            pump()
        } else {
            topUp()
        }
    }

    override func stop() {
        running = false
    }

    private func pump() {
        guard let batch else { return }
        var rounds = 0
        while running && context.channel.isWritable {
            if NIODeadline.now() >= deadline {
                running = false
                return
            }
            write(batch)
            flush()
            published &+= batchSize
            rounds += 1
            if rounds == 8 {
                // Let reads and the other channels on this loop run, then carry on.
                guard !pumpScheduled else { return }
                pumpScheduled = true
                context.eventLoop.assumeIsolated().execute {
                    self.pumpScheduled = false
                    self.pump()
                }
                return
            }
        }
    }

    private func topUp() {
        guard running, inflight < window else { return }
        if NIODeadline.now() >= deadline {
            running = false
            return
        }
        let count = window - inflight
        var buffer = context.channel.allocator.buffer(capacity: template.size * count)
        let now: UInt64? = stamp ? monotonicNanos() : nil
        for _ in 0..<count {
            nextPacketID &+= 1
            if nextPacketID == 0 { nextPacketID = 1 }
            template.write(into: &buffer, packetID: nextPacketID, timestamp: now)
        }
        inflight += count
        published &+= count
        write(buffer)
        flush()
    }

    override func becameWritable() {
        if qos == 0 && running && !pumpScheduled { pump() }
    }

    override func didReceivePubAck(packetID: UInt16) {
        guard inflight > 0 else { return }  // a duplicate PUBACK must not widen the window
        inflight -= 1
        acked &+= 1
        needsTopUp = true
    }

    override func readComplete() {
        if needsTopUp {
            needsTopUp = false
            topUp()
        }
    }
}

/// Publishes at a fixed rate with the send time (monotonic nanoseconds) in the payload (see `LoadPayload`).
///
/// Every tick (1 ms) it sends however many messages the schedule says should have gone out by now, so that a late
/// tick is caught up rather than lost and the rate does not drift.
final class PacedPublisher: LoadConnection {
    private let template: PublishTemplate
    private let rate: Int
    private var startNanos: UInt64 = 0
    private var endNanos: UInt64 = 0
    private var tick: Int64 = 0
    private var firstTick = NIODeadline.distantPast
    private var nextPacketID: UInt16 = 0
    private let qos: UInt8

    private(set) var published = 0
    private(set) var acked = 0
    private(set) var finished = false

    init(options: Options, topic: String, qos: UInt8, payloadSize: Int, tag: UInt64, rate: Int) {
        self.template = PublishTemplate(
            topic: topic, qos: qos, payloadSize: max(LoadPayload.minimumForTimestamp, payloadSize), tag: tag
        )
        self.rate = max(1, rate)
        self.qos = qos
        super.init(options: options)
    }

    func start(at start: NIODeadline, duration: TimeAmount) {
        startNanos = start.uptimeNanoseconds
        endNanos = startNanos + UInt64(duration.nanoseconds)
        firstTick = start
        tick = 0
        scheduleTick()
    }

    private func scheduleTick() {
        let at = firstTick + .milliseconds(tick)
        context.eventLoop.assumeIsolated().scheduleTask(deadline: at) { self.onTick() }
    }

    private func onTick() {
        guard !closing, !finished else { return }
        let now = monotonicNanos()
        let elapsed = min(now, endNanos) &- startNanos
        let due = Int((Double(elapsed) * Double(rate) / 1e9).rounded(.down))
        let count = due - published
        if count > 0 {
            var buffer = context.channel.allocator.buffer(capacity: template.size * count)
            for _ in 0..<count {
                var id: UInt16 = 0
                if qos > 0 {
                    nextPacketID &+= 1
                    if nextPacketID == 0 { nextPacketID = 1 }
                    id = nextPacketID
                }
                template.write(into: &buffer, packetID: id, timestamp: monotonicNanos())
            }
            published += count
            write(buffer)
            flush()
        }
        if now >= endNanos {
            finished = true
            return
        }
        tick += 1
        scheduleTick()
    }

    override func stop() {
        finished = true
    }

    override func didReceivePubAck(packetID: UInt16) {
        acked &+= 1
    }
}

/// Counts the PUBLISHes of this run that it receives (acknowledging QoS 1 ones in one flush per read burst), and
/// optionally records the latency from the send timestamp in the payload (see `LoadPayload`).
final class CountingSubscriber: LoadConnection {
    private let recordLatency: Bool
    private let tag: UInt64
    private var pendingAcks: ByteBuffer?

    private(set) var delivered = 0
    /// PUBLISHes without this run's tag: a previous run's backlog, or another client's traffic.
    private(set) var foreign = 0
    private(set) var latenciesNanos: [UInt64] = []
    private(set) var malformed = 0

    /// Snapshot of `delivered` at the start of the measured window, and its time.
    private(set) var windowStart: (count: Int, nanos: UInt64)?
    private(set) var windowEnd: (count: Int, nanos: UInt64)?

    init(options: Options, tag: UInt64, recordLatency: Bool = false, expectedSamples: Int = 0) {
        self.recordLatency = recordLatency
        self.tag = tag
        super.init(options: options)
        if recordLatency { latenciesNanos.reserveCapacity(expectedSamples) }
    }

    /// Records `delivered` at `start` and at `end`, to count the deliveries inside the measured window only.
    func measureWindow(from start: NIODeadline, to end: NIODeadline) {
        let loop = context.eventLoop.assumeIsolated()
        loop.scheduleTask(deadline: start) { self.windowStart = (self.delivered, monotonicNanos()) }
        loop.scheduleTask(deadline: end) { self.windowEnd = (self.delivered, monotonicNanos()) }
    }

    override func didReceivePublish(_ frame: MQTTFrame, in buffer: ByteBuffer) {
        let qos = (frame.flags >> 1) & 0x03
        guard let topicLength = buffer.getInteger(at: frame.bodyIndex, as: UInt16.self) else {
            malformed += 1
            return
        }
        var index = frame.bodyIndex + 2 + Int(topicLength)
        if qos > 0 {
            guard let packetID = buffer.getInteger(at: index, as: UInt16.self) else {
                malformed += 1
                return
            }
            index += 2
            if pendingAcks == nil {
                pendingAcks = context.channel.allocator.buffer(capacity: 4096)
            }
            MQTTWire.writePubAck(packetID: packetID, into: &pendingAcks!)
        }
        let payloadLength = frame.bodyIndex + frame.bodyLength - index
        if payloadLength >= LoadPayload.minimumForTag {
            guard buffer.getInteger(at: index + LoadPayload.tagOffset, endianness: .little, as: UInt64.self) == tag
            else {
                foreign &+= 1
                return
            }
        }
        delivered &+= 1
        if recordLatency {
            guard payloadLength >= LoadPayload.minimumForTimestamp,
                let sent = buffer.getInteger(
                    at: index + LoadPayload.timestampOffset, endianness: .little, as: UInt64.self
                )
            else {
                malformed += 1
                return
            }
            let now = monotonicNanos()
            latenciesNanos.append(now >= sent ? now - sent : 0)
        }
    }

    override func readComplete() {
        if let acks = pendingAcks, acks.readableBytes > 0 {
            pendingAcks = nil
            write(acks)
            flush()
        }
    }
}

/// Connects and does nothing else (the idle scenario).
final class IdleConnection: LoadConnection {}
