import Crypto
import DroverRegistry
import Foundation
import Hummingbird

/// Role aliases (botocore's shapes), and the credentials provider's one operation.
extension ControlPlane {
    func registerRoleAliases(on router: Router<BasicRequestContext>) {
        route(router, .post, "/role-aliases/:roleAlias", "CreateRoleAlias", createRoleAlias)
        route(router, .get, "/role-aliases/:roleAlias", "DescribeRoleAlias", describeRoleAlias)
        route(router, .put, "/role-aliases/:roleAlias", "UpdateRoleAlias", updateRoleAlias)
        route(router, .delete, "/role-aliases/:roleAlias", "DeleteRoleAlias", deleteRoleAlias)
        route(router, .get, "/role-aliases", "ListRoleAliases", listRoleAliases)
    }

    func roleAliasArn(_ caller: Caller, _ name: String) -> String { registry.arn(caller.region, "rolealias/\(name)") }

    struct CreateRoleAliasInput: Decodable {
        var roleArn: String
        var credentialDurationSeconds: Int?
        var tags: [Tag]?
    }

    struct RoleAliasOutput: Encodable {
        var roleAlias: String
        var roleAliasArn: String
    }

    func createRoleAlias(_ call: Call) async throws -> Response {
        let input = try call.decode(CreateRoleAliasInput.self)
        let alias = try await registry.createRoleAlias(
            call.caller, name: try call.parameter("roleAlias"), roleArn: input.roleArn, duration: input.credentialDurationSeconds,
            tags: try Self.tags(input.tags))
        return Self.json(RoleAliasOutput(roleAlias: alias.name, roleAliasArn: roleAliasArn(call.caller, alias.name)))
    }

    struct RoleAliasDescription: Encodable {
        var roleAlias: String
        var roleAliasArn: String
        var roleArn: String
        var owner: String
        var credentialDurationSeconds: Int
        var creationDate: Double
        var lastModifiedDate: Double
    }

    struct DescribeRoleAliasOutput: Encodable {
        var roleAliasDescription: RoleAliasDescription
    }

    func describeRoleAlias(_ call: Call) async throws -> Response {
        let alias = try registry.roleAlias(try call.parameter("roleAlias"))
        return Self.json(DescribeRoleAliasOutput(roleAliasDescription: RoleAliasDescription(
            roleAlias: alias.name, roleAliasArn: roleAliasArn(call.caller, alias.name), roleArn: alias.roleArn,
            owner: registry.configuration.account, credentialDurationSeconds: alias.credentialDurationSeconds,
            creationDate: alias.createdAt, lastModifiedDate: alias.modifiedAt)))
    }

    struct UpdateRoleAliasInput: Decodable {
        var roleArn: String?
        var credentialDurationSeconds: Int?
    }

    func updateRoleAlias(_ call: Call) async throws -> Response {
        let input = try call.decode(UpdateRoleAliasInput.self)
        let alias = try await registry.updateRoleAlias(
            call.caller, name: try call.parameter("roleAlias"), roleArn: input.roleArn, duration: input.credentialDurationSeconds)
        return Self.json(RoleAliasOutput(roleAlias: alias.name, roleAliasArn: roleAliasArn(call.caller, alias.name)))
    }

    func deleteRoleAlias(_ call: Call) async throws -> Response {
        try await registry.deleteRoleAlias(call.caller, name: try call.parameter("roleAlias"))
        return Self.empty()
    }

    struct ListRoleAliasesOutput: Encodable {
        var roleAliases: [String]
        var nextMarker: String?
    }

    func listRoleAliases(_ call: Call) async throws -> Response {
        let page = try registry.listRoleAliases(pageSize: try call.queryInt("pageSize"), marker: call.query("marker"),
                                                ascending: call.query("isAscendingOrder") != "false")
        return Self.json(ListRoleAliasesOutput(roleAliases: page.items, nextMarker: page.nextToken))
    }

    // MARK: The credentials provider

    /// The answer to `GET /role-aliases/{alias}/credentials` on the credentials listener, for a
    /// client whose certificate (DER) the TLS handshake verified: status, body (JSON).
    public func credentials(certificateDER: [UInt8], path: String, thingName: String?) async -> (status: Int, body: [UInt8]) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        func refusal(_ status: Int, _ message: String) -> (Int, [UInt8]) {
            (status, Array(((try? encoder.encode(["message": message])) ?? Data()).readableBytes))
        }
        let parts = path.split(separator: "?", maxSplits: 1)[0].split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0].isEmpty, parts[1] == "role-aliases", parts[3] == "credentials", !parts[2].isEmpty else {
            return refusal(404, "the credentials provider serves GET /role-aliases/ALIAS/credentials")
        }
        let alias = String(parts[2]).removingPercentEncoding ?? String(parts[2])
        let certificateId = SHA256.hash(data: certificateDER).map { String(format: "%02x", $0) }.joined()
        do {
            let issued = try await registry.issueCredentials(certificateId: certificateId, alias: alias, thingName: thingName)
            struct Credentials: Encodable {
                var accessKeyId: String
                var secretAccessKey: String
                var sessionToken: String
                var expiration: String
            }
            let formatter = ISO8601DateFormatter()
            let answer = ["credentials": Credentials(
                accessKeyId: issued.key.id, secretAccessKey: issued.key.secret, sessionToken: issued.key.sessionToken ?? "",
                expiration: formatter.string(from: issued.expiration))]
            logger.info("temporary credentials issued", metadata: ["certificateId": "\(certificateId)", "roleAlias": "\(alias.clippedForLog)"])
            return (200, Array(((try? encoder.encode(answer)) ?? Data()).readableBytes))
        } catch let error as RegistryError {
            let status = switch error.kind {
            case .notFound: 404
            case .unauthorized: 403
            case .internalFailure: 500
            default: 400
            }
            return refusal(status, error.message)
        } catch {
            return refusal(500, "the credentials could not be issued")
        }
    }
}

extension Data {
    fileprivate var readableBytes: [UInt8] { [UInt8](self) }
}
