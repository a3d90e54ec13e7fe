import ArgumentParser
import Foundation
import Models
import Tensor

@main
struct PromptRepro: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "promptrepro",
        abstract: "Reproduce and extend low-rank soft-prompt papers (DPT, LoPT) on T5 and GPT-2.",
        discussion: """
            Environment (an empty value of any of these is its default):
              PROMPTREPRO_THREADS
                  numeric-core threads, 1–256 (default: the CPUs this process may use)
              PROMPTREPRO_GEMM
                  auto | openblas | avx512 | avx2 (auto: PromptRepro's AVX-512 GEMM
                  where the CPU has it, else its AVX2 one, or this host's `calibrate`
                  choice when one is cached)
              PROMPTREPRO_CALIBRATION
                  on (default) | off: off ignores the cached GEMM calibration
              PROMPTREPRO_ROOT
                  the PromptRepro checkout whose Baselines/, Reports/ and runs/ the
                  commands use (default: found above the working directory or the
                  executable)
              PROMPTREPRO_DATA
                  data directory without --data-dir (default: data/ in the checkout)
              PROMPTREPRO_SHARED
                  the shared folder of tokenizers, models and parity fixtures
                  (default: ../shared beside the checkout; bench-e2e, tests)
              PROMPTREPRO_CACHE
                  embedded smoke backbones (default: ~/.cache/promptrepro)
              HF_HUB_CACHE, HUGGINGFACE_HUB_CACHE, HF_HOME
                  the Hugging Face cache searched for checkpoints (one, as
                  huggingface_hub picks it: HF_HUB_CACHE, else HUGGINGFACE_HUB_CACHE,
                  else HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub or
                  ~/.cache/huggingface/hub)
              PROMPTREPRO_MODEL_DIR
                  a folder of checkpoints searched by name (NAME or the last part of
                  ORG/NAME) before the HF cache
              PROMPTREPRO_CHECKPOINT
                  ffn,attention | all | none: recompute those T5 sublayers in backward
                  (less memory, more FLOPs, same results); default auto: attention
                  when backbone weights train (a list replaces it: ffn alone means no
                  attention)
              PROMPTREPRO_PACK_FROZEN
                  0: pack every GEMM operand at every product, also the weights and
                  encoder states greedy decoding reuses (default 1: packed once per
                  decode; same results)
              PROMPTREPRO_POOL
                  dispatch: parallel chunks on libdispatch instead of the spinning
                  pool (spin, the default; timing comparisons; same results)
              PROMPTREPRO_BF16_KERNEL
                  avx512_bf16 | amx_bf16: the kernel of the opt-in `--precision bf16`
                  products (default: AMX where the CPU has it, else AVX512-BF16)
              PROMPTREPRO_DECODE_GROUP_ROWS
                  rows per thread from which greedy decoding runs one group per
                  thread (0: never; same results)
              PROMPTREPRO_GIT_COMMIT
                  the commit recorded with each run (default: the checkout's git
                  HEAD; a sweep hands its own to its workers)
            Results are bit-identical for a given seed, thread count, GEMM kernel and
            OpenBLAS release and core (each recorded with every run).
            """,
        subcommands: [Sweep.self, WorkerCommand.self, Shard.self, Merge.self, Results.self, Report.self, FiguresCommand.self, CompareCommand.self, Export.self, ExportAdapter.self, EvalCommand.self, LossCurvesCommand.self, StepsCommand.self, Train.self, Info.self, Forward.self, Tokenize.self, Params.self, Score.self, Sample.self, DataCommand.self, Bench.self, BenchE2E.self, Calibrate.self, BenchGemm.self, BenchOne.self, ExportEmbedded.self])

    /// The environment is read here, once, and handed to the libraries as typed settings.
    static func main() {
        do { try Environment.apply() } catch {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            Foundation.exit(2)
        }
        // As ArgumentParser's main, except that an argument error thrown by a subcommand's run()
        // shows that subcommand's usage (ArgumentParser shows the root's there:
        // "Usage: promptrepro <subcommand>").
        var command: ParsableCommand
        do { command = try parseAsRoot(nil) } catch { exit(withError: error) }
        for line in repeatedOptionWarnings(Array(CommandLine.arguments.dropFirst())) { FileHandle.standardError.write(Data((line + "\n").utf8)) }
        do { try command.run() } catch let e as ValidationError {
            let usage = usageString(for: type(of: command))
            // The command's path ("promptrepro data verify"): the usage's leading words.
            let path = usage.split(separator: " ").prefix { !["[", "<", "-"].contains($0.first ?? "-") }.joined(separator: " ")
            FileHandle.standardError.write(Data("Error: \(e.message)\nUsage: \(usage)\n  See '\(path) --help' for more information.\n".utf8))
            Foundation.exit(ExitCode.validationFailure.rawValue)
        } catch let e as CocoaError where (e as NSError).userInfo[NSFilePathErrorKey] is String || (e as NSError).userInfo[NSURLErrorKey] is URL {
            // A file Foundation could not read or write (`--out` into a folder that does not
            // exist): the path and the reason, not the NSError dump. (Other Foundation errors,
            // a JSON parse among them, keep their full description below.)
            let ns = e as NSError
            let path = ns.userInfo[NSFilePathErrorKey] as? String ?? (ns.userInfo[NSURLErrorKey] as? URL)?.path ?? ""
            let dir = (path as NSString).deletingLastPathComponent
            var isDir: ObjCBool = false
            let hint = dir.isEmpty ? "" : !FileManager.default.fileExists(atPath: dir, isDirectory: &isDir) ? " (its folder \(dir) does not exist)"
                : !isDir.boolValue ? " (\(dir) is not a folder)" : ""
            FileHandle.standardError.write(Data("Error: \(path): \(ns.localizedDescription)\(hint)\n".utf8))
            Foundation.exit(1)
        } catch {
            exit(withError: error)
        }
    }
}

/// Options given more than once (ArgumentParser keeps the last value silently: `--lr 0.3 …
/// --lr 0.03` trained at 0.03 without a word), one warning line each. Repeatable options
/// (`--skip-model`) and words after `--` are not counted.
func repeatedOptionWarnings(_ args: [String], repeatable: Set<String> = ["skip-model"]) -> [String] {
    var counts: [String: Int] = [:], order: [String] = []
    for a in args.prefix(while: { $0 != "--" }) where a.hasPrefix("--") && a.count > 2 {
        let name = String(a.dropFirst(2).prefix { $0 != "=" })
        guard !repeatable.contains(name) else { continue }
        if counts[name] == nil { order.append(name) }
        counts[name, default: 0] += 1
    }
    return order.filter { counts[$0]! > 1 }.map { "warning: --\($0) given \(counts[$0]!) times; the last one is used" }
}

/// A command that cannot do its work for a reason other than its arguments: a file missing or
/// malformed, a store without the runs asked for, a child process that failed. Printed as
/// "Error: MESSAGE" with exit status 1, without the usage block ArgumentParser adds to a
/// `ValidationError` (which pointed at the arguments when the problem was a file).
struct CommandFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// The environment variables `promptrepro --help` lists, parsed into the libraries' settings.
enum Environment {
    /// The process environment without empty values: an empty variable means its default, for
    /// every variable (`PROMPTREPRO_CACHE=` made the calibration file relative to the working
    /// directory and the embedded backbones go to /embedded). Child processes (sweep workers)
    /// start with this environment.
    static let values = ProcessInfo.processInfo.environment.filter { !$0.value.isEmpty }
    /// PROMPTREPRO_DATA (a directory named here must exist).
    static var dataDir: String? { values["PROMPTREPRO_DATA"] }

    static func apply() throws {
        if let g = values["PROMPTREPRO_GEMM"] {
            do { BLAS.kernel = try BLAS.kernel(named: g) } catch { throw ValidationError("PROMPTREPRO_GEMM=\(g): \(error)") }
        }
        if let c = values["PROMPTREPRO_CHECKPOINT"] {
            do { T5Model.checkpointSetting = try T5Model.checkpointSublayers(c) } catch { throw ValidationError("PROMPTREPRO_CHECKPOINT=\(c): \(error)") }
        }
        // `values` holds no empty value: an empty variable is its default (a template's
        // PROMPTREPRO_THREADS=${N:-} was refused).
        if let p = values["PROMPTREPRO_PACK_FROZEN"] {
            guard p == "0" || p == "1" else { throw ValidationError("PROMPTREPRO_PACK_FROZEN=\(p): use 0 or 1") }
            FrozenOperands.isEnabled = p == "1"
        }
        if let t = values["PROMPTREPRO_THREADS"] {
            guard let n = Int(t), n > 0 else { throw ValidationError("PROMPTREPRO_THREADS=\(t): not a positive integer") }
            guard n <= Parallel.maxThreads else { throw ValidationError("PROMPTREPRO_THREADS=\(t): at most \(Parallel.maxThreads) (the thread pool's size)") }
            Parallel.preferredThreads = n
        }
        // Settings of timing-only code and of the opt-in bf16 mode: a value they do not know was
        // ignored without a word (amx_bf16 on a CPU without AMX ran the other kernel, other bits).
        if let v = values["PROMPTREPRO_BF16_KERNEL"] {
            guard let k = BF16Products.Kernel(rawValue: v) else {
                throw ValidationError("PROMPTREPRO_BF16_KERNEL=\(v): use \(BF16Products.Kernel.allCases.map(\.rawValue).joined(separator: " or "))")
            }
            // bf16 is opt-in: a kernel this CPU lacks (one environment for nodes of several CPU
            // types) is said, and the fp32 work goes on; `--precision bf16` then runs the default.
            if !BF16Products.availableKernels.contains(k) {
                FileHandle.standardError.write(Data(("warning: PROMPTREPRO_BF16_KERNEL=\(v): this CPU runs " + (BF16Products.availableKernels.isEmpty
                    ? "no bf16 kernel (no AVX512-BF16)" : BF16Products.availableKernels.map(\.rawValue).joined(separator: ", ")) + "; ignored\n").utf8))
            }
        }
        if let v = values["PROMPTREPRO_DECODE_GROUP_ROWS"], (Int(v) ?? -1) < 0 {
            throw ValidationError("PROMPTREPRO_DECODE_GROUP_ROWS=\(v): not a non-negative integer")
        }
        if let v = values["PROMPTREPRO_POOL"], !["dispatch", "spin"].contains(v) {
            throw ValidationError("PROMPTREPRO_POOL=\(v): use dispatch (libdispatch) or spin (the default spinning pool)")
        }
        EmbeddedBackbones.cacheRoot = values["PROMPTREPRO_CACHE"]
        ModelFiles.environment = values
        // This host's `promptrepro calibrate` choice, unless a kernel is named.
        switch values["PROMPTREPRO_CALIBRATION"] {
        case "off": break
        // PROMPTREPRO_GEMM=auto (or empty) is the default: the calibration applies as when unset.
        case nil, "on": if values["PROMPTREPRO_GEMM"] ?? "auto" == "auto" { Calibrate.applyCached() }
        case let v?: throw ValidationError("PROMPTREPRO_CALIBRATION=\(v): use on or off")
        }
    }
}
