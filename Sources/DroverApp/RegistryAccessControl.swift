import DroverIdentity
import DroverPolicy
import DroverRegistry
import DroverShadowService
import Foundation
import MQTTBroker
import MQTTCodec
import NIOConcurrencyHelpers
import NIOCore
import X509

/// Device access from the registry: on the mutual-TLS listener a client is its certificate,
/// which must be registered and ACTIVE (and its CA too), and every action is checked against
/// the policies attached to it. Elsewhere, the anonymous-on-loopback default applies.
///
/// Decisions are answered from the registry's in-memory snapshot and cached per principal and
/// client. A registry change drops the entries of the principals it can touch (see
/// ``principals(touchedBy:)``), so a policy change applies to connected clients at once, and
/// creating the millionth thing costs the connected ones nothing.
///
/// Rules that hold for everyone but the broker's own in-process clients:
/// - the shadow reply topics (`.../accepted`, `/rejected`, `/delta`, `/documents` under
///   `$aws/things/{thing}/shadow/`) are subscribe-only, as in AWS IoT: only the shadow service
///   publishes there;
/// - anonymous clients are held to `mqtt.anonymous_policy` when one is configured;
/// - on mutual TLS a client id may not hold `+`, `#`, `*` or `?`, so that `${iot:ClientId}`
///   in a `topicfilter/` resource can never become an MQTT wildcard.
final class RegistryAccessControl: MQTTAuthenticator, MQTTAuthorizer, @unchecked Sendable {
    // `@unchecked Sendable`: `cache` is guarded by its lock, the rest is immutable.
    private let registry: Registry
    private let region: String
    private let fallback = LoopbackAnonymousAuthenticator()
    /// Principal → client id → action → decision. `generation` goes up with every drop, so that
    /// a decision made from a state older than the drop is not cached after it.
    private let cache = NIOLockedValueBox<DecisionCache>(DecisionCache())
    struct DecisionCache {
        var generation = 0
        var decisions: [String: [String: [MQTTAction: Bool]]] = [:]
    }
    /// More principals than this touched by one change, and the whole cache goes instead.
    static let maxTouched = 10_000
    /// The policy anonymous clients are held to; nil: they may do anything but publish to reply topics.
    private let anonymousPolicy: [NamedPolicy]?

    /// The attribute of a `ClientIdentity` that holds the thing the connection acts as.
    static let thingAttribute = "thing"
    /// The principal of a client that signed its WebSocket upgrade: this prefix and the key id.
    static let accessKeyPrefix = "accesskey:"

    init(registry: Registry, region: String, anonymousPolicy: PolicyDocument? = nil) {
        self.registry = registry
        self.region = region
        self.anonymousPolicy = anonymousPolicy.map { [NamedPolicy(name: "mqtt.anonymous_policy", document: $0)] }
    }

    /// Characters a client id may not hold on mutual TLS: MQTT and policy wildcards.
    static func hasWildcard(_ clientId: String) -> Bool {
        clientId.utf8.contains { $0 == UInt8(ascii: "+") || $0 == UInt8(ascii: "#") || $0 == UInt8(ascii: "*") || $0 == UInt8(ascii: "?") }
    }

    static func isReplyTopic(_ topic: String) -> Bool { ShadowService.isReplyTopic(topic) }

    /// Called after every registry change: drops the decisions that it may change.
    func registryChanged(_ update: RegistryUpdate) {
        let touched = Self.principals(touchedBy: update)
        if touched?.isEmpty == true { return }
        cache.withLockedValue { cache in
            cache.generation += 1
            if let touched {
                for principal in touched { cache.decisions[principal] = nil }
            } else {
                cache.decisions = [:]
            }
        }
    }

    /// The principals whose decisions a change can alter; nil: anyone's. A decision depends on
    /// the certificate, the thing it acts as (its attributes and type, which certificates it
    /// has), that thing's groups and their ancestors, the policies on the certificate and on
    /// those groups, and for a signed connection the access key (and the certificate it was
    /// issued for). Anything else (a new thing, a new certificate, a shadow) touches no one.
    static func principals(touchedBy update: RegistryUpdate) -> Set<String>? {
        var principals = Set<String>()
        var things = Set<String>()
        var groups = Set<String>()
        func target(_ target: String) {
            if target.hasPrefix("cert/") { principals.insert(String(target.dropFirst(5))) }
            if target.hasPrefix("thinggroup/") { groups.insert(String(target.dropFirst(11))) }
        }
        for change in update.changes {
            switch change.kind {
            case Registry.Kind.certificate:
                // A new certificate has no decisions yet, and no keys issued for it.
                guard update.previous.certificates[change.key] != nil else { continue }
                principals.insert(change.key)
                // Keys issued for the certificate stop with it.
                for id in update.state.temporaryKeysOfCertificate[change.key] ?? [] { principals.insert(accessKeyPrefix + id) }
            case Registry.Kind.accessKey: principals.insert(accessKeyPrefix + change.key)
            case Registry.Kind.thing, Registry.Kind.thingPrincipals: things.insert(change.key)
            case Registry.Kind.groupMember:
                if let slash = change.key.firstIndex(of: "/") { things.insert(String(change.key[change.key.index(after: slash)...])) }
            case Registry.Kind.thingGroup: groups.insert(change.key)
            case Registry.Kind.policy:
                for state in [update.previous, update.state] { for key in state.policyTargets[change.key] ?? [] { target(key) } }
            case Registry.Kind.policyTarget:
                if let slash = change.key.firstIndex(of: "/") { target(String(change.key[change.key.index(after: slash)...])) }
            default: break
            }
        }
        for state in [update.previous, update.state] {
            for group in groups {
                for member in state.subtree(ofGroup: group) {
                    things.formUnion(state.groupMembers[member] ?? [])
                    if things.count > maxTouched { return nil }
                }
            }
        }
        for state in [update.previous, update.state] {
            for thing in things { principals.formUnion(state.thingPrincipals[thing] ?? []) }
        }
        return principals.count > maxTouched ? nil : principals
    }

    static func certificateId(_ der: [UInt8]) -> String? {
        (try? CertificateInfo(der: der))?.certificateId
    }

    // MARK: TLS handshake

    /// Accepts a client certificate that is registered and ACTIVE, within its validity, and
    /// (unless registered without a CA) signed by its registered CA, which is ACTIVE too.
    func verifyClientCertificate(_ der: [UInt8]) -> Bool {
        guard let info = try? CertificateInfo(der: der) else { return false }
        let state = registry.snapshot
        guard let record = state.certificates[info.certificateId], record.isActive else { return false }
        let now = Date()
        guard info.notBefore <= now && now <= info.notAfter else { return false }
        guard let caId = record.caCertificateId else { return true }
        guard let ca = state.caCertificates[caId], ca.status == "ACTIVE",
              let caInfo = try? CertificateInfo(pem: ca.pem) else { return false }
        return isSigned(info.certificate, by: caInfo.certificate)
    }

    // MARK: MQTTAuthenticator

    func authenticate(_ request: AuthenticationRequest, on eventLoop: any EventLoop) -> EventLoopFuture<AuthenticationResult> {
        if let keyId = request.signedAccessKeyId {
            // SigV4 on the upgrade proved the key; its policy decides iot:Connect and the rest.
            guard registry.accessKey(keyId) != nil else {
                return eventLoop.makeSucceededFuture(.deny(.notAuthorized, reason: "access key \(keyId) is not active"))
            }
            if Self.hasWildcard(request.clientId) {
                return eventLoop.makeSucceededFuture(
                    .deny(.clientIdentifierNotValid, reason: "a client id may not contain +, #, * or ? with a signed connection"))
            }
            let principal = Self.accessKeyPrefix + keyId
            guard decideForKey(keyId, request.clientId, .connect) else {
                return eventLoop.makeSucceededFuture(
                    .deny(.notAuthorized, reason: "access key \(keyId) may not iot:Connect as \(request.clientId.prefix(64))"))
            }
            return eventLoop.makeSucceededFuture(.allow(principal: principal, attributes: [:]))
        }
        guard let der = request.peerCertificate else {
            if request.listener.name == "mqtts" {
                return eventLoop.makeSucceededFuture(.deny(.notAuthorized, reason: "a client certificate is required"))
            }
            return fallback.authenticate(request, on: eventLoop)
        }
        if Self.hasWildcard(request.clientId) {
            return eventLoop.makeSucceededFuture(
                .deny(.clientIdentifierNotValid, reason: "a client id may not contain +, #, * or ? on mutual TLS"))
        }
        guard let id = Self.certificateId(der) else {
            return eventLoop.makeSucceededFuture(.deny(.badUserNameOrPassword, reason: "the client certificate cannot be read"))
        }
        // Every check of the handshake again: a resumed TLS session skips the handshake's
        // verification, and the certificate or its CA may have been revoked since.
        guard verifyClientCertificate(der) else {
            return eventLoop.makeSucceededFuture(
                .deny(.notAuthorized, reason: "certificate \(id) is not registered and ACTIVE, or its CA is not"))
        }
        let state = registry.snapshot
        guard state.certificates[id] != nil else {
            return eventLoop.makeSucceededFuture(.deny(.notAuthorized, reason: "certificate \(id) is not registered and ACTIVE"))
        }
        let (context, policies) = state.policyContext(
            certificateId: id, clientId: request.clientId, region: region, account: registry.configuration.account)
        let decision = evaluate(policies, .connect(clientId: request.clientId, in: context), context: context)
        guard decision.isAllowed else {
            return eventLoop.makeSucceededFuture(.deny(.notAuthorized, reason: decision.explanation))
        }
        var attributes: [String: String] = [:]
        if let thing = context.thingName { attributes[Self.thingAttribute] = thing }
        return eventLoop.makeSucceededFuture(.allow(principal: id, attributes: attributes))
    }

    // MARK: MQTTAuthorizer

    func authorize(_ identity: ClientIdentity, _ action: MQTTAction) -> Bool {
        if identity.isInternal { return true }
        if case .publish(let topic, _) = action, Self.isReplyTopic(topic) { return false }
        guard let principal = identity.principal else {
            guard let anonymousPolicy else { return true }
            return decideAnonymous(anonymousPolicy, identity.clientId, action)
        }
        let clientId = identity.clientId
        let (cached, generation): (Bool?, Int) = cache.withLockedValue { cache in
            (cache.decisions[principal]?[clientId]?[action], cache.generation)
        }
        if let cached { return cached }
        let allowed = decide(principal, clientId, action)
        // A temporary key's decisions are not kept: it stops working when it expires, and that
        // is no registry change that would drop them.
        if principal.hasPrefix(Self.accessKeyPrefix),
           registry.snapshot.accessKeys[String(principal.dropFirst(Self.accessKeyPrefix.count))]?.expiresAt != nil {
            return allowed
        }
        cache.withLockedValue { cache in
            guard cache.generation == generation else { return }
            // Bounded: a client that touches many topics starts its cache over.
            if (cache.decisions[principal]?[clientId]?.count ?? 0) >= 1024 { cache.decisions[principal]?[clientId] = [:] }
            cache.decisions[principal, default: [:]][clientId, default: [:]][action] = allowed
        }
        return allowed
    }

    /// An access key's IAM-style policy, for the MQTT actions: `iot:Connect` on `client/ID`,
    /// `iot:Publish` (and `iot:RetainPublish`) and `iot:Receive` on `topic/T`, `iot:Subscribe` on
    /// `topicfilter/F`. A key without a policy has full rights, as on the API.
    private func decideForKey(_ keyId: String, _ clientId: String, _ action: MQTTAction) -> Bool {
        let prefix = "arn:aws:iot:\(region):\(registry.configuration.account):"
        func allows(_ operation: String, _ resource: String) -> Bool {
            registry.accessKey(keyId, allows: .init(service: "iot", operation: operation, resource: prefix + resource))
        }
        switch action {
        case .connect: return allows("Connect", "client/" + clientId)
        case .publish(let topic, let retain):
            return allows("Publish", "topic/" + topic) && (!retain || allows("RetainPublish", "topic/" + topic))
        case .subscribe(let filter): return allows("Subscribe", "topicfilter/" + filter)
        case .receive(let topic): return allows("Receive", "topic/" + topic)
        }
    }

    private func decide(_ principal: String, _ clientId: String, _ action: MQTTAction) -> Bool {
        if principal.hasPrefix(Self.accessKeyPrefix) {
            return decideForKey(String(principal.dropFirst(Self.accessKeyPrefix.count)), clientId, action)
        }
        let certificateId = principal
        let state = registry.snapshot
        let (context, policies) = state.policyContext(
            certificateId: certificateId, clientId: clientId, region: region, account: registry.configuration.account)
        return Self.decide(policies, context, clientId, action)
    }

    /// An anonymous client under `mqtt.anonymous_policy`: no thing, no certificate; only
    /// `${iot:ClientId}` has a value. Not cached: the policy is small and fixed.
    private func decideAnonymous(_ policies: [NamedPolicy], _ clientId: String, _ action: MQTTAction) -> Bool {
        let context = PolicyContext(clientId: clientId, region: region, account: registry.configuration.account)
        return Self.decide(policies, context, clientId, action)
    }

    private static func decide(_ policies: [NamedPolicy], _ context: PolicyContext, _ clientId: String, _ action: MQTTAction) -> Bool {
        switch action {
        case .connect:
            return evaluate(policies, .connect(clientId: clientId, in: context), context: context).isAllowed
        case .publish(let topic, let retain):
            guard evaluate(policies, .publish(topic: topic, in: context), context: context).isAllowed else { return false }
            return !retain || evaluate(policies, .retainPublish(topic: topic, in: context), context: context).isAllowed
        case .subscribe(let filter):
            return evaluate(policies, .subscribe(topicFilter: filter, in: context), context: context).isAllowed
        case .receive(let topic):
            return evaluate(policies, .receive(topic: topic, in: context), context: context).isAllowed
        }
    }

    /// Whether a connected client must go: its certificate is no longer ACTIVE (or gone), or the
    /// thing it connected as is no longer attached to it (or gone).
    /// What an update took away, for the revocation watcher: principals (certificate ids and
    /// `accesskey:ID`) that were ACTIVE before and are not now, CAs likewise, and things that lost
    /// a certificate. Only their connections can have become revoked (see `isRevoked`); a new,
    /// activated or attached one revokes nothing. (A thing with certificates cannot be deleted.)
    struct Revocations: Sendable, Equatable {
        var principals = Set<String>()
        var cas = Set<String>()
        var things = Set<String>()
        var isEmpty: Bool { principals.isEmpty && cas.isEmpty && things.isEmpty }
    }

    static func revocations(in update: RegistryUpdate) -> Revocations {
        var revoked = Revocations()
        let before = update.previous, after = update.state
        for change in update.changes {
            let key = change.key
            switch change.kind {
            case Registry.Kind.accessKey:
                if before.accessKeys[key]?.active == true && after.accessKeys[key]?.active != true {
                    revoked.principals.insert(accessKeyPrefix + key)
                }
            case Registry.Kind.certificate:
                if before.certificates[key]?.isActive == true && after.certificates[key]?.isActive != true {
                    revoked.principals.insert(key)
                }
            case Registry.Kind.caCertificate:
                if before.caCertificates[key]?.status == "ACTIVE" && after.caCertificates[key]?.status != "ACTIVE" {
                    revoked.cas.insert(key)
                }
            case Registry.Kind.thingPrincipals:
                let now = after.thingPrincipals[key] ?? []
                if !(before.thingPrincipals[key] ?? []).isSubset(of: now) { revoked.things.insert(key) }
            default: break
            }
        }
        return revoked
    }

    static func isRevoked(_ identity: ClientIdentity, in state: RegistryState) -> Bool {
        guard let id = identity.principal else { return false }
        if id.hasPrefix(accessKeyPrefix) {
            return state.accessKeys[String(id.dropFirst(accessKeyPrefix.count))]?.active != true
        }
        guard let record = state.certificates[id], record.isActive else { return true }
        if let caId = record.caCertificateId, state.caCertificates[caId]?.status != "ACTIVE" { return true }
        if let thing = identity.attributes[thingAttribute] {
            guard state.things[thing] != nil, state.thingPrincipals[thing]?.contains(id) == true else { return true }
        }
        return false
    }
}
