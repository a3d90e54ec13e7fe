import ArgumentParser
import Foundation
import Reports
import Store

struct LossCurvesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "loss-curves",
        abstract: "Training-loss curves per cell (mean and min–max over seeds, from the per-step log) into Reports/loss-curves/<spec>-<profile>/.")
    @Argument(help: "Spec name.") var spec: String
    @OptionGroup var selection: StoreSelection
    var db: String { selection.db }
    var profile: String { selection.profile }
    @Option(help: "Output directory (default: Reports/loss-curves/<spec>-<profile>).") var outDir: String?

    func run() throws {
        guard FileManager.default.fileExists(atPath: db) else { throw ValidationError("\(db): no results store (run `promptrepro sweep \(spec)` first)") }
        let rows = try LossCurves.rows(try ResultsStore(path: db), spec: spec, profile: profile)
        guard !rows.isEmpty else { throw ValidationError("no logged steps of spec \(spec) [\(profile)] in \(db) (runs made before the step log have none: rerun them)") }
        let out = try LossCurves.render(rows, spec: spec, profile: profile, outDir: outDir ?? "Reports/loss-curves/\(spec)-\(profile)")
        stderr("wrote \(out.count) loss-curve figures under \(outDir ?? "Reports/loss-curves/\(spec)-\(profile)")")
    }
}

struct StepsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "steps",
        abstract: "The per-step training log of a spec's runs as CSV or JSON Lines (pandas.read_csv / read_json(lines=True)).")
    @Argument(help: "Spec name.") var spec: String
    @OptionGroup var selection: StoreSelection
    var db: String { selection.db }
    var profile: String { selection.profile }
    @Option(help: "csv or jsonl.") var format: String = "csv"
    @Option(help: "Write here instead of stdout.") var out: String?

    func run() throws {
        guard FileManager.default.fileExists(atPath: db) else { throw ValidationError("\(db): no results store") }
        let rows = try LossCurves.rows(try ResultsStore(path: db), spec: spec, profile: profile)
        let text: String
        switch format {
        case "csv": text = LossCurves.csv(rows)
        case "jsonl": text = try LossCurves.jsonl(rows)
        default: throw ValidationError("unknown format '\(format)' (csv, jsonl)")
        }
        if let out { try text.write(toFile: out, atomically: true, encoding: .utf8) } else { print(text, terminator: "") }
    }
}
