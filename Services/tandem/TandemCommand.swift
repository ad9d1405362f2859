import ArgumentParser

/// `tandem`: the operator's tool. Runs a local cluster, benchmarks, fetches models.
///
/// Each subcommand lives in its own file (`<Name>Command.swift`) and is listed here.
@main
struct TandemCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tandem",
        abstract: "Tandem: distributed speculative decoding. Run a local cluster, benchmark, fetch models.",
        subcommands: [
            // Subcommands are registered here (one line each).
            UpCommand.self,
            StatusCommand.self,
            ModelsCommand.self,
            GenerateCommand.self,
            PerplexityCommand.self,
            QuantizeCommand.self,
            PlanCommand.self,
            BenchCommand.self,
            ProfileCommand.self,
            AdviseCommand.self,
            FleetCommand.self,
            KeysCommand.self,
            ChaosCommand.self,
        ]
    )
}
