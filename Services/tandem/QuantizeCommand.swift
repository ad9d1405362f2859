import ArgumentParser
import Foundation
import Logging
import TandemEngine
import TandemKernels
import TandemModels
import TandemQuantize

/// `tandem quantize`: writes a GGUF model with new tensor types (uniform, or per layer / per tensor
/// from a plan file), in llama.cpp's block formats.
///
/// The published models are already quantised, so every converted tensor is dequantised and
/// quantised again; the command says so, because the result is worse than quantising the original
/// F16 weights to the same type would be (docs/quantize.md measures by how much).
struct QuantizeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quantize",
        abstract: "Requantise a GGUF model (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K, F16, BF16, F32), optionally per layer from a plan.")

    @Option(name: .customLong("in"), help: "Source GGUF: a path, cached file name or catalog name.")
    var input: String

    @Option(name: .customLong("out"), help: "Destination GGUF path (written to <out>.partial, then renamed).")
    var output: String

    @Option(help: "Type for weight matrices: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K, F16, BF16, F32 (a plan's \"default\" overrides it; required without one).")
    var type: String?

    @Option(help: "JSON plan (\"default\": \"source\" keeps unnamed tensors): {\"default\": \"Q4_K\", \"layers\": {\"0\": \"Q8_0\"}, \"tensors\": {\"name\": \"Q6_K\"}}.")
    var plan: String?

    @Flag(name: .customLong("keep-output-type"), help: "Copy output.weight unchanged (unless the plan names it).")
    var keepOutputType = false

    @Flag(name: .customLong("keep-embedding-type"), help: "Copy token_embd.weight unchanged (unless the plan names it).")
    var keepEmbeddingType = false

    @Option(help: "Worker threads.")
    var threads = 2

    @Flag(help: "List every tensor's decision.")
    var verbose = false

    func run() async throws {
        let logger = Logger(label: "tandem.quantize")
        var defaultType: GGMLType?
        if let type {
            do { defaultType = try QuantizationPlan.type(named: type) } catch { throw ValidationError("--type: \(error)") }
        }
        let quantPlan: QuantizationPlan
        if let plan {
            do { quantPlan = try QuantizationPlan.load(path: plan, fallbackDefault: defaultType) } catch {
                throw ValidationError("plan \(plan): \(error)")
            }
        } else if let defaultType {
            quantPlan = QuantizationPlan(defaultType: defaultType)
        } else {
            throw ValidationError("give --type (or a --plan with a \"default\")")
        }
        let sourcePath = try ModelStore(logger: logger).resolve(input).path
        let outPath = (output as NSString).expandingTildeInPath
        guard URL(fileURLWithPath: sourcePath).standardized != URL(fileURLWithPath: outPath).standardized else {
            throw ValidationError("--out must differ from --in (the source is memory-mapped while writing)")
        }
        let source = try GGUFFile(path: sourcePath)
        let options = RequantizeOptions(plan: quantPlan, keepOutputType: keepOutputType,
                                        keepEmbeddingType: keepEmbeddingType, threads: max(1, threads))

        var sourceTypes: [GGMLType: Int] = [:]
        for t in source.tensors { sourceTypes[t.type, default: 0] += 1 }
        let listed = sourceTypes.sorted { $0.value > $1.value }.map { "\($0.key.name) (\($0.value))" }.joined(separator: ", ")
        print("source \(sourcePath): \(source.tensors.count) tensors, \(Self.mb(source.fileSize))")
        let quantised = sourceTypes.keys.contains { $0 != .f32 && $0 != .f16 && $0 != .bf16 }
        print("source tensors are \(listed); " + (quantised
            ? "requantising from dequantised values (both roundings add up; same-type tensors are copied)"
            : "quantising from float values"))
        if plan != nil {
            print("plan: default \(quantPlan.defaultType?.name ?? "source (kept)"), \(quantPlan.layers.count) layer override(s), \(quantPlan.tensors.count) tensor override(s)")
        }

        let decisions = try Requantizer.decide(source: source, options: options)
        // Fallbacks grouped (a model has one per matrix of an awkward width: 181 lines say nothing more).
        var fallbackGroups: [String: [String]] = [:]
        for d in decisions {
            if let r = d.requestedType {
                let key = "row length \(d.dimensions[0]) is not a multiple of the \(r.name) block (\(r.blockSize)); using \(d.outputType.name)"
                fallbackGroups[key, default: []].append(d.name)
            }
        }
        for (why, names) in fallbackGroups.sorted(by: { $0.key < $1.key }) {
            print("fallback: \(names.count) tensor(s): \(why) (e.g. \(names[0]))")
        }
        let total = decisions.count
        let report = try Requantizer.run(source: source, destination: outPath, options: options) { i, d in
            if verbose {
                let what = d.action == .copy ? "copied (\(d.note ?? ""))" : "\(d.sourceType.name) -> \(d.outputType.name)"
                print("  [\(i + 1)/\(total)] \(d.name) \(d.dimensions): \(what)")
            } else if (i + 1) % 50 == 0 || i + 1 == total {
                print("  \(i + 1)/\(total) tensors")
                fflush(nil)
            }
        }

        let fallbacks = report.decisions.filter { $0.requestedType != nil }.count
        let copied = report.decisions.filter { $0.action == .copy }.count
        print("")
        print("type     tensors      elements          bytes")
        for row in report.byType {
            print(row.type.name.padding(toLength: 8, withPad: " ", startingAt: 0)
                  + String(format: " %7d %13d %14d", row.tensors, row.elements, row.bytes))
        }
        print(String(format: "wrote %@: %@ (source %@, %.1f%%), %.2f bits/weight, %d copied unchanged, %d block-size fallbacks, %.1f s",
                     outPath, Self.mb(report.fileSize), Self.mb(source.fileSize),
                     100 * Double(report.fileSize) / Double(source.fileSize), report.bitsPerWeight, copied, fallbacks, report.seconds))
    }

    static func mb(_ bytes: Int) -> String { String(format: "%.1f MB", Double(bytes) / 1_000_000) }
}
