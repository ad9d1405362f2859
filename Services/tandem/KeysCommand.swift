import ArgumentParser
import Foundation
import TandemBus
import TandemService

/// `tandem keys`: CurveZMQ keys for a cluster whose bus leaves the machine (docs/security.md).
///
/// `init` makes the cluster's keys; `issue` makes a client identity for one edge device (a folder
/// to copy to it, with no server secret in it) and authorises it; `revoke` withdraws one; `list`
/// names the authorised clients. Services use a folder with `--curve-keys DIR` or
/// `TANDEM_CURVE_KEYS`.
struct KeysCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys", abstract: "Make, issue and revoke the bus's CurveZMQ keys.",
        subcommands: [Init.self, Issue.self, Revoke.self, List.self])

    struct Init: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a cluster's keys: server pair, the services' client pair, authorised as 'cluster'.")
        @Argument(help: "Key folder to create.") var directory: String

        func run() throws {
            let (server, _) = try CurveKeyDirectory.create(at: directory)
            say("Cluster keys written to \(directory) (server key \(server.publicKey)).")
            say("Start every service with --curve-keys \(directory) (or TANDEM_CURVE_KEYS=\(directory)); keep server.secret on the cluster's hosts only.")
        }
    }

    struct Issue: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make a client identity (an edge device's drafter) and authorise it.")
        @Argument(help: "Client name, e.g. the device id.") var name: String
        @Option(help: "The cluster's key folder (from `tandem keys init`).") var cluster: String
        @Option(help: "Folder to write the client's keys to (copy it to the device).") var out: String

        func run() throws {
            let pair = try CurveKeyDirectory.issueClient(named: name, cluster: cluster, into: out)
            say("Client '\(name)' authorised (key \(pair.publicKey)); its keys are in \(out).")
            say("On the device: drafter-agent --curve-keys \(out) ...")
        }
    }

    struct Revoke: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Withdraw a client's authorisation (new connections with its key are refused).")
        @Argument(help: "Client name.") var name: String
        @Option(help: "The cluster's key folder.") var cluster: String

        func run() throws {
            try CurveKeyDirectory.revoke(named: name, cluster: cluster)
            say("Client '\(name)' revoked; connections it already has last until they drop.")
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Name the authorised clients.")
        @Option(help: "The cluster's key folder.") var cluster: String

        func run() throws {
            for name in CurveKeyDirectory.authorizedNames(cluster: cluster) { say(name) }
        }
    }
}
