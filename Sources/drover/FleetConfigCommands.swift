import ArgumentParser
import Foundation

/// `drover config`: configuration templates, deployments, status, rollback and reset, over the
/// signed HTTP API (`/config/...`).
struct FleetConfigCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config", abstract: "Fleet configuration: templates deployed into shadows of thing groups and thing types.",
        subcommands: [Template.self, Deploy.self, Deployments.self, Show.self, Status.self, Update.self, Rollback.self, Delete.self,
                      Reset.self, FactoryDefault.self])

    static func read(_ path: String) throws -> Data {
        guard let data = FileManager.default.contents(atPath: path) else { throw ValidationError("cannot read \(path)") }
        guard (try? JSONSerialization.jsonObject(with: data)) is [String: Any] else {
            throw ValidationError("\(path) must hold a JSON object: the desired state")
        }
        return data
    }

    struct Template: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Configuration templates: named documents of desired state, with immutable versions.",
            subcommands: [Create.self, Edit.self, List.self, Show.self, Versions.self, Delete.self])

        struct Create: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Create a template (version 1) from a JSON file.")
            @OptionGroup var api: APIOptions
            @Argument(help: "The template's name.") var name: String
            @Option(name: .long, help: "A JSON file: the desired state.") var file: String
            @Option(name: .long, help: "What the template is for.") var description: String?
            @Option(name: .long, help: "Why this version.") var comment: String?

            func run() async throws {
                var body: [String: Any] = [:]
                if let description { body["description"] = description }
                if let comment { body["comment"] = comment }
                printJSON(try await api.call("POST", "/config/templates/\(name)", body: body, document: try read(file)))
            }
        }

        struct Edit: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Add a version from a JSON file; it becomes the latest.")
            @OptionGroup var api: APIOptions
            @Argument(help: "The template's name.") var name: String
            @Option(name: .long, help: "A JSON file: the desired state.") var file: String
            @Option(name: .long, help: "What changed, and why.") var comment: String?

            func run() async throws {
                printJSON(try await api.call("POST", "/config/templates/\(name)/versions", body: comment.map { ["comment": $0] } ?? [:],
                                             document: try read(file)))
            }
        }

        struct List: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "List the templates.")
            @OptionGroup var api: APIOptions
            func run() async throws { printJSON(try await api.call("GET", "/config/templates", query: [("maxResults", "250")])) }
        }

        struct Show: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Show a template version (the latest by default) with its document.")
            @OptionGroup var api: APIOptions
            @Argument(help: "The template's name.") var name: String
            @Option(name: .long, help: "The version.") var version: Int?

            func run() async throws {
                printJSON(try await api.call("GET", "/config/templates/\(name)", query: version.map { [("version", "\($0)")] } ?? []))
            }
        }

        struct Versions: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "List a template's versions, newest first, with author and comment.")
            @OptionGroup var api: APIOptions
            @Argument(help: "The template's name.") var name: String
            func run() async throws {
                printJSON(try await api.call("GET", "/config/templates/\(name)/versions", query: [("maxResults", "250")]))
            }
        }

        struct Delete: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Delete a template that no deployment uses.")
            @OptionGroup var api: APIOptions
            @Argument(help: "The template's name.") var name: String
            func run() async throws {
                _ = try await api.call("DELETE", "/config/templates/\(name)")
                print("deleted template \(name)")
            }
        }
    }

    struct Deploy: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Deploy a template into a shadow of every thing in a group or of a type, now and later.")
        @OptionGroup var api: APIOptions
        @Argument(help: "A name for the deployment.") var name: String
        @Option(name: .long, help: "The template.") var template: String
        @Option(name: .long, help: "The template version. Default: the latest.") var version: Int?
        @Option(name: .long, help: "A thing group: its things and those of its child groups.") var group: String?
        @Option(name: .long, help: "A thing type: every thing of that type.") var thingType: String?
        @Option(name: .long, help: "The named shadow to write.") var shadow = "config"
        @Option(name: .long, help: "Why.") var comment: String?

        func run() async throws {
            let target: (String, String)
            switch (group, thingType) {
            case (let group?, nil): target = ("THING_GROUP", group)
            case (nil, let type?): target = ("THING_TYPE", type)
            default: throw ValidationError("give either --group or --thing-type")
            }
            var body: [String: Any] = ["templateName": template, "targetType": target.0, "targetName": target.1, "shadowName": shadow]
            if let version { body["templateVersion"] = version }
            if let comment { body["comment"] = comment }
            printJSON(try await api.call("POST", "/config/deployments/\(name)", body: body))
        }
    }

    struct Deployments: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the deployments.")
        @OptionGroup var api: APIOptions
        @Option(name: .long, help: "Only those of this template.") var template: String?
        func run() async throws {
            var query = [("maxResults", "250")]
            if let template { query.append(("templateName", template)) }
            printJSON(try await api.call("GET", "/config/deployments", query: query))
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a deployment: its history and how far its rollout is.")
        @OptionGroup var api: APIOptions
        @Argument(help: "The deployment.") var name: String
        func run() async throws { printJSON(try await api.call("GET", "/config/deployments/\(name)")) }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "How many members are in sync, pending or drifted, and which are drifted (or --state PENDING / IN_SYNC).")
        @OptionGroup var api: APIOptions
        @Argument(help: "The deployment.") var name: String
        @Option(name: .long, help: "Which members to list: DRIFTED, PENDING or IN_SYNC.") var state = "DRIFTED"
        @Flag(name: .long, help: "Print the API's JSON.") var json = false

        func run() async throws {
            var things: [[String: Any]] = []
            var token: String?
            var first: [String: Any] = [:]
            repeat {
                var query = [("state", state), ("maxResults", "250")]
                if let token { query.append(("nextToken", token)) }
                let page = try await api.call("GET", "/config/deployments/\(name)/status", query: query) as? [String: Any] ?? [:]
                if first.isEmpty { first = page }
                things += page["things"] as? [[String: Any]] ?? []
                token = page["nextToken"] as? String
            } while token != nil
            if json {
                first["things"] = things
                first["nextToken"] = nil
                printJSON(first)
                return
            }
            let number = { (key: String) in (first[key] as? Int).map(String.init) ?? "?" }
            print("\(name): template \(first["templateName"] as? String ?? "?") version \(number("templateVersion")), revision \(number("revision"))")
            print("members \(number("members")): in sync \(number("inSync")), pending \(number("pending")), drifted \(number("drifted"))")
            for thing in things {
                let keys = (thing["keys"] as? [String] ?? []).joined(separator: ",")
                print("  \(thing["thingName"] as? String ?? "?")  \(thing["state"] as? String ?? "")  \(thing["reason"] as? String ?? "")  \(keys)")
            }
        }
    }

    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Deploy another version of the template (default: the latest).")
        @OptionGroup var api: APIOptions
        @Argument(help: "The deployment.") var name: String
        @Option(name: .long, help: "The template version.") var version: Int?
        @Option(name: .long, help: "Why.") var comment: String?
        func run() async throws {
            var body: [String: Any] = [:]
            if let version { body["templateVersion"] = version }
            if let comment { body["comment"] = comment }
            printJSON(try await api.call("PATCH", "/config/deployments/\(name)", body: body))
        }
    }

    struct Rollback: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Deploy an earlier version again (default: the last one deployed before the current one).")
        @OptionGroup var api: APIOptions
        @Argument(help: "The deployment.") var name: String
        @Option(name: .long, help: "The template version.") var version: Int?
        @Option(name: .long, help: "Why.") var comment: String?
        func run() async throws {
            var body: [String: Any] = [:]
            if let version { body["templateVersion"] = version }
            if let comment { body["comment"] = comment }
            printJSON(try await api.call("POST", "/config/deployments/\(name)/rollback", body: body))
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop a deployment; the shadows keep what it wrote.")
        @OptionGroup var api: APIOptions
        @Argument(help: "The deployment.") var name: String
        func run() async throws {
            _ = try await api.call("DELETE", "/config/deployments/\(name)")
            print("deleted deployment \(name)")
        }
    }

    struct Reset: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Set a thing's configuration back to its deployment's template, or to its thing type's factory default.")
        @OptionGroup var api: APIOptions
        @Argument(help: "The thing.") var thing: String
        @Option(name: .long, help: "The named shadow.") var shadow = "config"
        @Flag(name: .long, help: "Use the thing type's factory default instead of the template.") var factoryDefault = false
        @Option(name: .long, help: "The deployment, when several configure that shadow.") var deployment: String?
        func run() async throws {
            var body: [String: Any] = ["shadowName": shadow, "source": factoryDefault ? "FACTORY_DEFAULT" : "TEMPLATE"]
            if let deployment { body["deploymentName"] = deployment }
            printJSON(try await api.call("POST", "/config/things/\(thing)/reset", body: body))
        }
    }

    struct FactoryDefault: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "factory-default", abstract: "The configuration a thing type's things go back to on a factory reset.",
            subcommands: [Set.self, Show.self, Delete.self])

        struct Set: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Set it from a JSON file.")
            @OptionGroup var api: APIOptions
            @Argument(help: "The thing type.") var thingType: String
            @Option(name: .long, help: "A JSON file: the desired state.") var file: String
            @Option(name: .long, help: "Why.") var comment: String?
            func run() async throws {
                printJSON(try await api.call("PUT", "/config/thing-types/\(thingType)/factory-default",
                                             body: comment.map { ["comment": $0] } ?? [:], document: try read(file)))
            }
        }

        struct Show: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Show it.")
            @OptionGroup var api: APIOptions
            @Argument(help: "The thing type.") var thingType: String
            func run() async throws { printJSON(try await api.call("GET", "/config/thing-types/\(thingType)/factory-default")) }
        }

        struct Delete: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Remove it.")
            @OptionGroup var api: APIOptions
            @Argument(help: "The thing type.") var thingType: String
            func run() async throws {
                _ = try await api.call("DELETE", "/config/thing-types/\(thingType)/factory-default")
                print("deleted the factory default of \(thingType)")
            }
        }
    }
}
