import DroverFleetConfig
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
            return value.removingPercentEncoding ?? value
        }

        func query(_ name: String) -> String? { request.uri.queryParameters.get(name) }

        func queryInt(_ name: String) throws -> Int? {
            guard let text = query(name) else { return nil }
            guard let value = Int(text) else { throw RegistryError(.invalidRequest, "\(name) must be a number, not '\(text)'") }
            return value
        }

        func decode<T: Decodable>(_ type: T.Type) throws -> T {
            let data = body.isEmpty ? Data("{}".utf8) : Data(body)
            do {
                return try JSONDecoder().decode(T.self, from: data)
            } catch let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context) {
                let path = context.codingPath.map(\.stringValue).joined(separator: ".")
                throw RegistryError(.invalidRequest, "the body's field '\(path)' has the wrong type")
            } catch {
                throw RegistryError(.invalidRequest, "the body is not valid JSON for this operation")
            }
        }
    }

    typealias Handler = @Sendable (Call) async throws -> Response

    /// Adds the routes to `router`.
    public func register(on router: Router<BasicRequestContext>) {
        route(router, .post, "/things/:thingName", createThing)
        route(router, .get, "/things/:thingName", describeThing)
        route(router, .patch, "/things/:thingName", updateThing)
        route(router, .delete, "/things/:thingName", deleteThing)
        route(router, .get, "/things", listThings)
        route(router, .post, "/thing-types/:thingTypeName", createThingType)
        route(router, .get, "/thing-types/:thingTypeName", describeThingType)
        route(router, .delete, "/thing-types/:thingTypeName", deleteThingType)
        route(router, .post, "/thing-types/:thingTypeName/deprecate", deprecateThingType)
        route(router, .get, "/thing-types", listThingTypes)
        route(router, .get, "/endpoint", describeEndpoint)
        // The fixed paths before the :thingGroupName ones.
        route(router, .put, "/thing-groups/addThingToThingGroup", addThingToThingGroup)
        route(router, .put, "/thing-groups/removeThingFromThingGroup", removeThingFromThingGroup)
        route(router, .put, "/thing-groups/updateThingGroupsForThing", updateThingGroupsForThing)
        route(router, .post, "/thing-groups/:thingGroupName", createThingGroup)
        route(router, .get, "/thing-groups/:thingGroupName", describeThingGroup)
        route(router, .patch, "/thing-groups/:thingGroupName", updateThingGroup)
        route(router, .delete, "/thing-groups/:thingGroupName", deleteThingGroup)
        route(router, .get, "/thing-groups", listThingGroups)
        route(router, .get, "/thing-groups/:thingGroupName/things", listThingsInThingGroup)
        route(router, .get, "/things/:thingName/thing-groups", listThingGroupsForThing)
        route(router, .post, "/keys-and-certificate", createKeysAndCertificate)
        route(router, .post, "/certificates", createCertificateFromCsr)
        route(router, .post, "/certificate/register", registerCertificate)
        route(router, .post, "/certificate/register-no-ca", registerCertificateWithoutCA)
        route(router, .get, "/certificates/:certificateId", describeCertificate)
        route(router, .put, "/certificates/:certificateId", updateCertificate)
        route(router, .delete, "/certificates/:certificateId", deleteCertificate)
        route(router, .get, "/certificates", listCertificates)
        route(router, .get, "/certificates-by-ca/:caCertificateId", listCertificatesByCA)
        route(router, .post, "/cacertificate", registerCACertificate)
        route(router, .get, "/cacertificate/:caCertificateId", describeCACertificate)
        route(router, .put, "/cacertificate/:caCertificateId", updateCACertificate)
        route(router, .delete, "/cacertificate/:caCertificateId", deleteCACertificate)
        route(router, .get, "/cacertificates", listCACertificates)
        route(router, .put, "/things/:thingName/principals", attachThingPrincipal)
        route(router, .delete, "/things/:thingName/principals", detachThingPrincipal)
        route(router, .get, "/things/:thingName/principals", listThingPrincipals)
        route(router, .get, "/principals/things", listPrincipalThings)
        route(router, .post, "/policies/:policyName", createPolicy)
        route(router, .get, "/policies/:policyName", getPolicy)
        route(router, .delete, "/policies/:policyName", deletePolicy)
        route(router, .get, "/policies", listPolicies)
        route(router, .post, "/policies/:policyName/version", createPolicyVersion)
        route(router, .get, "/policies/:policyName/version", listPolicyVersions)
        route(router, .get, "/policies/:policyName/version/:policyVersionId", getPolicyVersion)
        route(router, .patch, "/policies/:policyName/version/:policyVersionId", setDefaultPolicyVersion)
        route(router, .delete, "/policies/:policyName/version/:policyVersionId", deletePolicyVersion)
        route(router, .put, "/target-policies/:policyName", attachPolicy)
        route(router, .post, "/target-policies/:policyName", detachPolicy)
        route(router, .post, "/attached-policies/:target", listAttachedPolicies)
        route(router, .post, "/policy-targets/:policyName", listTargetsForPolicy)
        route(router, .post, "/effective-policies", getEffectivePolicies)
        route(router, .post, "/test-authorization", testAuthorization)
        // iot-data
        route(router, .get, "/things/:thingName/shadow", service: .iotData, getThingShadow)
        route(router, .post, "/things/:thingName/shadow", service: .iotData, updateThingShadow)
        route(router, .delete, "/things/:thingName/shadow", service: .iotData, deleteThingShadow)
        route(router, .get, "/api/things/shadow/ListNamedShadowsForThing/:thingName", service: .iotData, listNamedShadowsForThing)
        route(router, .post, "/topics/**", service: .iotData, publish)
        route(router, .get, "/drover/audit", queryAudit)
        route(router, .get, "/drover/access-keys", listAccessKeys)
        route(router, .post, "/drover/access-keys", createAccessKey)
        route(router, .delete, "/drover/access-keys/:accessKeyId", revokeAccessKey)
        registerConfig(on: router)
    }

    func route(
        _ router: Router<BasicRequestContext>, _ method: HTTPRequest.Method, _ path: RouterPath, service: Service = .iot,
        _ handler: @escaping Handler
    ) {
        let verifier = verifier(for: service)
        router.on(path, method: method) { request, context -> Response in
            try await authenticate(request, context, verifier, handler)
        }
    }

    /// Checks the signature, then runs `handler`. What does not need the body (the form of the
    /// signature, the key, the date, the scope, the host, and the signature itself when the
    /// client sent `x-amz-content-sha256`) is checked before the body is read; the body must then
    /// hash to what was signed.
    private func authenticate(
        _ request: Request, _ context: BasicRequestContext, _ verifier: SigV4Verifier, _ handler: Handler
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
        if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > configuration.maxBodySize {
            return Self.error(.contentTooLarge, "RequestEntityTooLargeException", "the body is larger than \(configuration.maxBodySize) bytes")
        }
        let body: [UInt8]
        do {
            let buffer = try await request.collectBody(upTo: configuration.maxBodySize)
            body = Array(buffer.readableBytesView)
        } catch {
            return Self.error(.contentTooLarge, "RequestEntityTooLargeException", "the body is larger than \(configuration.maxBodySize) bytes")
        }
        switch signed.verify(payloadHash: SigV4Verifier.payloadHash(of: body)) {
        case .refused(let code, let message):
            return refused(code, message)
        case .verified(let keyId, let region, _):
            let call = Call(caller: Caller(principal: keyId, region: region), body: body, request: request, context: context)
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
        case .unauthorized: .unauthorized
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
}
