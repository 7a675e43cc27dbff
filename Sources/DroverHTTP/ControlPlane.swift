import DroverFleetConfig
import DroverPolicy
import DroverRegistry
import DroverShadowService
import DroverSigV4
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore

/// The AWS IoT control plane (`iot` service) over HTTP: botocore's paths and JSON shapes,
/// SigV4 on every request, and errors in the AWS shape (`x-amzn-ErrorType` and a JSON
/// `message`), so that boto3 and the AWS CLI work with `--endpoint-url`.
public struct ControlPlane: Sendable {
    public struct Configuration: Sendable {
        /// What DescribeEndpoint answers: the host devices connect to.
        public var endpointAddress: String
        public var maxBodySize: Int = 1 << 20
        /// The regions a signature may name (`api.regions`); empty: any.
        public var regions: Set<String> = []
        /// The host names (no port) a signed Host may name; empty: any.
        public var hostNames: Set<String> = []
        /// The CA that issues device certificates; nil: certificate issuing is refused.
        public var issuing: Issuing?
        /// The shadow service behind `iot-data`; nil: those operations are refused.
        public var shadows: ShadowService?
        /// Fleet configuration (`/config/...`); nil: those operations are refused.
        public var fleetConfig: FleetConfigService?

        public init(endpointAddress: String, issuing: Issuing? = nil, shadows: ShadowService? = nil,
                    fleetConfig: FleetConfigService? = nil) {
            self.endpointAddress = endpointAddress
            self.issuing = issuing
            self.shadows = shadows
            self.fleetConfig = fleetConfig
        }
    }

    let registry: Registry
    let configuration: Configuration
    let logger: Logger

    public init(registry: Registry, configuration: Configuration, logger: Logger) {
        self.registry = registry
        self.configuration = configuration
        self.logger = logger
    }

    /// The AWS signing name of each part of the API: botocore signs `iot` requests with `iot`
    /// and `iot-data` requests with `iotdata`. Drover's own operations are signed as `iot`.
    enum Service: String {
        case iot
        case iotData = "iotdata"
    }

    func verifier(for service: Service) -> SigV4Verifier {
        SigV4Verifier(scope: .init(services: [service.rawValue], regions: configuration.regions, hosts: configuration.hostNames))
    }

    /// An authenticated request: who signed it, its body, and its path parameters.
    struct Call {
        let caller: Caller
        let body: [UInt8]
        let request: Request
        let context: BasicRequestContext

        func parameter(_ name: String) throws -> String {
            guard let value = context.parameters.get(name) else { throw RegistryError(.invalidRequest, "\(name) is missing") }
            return value.percentDecoded
        }

        func query(_ name: String) -> String? { request.uri.queryParameters.get(name) }

        /// The `expectedVersion` query parameter of the Delete operations.
        func expectedVersion() throws -> Int64? {
            guard let text = query("expectedVersion") else { return nil }
            guard let value = Int64(text) else {
                throw RegistryError(.invalidRequest, "expectedVersion must be a number, not '\(text.prefix(64))'")
            }
            return value
        }

        func queryInt(_ name: String) throws -> Int? {
            guard let text = query(name) else { return nil }
            guard let value = Int(text) else { throw RegistryError(.invalidRequest, "\(name) must be a number, not '\(text)'") }
            return value
        }

        func decode<T: Decodable>(_ type: T.Type) throws -> T { try ControlPlane.decode(T.self, body: body) }
    }

    /// A JSON body as `T`; an empty body is `{}`.
    static func decode<T: Decodable>(_ type: T.Type, body: [UInt8]) throws -> T {
        let data = body.isEmpty ? Data("{}".utf8) : Data(body)
        do {
            return try JSONDecoder().decode(T.self, from: data)
        } catch let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context) {
            throw wrongType(context.codingPath.map(\.stringValue).joined(separator: "."))
        } catch {
            throw notJSON
        }
    }

    static func wrongType(_ path: String) -> RegistryError {
        RegistryError(.invalidRequest, "the body's field '\(path)' has the wrong type")
    }

    static let notJSON = RegistryError(.invalidRequest, "the body is not valid JSON for this operation")

    typealias Handler = @Sendable (Call) async throws -> Response

    /// Adds the routes to `router`.
    public func register(on router: Router<BasicRequestContext>) {
        route(router, .post, "/things/:thingName", "CreateThing", createThing)
        route(router, .get, "/things/:thingName", "DescribeThing", describeThing)
        route(router, .patch, "/things/:thingName", "UpdateThing", updateThing)
        route(router, .delete, "/things/:thingName", "DeleteThing", deleteThing)
        route(router, .get, "/things", "ListThings", listThings)
        route(router, .post, "/thing-types/:thingTypeName", "CreateThingType", createThingType)
        route(router, .get, "/thing-types/:thingTypeName", "DescribeThingType", describeThingType)
        route(router, .delete, "/thing-types/:thingTypeName", "DeleteThingType", deleteThingType)
        route(router, .post, "/thing-types/:thingTypeName/deprecate", "DeprecateThingType", deprecateThingType)
        route(router, .get, "/thing-types", "ListThingTypes", listThingTypes)
        route(router, .get, "/endpoint", "DescribeEndpoint", describeEndpoint)
        // The fixed paths before the :thingGroupName ones.
        route(router, .put, "/thing-groups/addThingToThingGroup", "AddThingToThingGroup", addThingToThingGroup)
        route(router, .put, "/thing-groups/removeThingFromThingGroup", "RemoveThingFromThingGroup", removeThingFromThingGroup)
        route(router, .put, "/thing-groups/updateThingGroupsForThing", "UpdateThingGroupsForThing", updateThingGroupsForThing)
        route(router, .post, "/thing-groups/:thingGroupName", "CreateThingGroup", createThingGroup)
        route(router, .get, "/thing-groups/:thingGroupName", "DescribeThingGroup", describeThingGroup)
        route(router, .patch, "/thing-groups/:thingGroupName", "UpdateThingGroup", updateThingGroup)
        route(router, .delete, "/thing-groups/:thingGroupName", "DeleteThingGroup", deleteThingGroup)
        route(router, .get, "/thing-groups", "ListThingGroups", listThingGroups)
        route(router, .get, "/thing-groups/:thingGroupName/things", "ListThingsInThingGroup", listThingsInThingGroup)
        route(router, .get, "/things/:thingName/thing-groups", "ListThingGroupsForThing", listThingGroupsForThing)
        route(router, .post, "/keys-and-certificate", "CreateKeysAndCertificate", createKeysAndCertificate)
        route(router, .post, "/certificates", "CreateCertificateFromCsr", createCertificateFromCsr)
        route(router, .post, "/certificate/register", "RegisterCertificate", registerCertificate)
        route(router, .post, "/certificate/register-no-ca", "RegisterCertificateWithoutCA", registerCertificateWithoutCA)
        route(router, .get, "/certificates/:certificateId", "DescribeCertificate", describeCertificate)
        route(router, .put, "/certificates/:certificateId", "UpdateCertificate", updateCertificate)
        route(router, .delete, "/certificates/:certificateId", "DeleteCertificate", deleteCertificate)
        route(router, .get, "/certificates", "ListCertificates", listCertificates)
        route(router, .get, "/certificates-by-ca/:caCertificateId", "ListCertificatesByCA", listCertificatesByCA)
        route(router, .post, "/cacertificate", "RegisterCACertificate", registerCACertificate)
        route(router, .get, "/cacertificate/:caCertificateId", "DescribeCACertificate", describeCACertificate)
        route(router, .put, "/cacertificate/:caCertificateId", "UpdateCACertificate", updateCACertificate)
        route(router, .delete, "/cacertificate/:caCertificateId", "DeleteCACertificate", deleteCACertificate)
        route(router, .get, "/cacertificates", "ListCACertificates", listCACertificates)
        route(router, .put, "/things/:thingName/principals", "AttachThingPrincipal", attachThingPrincipal)
        route(router, .delete, "/things/:thingName/principals", "DetachThingPrincipal", detachThingPrincipal)
        route(router, .get, "/things/:thingName/principals", "ListThingPrincipals", listThingPrincipals)
        route(router, .get, "/principals/things", "ListPrincipalThings", listPrincipalThings)
        route(router, .post, "/policies/:policyName", "CreatePolicy", createPolicy)
        route(router, .get, "/policies/:policyName", "GetPolicy", getPolicy)
        route(router, .delete, "/policies/:policyName", "DeletePolicy", deletePolicy)
        route(router, .get, "/policies", "ListPolicies", listPolicies)
        route(router, .post, "/policies/:policyName/version", "CreatePolicyVersion", createPolicyVersion)
        route(router, .get, "/policies/:policyName/version", "ListPolicyVersions", listPolicyVersions)
        route(router, .get, "/policies/:policyName/version/:policyVersionId", "GetPolicyVersion", getPolicyVersion)
        route(router, .patch, "/policies/:policyName/version/:policyVersionId", "SetDefaultPolicyVersion", setDefaultPolicyVersion)
        route(router, .delete, "/policies/:policyName/version/:policyVersionId", "DeletePolicyVersion", deletePolicyVersion)
        route(router, .put, "/target-policies/:policyName", "AttachPolicy", attachPolicy)
        route(router, .post, "/target-policies/:policyName", "DetachPolicy", detachPolicy)
        route(router, .post, "/attached-policies/:target", "ListAttachedPolicies", listAttachedPolicies)
        route(router, .post, "/policy-targets/:policyName", "ListTargetsForPolicy", listTargetsForPolicy)
        route(router, .post, "/effective-policies", "GetEffectivePolicies", getEffectivePolicies)
        route(router, .post, "/test-authorization", "TestAuthorization", testAuthorization)
        // iot-data
        route(router, .get, "/things/:thingName/shadow", "GetThingShadow", service: .iotData, getThingShadow)
        route(router, .post, "/things/:thingName/shadow", "UpdateThingShadow", service: .iotData,
              maxBody: configuration.shadows?.limits.maximumRequestSize, updateThingShadow)
        route(router, .delete, "/things/:thingName/shadow", "DeleteThingShadow", service: .iotData, deleteThingShadow)
        route(router, .get, "/api/things/shadow/ListNamedShadowsForThing/:thingName", "ListNamedShadowsForThing", service: .iotData, listNamedShadowsForThing)
        route(router, .post, "/topics/**", "Publish", service: .iotData, publish)
        route(router, .get, "/drover/audit", "QueryAudit", queryAudit)
        route(router, .get, "/drover/access-keys", "ListAccessKeys", listAccessKeys)
        route(router, .post, "/drover/access-keys", "CreateAccessKey", createAccessKey)
        route(router, .delete, "/drover/access-keys/:accessKeyId", "RevokeAccessKey", revokeAccessKey)
        registerBillingGroupsAndTags(on: router)
        registerRoleAliases(on: router)
        registerConfig(on: router)
    }

    /// Adds a route for `operation`, whose access key policy action is `iot:`, `iotdata:` (the
    /// data plane) or `drover:` (Drover's own routes, under `/drover/` and `/config/`) and the
    /// operation's name.
    func route(
        _ router: Router<BasicRequestContext>, _ method: HTTPRequest.Method, _ path: RouterPath, _ operation: String,
        service: Service = .iot, policyService: String? = nil, maxBody: Int? = nil, _ handler: @escaping Handler
    ) {
        let verifier = verifier(for: service)
        let limit = min(maxBody ?? configuration.maxBodySize, configuration.maxBodySize)
        let text = path.description
        let policyService = policyService
            ?? (service == .iotData ? "iotdata" : (text.hasPrefix("/drover/") || text.hasPrefix("/config/") ? "drover" : "iot"))
        let action = Action(service: policyService, operation: operation)
        router.on(path, method: method) { request, context -> Response in
            try await authenticate(request, context, verifier, maxBody: limit, action: action, handler)
        }
    }

    /// What a WebSocket upgrade to `/mqtt` proves about its client.
    public enum WebSocketAuthentication: Sendable, Equatable {
        /// Not signed: MQTT's own rules apply (anonymous on loopback only).
        case unsigned
        /// Signed by this access key; its policy gives the MQTT rights.
        case signed(accessKeyId: String)
        case refused(code: String, message: String)
    }

    /// Checks a presigned `wss://HOST/mqtt?X-Amz-...` upgrade, as AWS IoT does: Signature Version
    /// 4 for the service `iotdevicegateway`, with the key's policy deciding `iot:Connect` and the
    /// rest on MQTT. `X-Amz-Security-Token` is not signed (AWS IoT's rule), and Drover issues no
    /// session tokens, so it is ignored.
    public func authenticateWebSocket(_ request: HTTPRequest) -> WebSocketAuthentication {
        let raw = request.path ?? "/"
        let (path, fullQuery) = raw.firstIndex(of: "?").map { (String(raw[..<$0]), String(raw[raw.index(after: $0)...])) } ?? (raw, "")
        let query = fullQuery.split(separator: "&").filter { !$0.hasPrefix("X-Amz-Security-Token=") }.joined(separator: "&")
        var headers: [(String, String)] = request.headerFields.map { ($0.name.canonicalName, $0.value) }
        if let authority = request.authority { headers.append(("host", authority)) }
        let signed = query.contains("X-Amz-Signature=") || headers.contains { $0.0 == "authorization" }
        guard signed else { return .unsigned }
        let verifier = SigV4Verifier(scope: .init(
            services: ["iotdevicegateway"], regions: configuration.regions, hosts: configuration.hostNames,
            presignedWithoutExpiry: true))
        switch verifier.verify(.init(method: request.method.rawValue, rawPath: path, rawQuery: query, headers: headers, body: []),
                               now: Date(), secret: { registry.accessKey($0)?.secret }) {
        case .refused(let code, let message):
            logger.info("WebSocket upgrade refused", metadata: ["reason": "\(code)"])
            return .refused(code: code, message: message)
        case .verified(let keyId, _, _):
            // A temporary key needs its session token here too (sent unsigned, as AWS IoT takes it).
            if let token = registry.accessKey(keyId)?.sessionToken {
                let given = fullQuery.split(separator: "&").first { $0.hasPrefix("X-Amz-Security-Token=") }
                    .map { String($0.dropFirst("X-Amz-Security-Token=".count)) }
                guard (given?.removingPercentEncoding ?? given) == token else {
                    logger.info("WebSocket upgrade refused", metadata: ["reason": "InvalidClientTokenId"])
                    return .refused(code: "InvalidClientTokenId", message: "the security token included in the request is invalid")
                }
            }
            return .signed(accessKeyId: keyId)
        }
    }

    /// The ARN a request acts on, from its path parameters; `*` for lists and the like.
    func resourceARN(_ context: BasicRequestContext, path: String, region: String) -> String {
        let prefix = "arn:aws:iot:\(region):\(registry.configuration.account):"
        func value(_ name: String) -> String? {
            context.parameters.get(name).map(\.percentDecoded)
        }
        if let name = value("thingName") { return prefix + "thing/" + name }
        if let name = value("thingGroupName") { return prefix + "thinggroup/" + name }
        if let name = value("thingTypeName") { return prefix + "thingtype/" + name }
        if let name = value("billingGroupName") { return prefix + "billinggroup/" + name }
        if let name = value("roleAlias") { return prefix + "rolealias/" + name }
        if let name = value("policyName") { return prefix + "policy/" + name }
        if let id = value("certificateId") { return prefix + "cert/" + id }
        if let id = value("caCertificateId") { return prefix + "cacert/" + id }
        if let id = value("accessKeyId") { return prefix + "accesskey/" + id }
        if let name = value("templateName") { return prefix + "configtemplate/" + name }
        if let name = value("deploymentName") { return prefix + "configdeployment/" + name }
        if path.hasPrefix("/topics/") {
            let topic = String(path.dropFirst("/topics/".count))
            return prefix + "topic/" + topic.percentDecoded
        }
        return "*"
    }

    /// What a route does, for access key policies.
    struct Action: Sendable {
        let service: String
        let operation: String
    }

    /// Checks the signature, then runs `handler`. What does not need the body (the form of the
    /// signature, the key, the date, the scope, the host, and the signature itself when the
    /// client sent `x-amz-content-sha256`) is checked before the body is read; the body must then
    /// hash to what was signed.
    private func authenticate(
        _ request: Request, _ context: BasicRequestContext, _ verifier: SigV4Verifier, maxBody: Int, action: Action,
        _ handler: Handler
    ) async throws -> Response {
        var request = request
        var headers: [(String, String)] = request.headers.map { ($0.name.canonicalName, $0.value) }
        if !headers.contains(where: { $0.0 == "host" }), let authority = request.head.authority {
            headers.append(("host", authority))
        }
        let raw = request.uri.description
        let (path, query) = raw.firstIndex(of: "?").map { (String(raw[..<$0]), String(raw[raw.index(after: $0)...])) } ?? (raw, "")
        func refused(_ code: String, _ message: String) -> Response {
            logger.info("API request refused", metadata: ["reason": "\(code)", "path": "\(path.clippedForLog)"])
            return Self.error(.forbidden, code, message)
        }
        let checked = verifier.check(
            .init(method: request.method.rawValue, rawPath: path, rawQuery: query, headers: headers, body: []), now: Date()
        ) { registry.accessKey($0)?.secret }
        let signed: SigV4Verifier.SignedRequest
        switch checked {
        case .refused(let code, let message): return refused(code, message)
        case .signed(let value): signed = value
        }
        if case .refused(let code, let message) = signed.verifyBeforeBody() { return refused(code, message) }
        // Temporary keys work only with their session token, as AWS's do.
        if let token = registry.accessKey(signed.accessKeyId)?.sessionToken,
           !headers.contains(where: { $0.0 == "x-amz-security-token" && $0.1 == token }) {
            return refused("InvalidClientTokenId", "the security token included in the request is invalid")
        }
        // The key's policy, before the body is read when the signature already is checked.
        let caller = Caller(principal: signed.accessKeyId, region: signed.region)
        let resource = resourceARN(context, path: path, region: signed.region)
        let apiRequest = APIPolicy.Request(service: action.service, operation: action.operation, resource: resource)
        if !registry.accessKey(signed.accessKeyId, allows: apiRequest) {
            let message = "access key \(signed.accessKeyId) is not authorized to perform: \(apiRequest.action) on resource: \(resource.clippedForLog)"
            logger.info("API request denied by the key's policy", metadata: [
                "key": "\(signed.accessKeyId)", "action": "\(apiRequest.action)", "resource": "\(resource.clippedForLog)",
            ])
            registry.recordDenied(caller, operation: action.operation, resource: resource.clippedForLog, message: message)
            return Self.error(.forbidden, "UnauthorizedException", message)
        }
        if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > maxBody {
            return Self.error(.contentTooLarge, "RequestEntityTooLargeException", "the body is larger than \(maxBody) bytes")
        }
        let body: [UInt8]
        do {
            let buffer = try await request.collectBody(upTo: maxBody)
            body = Array(buffer.readableBytesView)
        } catch {
            return Self.error(.contentTooLarge, "RequestEntityTooLargeException", "the body is larger than \(maxBody) bytes")
        }
        switch signed.verify(payloadHash: SigV4Verifier.payloadHash(of: body)) {
        case .refused(let code, let message):
            return refused(code, message)
        case .verified:
            let call = Call(caller: caller, body: body, request: request, context: context)
            do {
                return try await handler(call)
            } catch let error as RegistryError {
                return Self.error(error)
            }
        }
    }

    // MARK: Responses

    static func json(_ value: some Encodable, status: HTTPResponse.Status = .ok) -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let data = (try? encoder.encode(value)) ?? Data("{}".utf8)
        return Response(status: status, headers: [.contentType: "application/json"],
                        body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func json(bytes: [UInt8], status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    static func empty() -> Response {
        Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: "{}")))
    }

    static func error(_ status: HTTPResponse.Status, _ type: String, _ message: String, extra: [String: String] = [:]) -> Response {
        var fields = extra
        fields["message"] = message
        let data = (try? JSONEncoder().encode(fields)) ?? Data()
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        headers[HTTPField.Name("x-amzn-ErrorType")!] = type
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func error(_ error: RegistryError) -> Response {
        let status: HTTPResponse.Status = switch error.kind {
        case .notFound: .notFound
        case .alreadyExists, .versionConflict, .deleteConflict, .versionsLimitExceeded: .conflict
        case .certificateState: .notAcceptable
        case .unauthorized: .forbidden
        case .limitExceeded: .gone
        case .internalFailure: .internalServerError
        default: .badRequest
        }
        var extra: [String: String] = [:]
        if let id = error.resourceId { extra["resourceId"] = id }
        if let arn = error.resourceArn { extra["resourceArn"] = arn }
        return Self.error(status, error.kind.awsName, error.message, extra: extra)
    }
}

extension String {
    /// A path or name from a request, cut for a log line.
    var clippedForLog: String {
        count <= 200 ? self : String(prefix(200)) + "..."
    }

    /// A path parameter with its percent-escapes decoded; itself when it has none (most names,
    /// and Foundation's decoding is slow for the common case), or when they do not decode.
    var percentDecoded: String {
        guard utf8.contains(UInt8(ascii: "%")) else { return self }
        return removingPercentEncoding ?? self
    }
}
