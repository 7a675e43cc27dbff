/// # MQTTBroker
///
/// Sessions, QoS 0/1/2 flows, routing, retained messages, wills and keep-alive, independent of
/// any transport. A transport hands bytes to an ``MQTTConnection`` and carries out what it asks
/// (write, flush, close) through ``MQTTTransport``.
///
/// Invariants:
/// - An ``MQTTConnection`` is confined to its event loop. Sessions are shared between the loops
///   of publishers and of the subscriber, and are guarded by their own lock. The subscription
///   index and the retained store are guarded by the broker's locks and never held across I/O.
/// - Delivery never writes to another loop's channel directly: it appends to the session's
///   bounded queue and schedules one drain on the subscriber's loop, so a burst costs one hop.
/// - Every queue has a bound: the session queue (`maxQueuedMessages`), the in-flight window (the
///   client's Receive Maximum) and the channel's write buffer (writability). A slow consumer
///   loses QoS 0 messages first, and the loss is counted.
/// - Authentication and authorization are hooks (``MQTTAuthenticator``, ``MQTTAuthorizer``);
///   durable state goes through ``BrokerStore``.
public enum MQTTBrokerNamespace {}
