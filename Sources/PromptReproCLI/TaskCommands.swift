import ArgumentParser
import Foundation
import Support
import Tasks

struct Score: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Score a predictions file with the task's official metrics (percent).",
        discussion: """
        Each line of PREDICTIONS is {"idx": <official idx; MultiRC {"paragraph","question","answer"}, ReCoRD {"passage","query"}>,
        "prediction": "<decoded text>"}; every validation row needs exactly one line. Prints one JSON object.
        """)
    @Option(help: "Task: \(TaskRegistry.names.joined(separator: ", ")).") var task: String
    @Option(help: "JSONL predictions file.") var predictions: String
    @Option(help: "Data directory (default: PROMPTREPRO_DATA or data/).") var dataDir: String?
    @Option(help: "Template set the predictions' label words come from (dpt, dept, respt, lopt; default dpt).") var templates: String?

    func run() throws {
        let def = try TaskRegistry.definition(task)
        let name = templates ?? TemplateSet.dpt.rawValue
        guard let set = TemplateSet(rawValue: name) else {
            throw ValidationError("unknown template set '\(name)' (\(TemplateSet.allCases.map(\.rawValue).joined(separator: ", ")))\(didYouMean(name, TemplateSet.allCases.map(\.rawValue)))")
        }
        let data = try DataLoader.load(def, split: .validation, dataDir: try DataFiles.directory(dataDir, environmentDir: Environment.dataDir, defaultDir: ProjectRoot.resolve("data")))
        let (examples, preds) = try Metrics.predictionsFile(def, data: data, predictionsPath: predictions, set: set)
        // A prediction that names no label of the set scores as invalid (each metric's rule). When
        // another set reads more of them as labels, the file is most likely in that set's words:
        // without --templates that is an error (never a silent score of invalid outputs), with it a note.
        // A set whose targets are generated text (WSC's referent) has no label table to check with:
        // a file that another set reads entirely as its labels is that set's ("0"/"1" scored 63.46
        // as referents, silently).
        // Per template set, the predictions that name none of its labels (nil: generated targets).
        let unlabelled = Dictionary(uniqueKeysWithValues: TemplateSet.allCases.map { ($0, Metrics.unlabelled(def, set: $0, predictions: preds)) })
        if unlabelled[set]! == nil,
           let other = TemplateSet.allCases.first(where: { $0 != set && unlabelled[$0]! == 0 }) {
            let text = "\(predictions): every prediction is a label of \(task)'s template set '\(other.rawValue)', while '\(set.rawValue)' targets generated text: pass --templates \(other.rawValue)"
            if templates == nil { throw CommandFailure(text + " (nothing scored)") }
            stderr("note: " + text)
        }
        if let invalid = unlabelled[set]!, invalid > 0 {
            let labels = (try? def.template(set).verbalizer(labels: def.labels)).flatMap { $0 }?.joined(separator: ", ") ?? ""
            var text = "\(predictions): \(invalid) of \(preds.count) predictions name no label of \(task)'s template set '\(set.rawValue)' (\(labels)) and score as invalid"
            let better = TemplateSet.allCases.filter { $0 != set }
                .compactMap { s in unlabelled[s]!.map { (s, $0) } }
                .filter { $0.1 < invalid }.min { $0.1 < $1.1 }
            if let (s, n) = better {
                text += "; template set '\(s.rawValue)' reads \(preds.count - n) of them as labels: pass --templates \(s.rawValue)"
                if templates == nil { throw CommandFailure(text + " (nothing scored)") }
            }
            stderr("note: " + text)
        }
        let scores = try Metrics.score(def, set: set, examples: examples, predictions: preds)
        try writeJSON(scores, to: nil)
    }
}

struct Sample: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Draw few-shot training samples and write manifests (identical for every method).")
    @Option(help: "Comma-separated tasks, or `all`.") var task: String
    @Option(help: "Comma-separated sample sizes.") var k: String = "8,16,32"
    @Option(help: "Comma-separated seeds.") var seeds: String = "1,2,3"
    @Option(help: "Data directory (default: PROMPTREPRO_DATA or data/).") var dataDir: String?
    @Option(name: .customLong("out"), help: "Output directory (default: Baselines/manifests in the checkout).") var outGiven: String?
    var out: String { outGiven ?? ProjectRoot.resolve("Baselines/manifests") }
    @Option(help: "Sampler: uniform (the papers') or balanced (k/C rows per class; written as <task>-k<k>-s<seed>-balanced.json).")
    var sampler: String = "uniform"

    func run() throws {
        guard let kind = SamplerKind(rawValue: sampler) else {
            throw ValidationError("unknown sampler '\(sampler)'\(didYouMean(sampler, SamplerKind.allCases.map(\.rawValue)))")
        }
        let tasks = task == "all" ? TaskRegistry.names : task.split(separator: ",").map(String.init)
        let ks = try k.split(separator: ",").map { guard let v = Int($0) else { throw ValidationError("bad k '\($0)'") }; return v }
        let ss = try seeds.split(separator: ",").map { guard let v = Int($0) else { throw ValidationError("bad seed '\($0)'") }; return v }
        let dir = try DataFiles.directory(dataDir, environmentDir: Environment.dataDir, defaultDir: ProjectRoot.resolve("data"))
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        for t in tasks {
            let data = try DataLoader.load(try TaskRegistry.definition(t), split: .train, dataDir: dir)
            for kk in ks {
                for s in ss {
                    let m = try FewShotSampler.sample(data, k: kk, seed: s, sampler: kind)
                    try m.encoded().write(to: URL(fileURLWithPath: "\(out)/\(m.fileName)"), options: .atomic)
                    print("\(out)/\(m.fileName)  \(data.relativePath)\(data.isSubset ? " (subset of the official split)" : "")")
                }
            }
        }
    }
}

struct DataCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "data", abstract: "Pin and verify data files (Baselines/data.lock).",
        subcommands: [Lock.self, Verify.self])

    struct Lock: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print '<sha256>  <path>' for every data file (redirect into Baselines/data.lock).")
        @Option(help: "Data directory.") var dataDir: String?
        func run() throws {
            let dir = try DataFiles.directory(dataDir, environmentDir: Environment.dataDir, defaultDir: ProjectRoot.resolve("data"))
            print("# PromptRepro data lock: sha256 of every data file, relative to the data directory.")
            print("# Made with `promptrepro data lock`; checked by runs (refused unless --allow-unpinned) and `make fetch-data`.")
            for (rel, sha) in try DataFiles.hashes(under: dir) { print("\(sha)  \(rel)") }
        }
    }

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Check every pinned file present in the data directory; list missing ones.")
        @Option(help: "Data directory.") var dataDir: String?
        @Option(name: .customLong("lock"), help: "Lock file (default: Baselines/data.lock in the checkout).") var lockGiven: String?
        var lock: String { lockGiven ?? ProjectRoot.resolve("Baselines/data.lock") }
        func run() throws {
            let dir = try DataFiles.directory(dataDir, environmentDir: Environment.dataDir, defaultDir: ProjectRoot.resolve("data"))
            let l = try DataFiles.Lock.load(path: lock)
            var bad = 0, missing = 0, ok = 0
            for (rel, pin) in l.entries.sorted(by: { $0.key < $1.key }) {
                let p = (dir as NSString).appendingPathComponent(rel)
                guard FileManager.default.fileExists(atPath: p) else { print("missing   \(rel)"); missing += 1; continue }
                let sha = try SHA256.hex(file: p)
                if sha == pin { ok += 1 } else { print("MISMATCH  \(rel)  \(sha) (pinned \(pin))"); bad += 1 }
            }
            print("data verify: \(ok) ok, \(bad) mismatched, \(missing) missing (\(dir) against \(lock))")
            if bad > 0 { throw ExitCode(1) }
        }
    }
}
