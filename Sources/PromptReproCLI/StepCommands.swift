import ArgumentParser
import Foundation
import Harness
import Reports
import Store
import Tasks

struct LossCurvesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "loss-curves",
        abstract: "Training-loss curves per cell (mean and min–max over seeds, from the per-step log) into Reports/loss-curves/<spec>-<profile>/.")
    @Argument(help: "Spec name (Baselines/specs) or a spec file's path.") var spec: String
    @OptionGroup var selection: StoreSelection
    var db: String { selection.db }
    var profile: String { selection.profile }
    @Option(help: "Output directory (default: Reports/loss-curves/<spec>-<profile>).") var outDir: String?

    func run() throws {
        guard FileManager.default.fileExists(atPath: db) else { throw CommandFailure("\(db): no results store (run `promptrepro sweep \(spec)` first)") }
        let (name, rows) = try plannedStepRows(try ResultsStore.forReading(path: db), spec: spec, profile: profile)
        let spec = name
        guard !rows.isEmpty else { throw CommandFailure("no logged steps of spec \(spec) [\(profile)] in \(db) (runs made before the step log have none: rerun them)") }
        let dir = outDir ?? ProjectRoot.resolve("Reports/loss-curves/\(spec)-\(profile)")  // the checkout's by default
        let out = try LossCurves.render(rows, spec: spec, profile: profile, outDir: dir)
        stderr("wrote \(out.count) loss-curve figures under \(dir)")
    }
}

struct StepsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "steps",
        abstract: "The per-step training log of a spec's runs as CSV or JSON Lines (pandas.read_csv / read_json(lines=True)).")
    @Argument(help: "Spec name (Baselines/specs) or a spec file's path.") var spec: String
    @OptionGroup var selection: StoreSelection
    var db: String { selection.db }
    var profile: String { selection.profile }
    @Option(help: "csv or jsonl.") var format: String = "csv"
    @Option(help: "Write here instead of stdout.") var out: String?

    func run() throws {
        guard FileManager.default.fileExists(atPath: db) else { throw CommandFailure("\(db): no results store") }
        let rows = try plannedStepRows(try ResultsStore.forReading(path: db), spec: spec, profile: profile).rows
        let text: String
        switch format {
        case "csv": text = LossCurves.csv(rows)
        case "jsonl": text = try LossCurves.jsonl(rows)
        default: throw ValidationError("unknown format '\(format)' (csv, jsonl)")
        }
        if let out { try text.write(toFile: out, atomically: true, encoding: .utf8) } else { print(text, terminator: "") }
    }
}

/// The step log of the runs `spec` (a name or a spec file's path) plans now, and the spec's name;
/// the runs left out are named on stderr (as `results` does).
func plannedStepRows(_ store: ResultsStore, spec: String, profile: String) throws -> (name: String, rows: [StepRow]) {
    let data = try? DataFiles.directory(nil, environmentDir: Environment.dataDir, defaultDir: ProjectRoot.resolve("data"))
    let current = try currentPlan(spec: spec, profile: profile, store: store, dataDir: data)
    // Seeds whose per-step losses come from other kernels or thread counts (the curves average
    // them): said as every other read says it.
    if let note = mixedNumericsNote(try store.mixedNumerics(spec: current?.name ?? spec, profile: profile, planned: current?.plan, statuses: ["done"])) {
        stderr("note: " + note)
    }
    guard let (name, plan) = current else {
        return (spec, try LossCurves.rows(store, spec: spec, profile: profile))
    }
    if let note = staleRunsNote(try store.staleRuns(spec: name, profile: profile, planned: plan), spec: name, profile: profile, given: spec) { stderr(note) }
    return (name, try LossCurves.rows(store, spec: name, profile: profile, planned: plan))
}
