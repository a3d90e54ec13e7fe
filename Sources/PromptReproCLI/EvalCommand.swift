import ArgumentParser
import Foundation
import Harness
import Methods
import Models
import Store
import Support
import Tasks
import Tensor
import Training

struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Evaluate a PEFT adapter trained elsewhere on a task's validation split; store it as an 'evaluated' run.",
        discussion: """
        The adapter (PROMPT_TUNING or LORA, see `forward --adapter`) is scored with the task's official metrics under the
        chosen template set, exactly as trained runs are. With --db the run is stored (status evaluated, the adapter's
        sha256 as provenance) under --spec / --variant, so `results`, `compare` and `report` treat it like a trained run:
        e.g. `eval --spec table1 --variant peft-pt --model t5-small` sits beside table1's trained cells.
        """)
    @Option(help: "Model directory, hub id, or embedded:NAME (the adapter's base model).") var model: String
    @Option(help: "PEFT adapter directory.") var adapter: String
    @Option(help: "peft (PROMPT_TUNING, LORA, or DePT's PROMPT_TUNING_LORA, read from adapter_config.json) or dept (require DePT's).") var adapterFormat: String = "peft"
    @Option(help: "Task: \(TaskRegistry.names.joined(separator: ", ")).") var task: String
    @Option(parsing: .unconditional, help: "Few-shot size of the training sample the adapter saw (recorded; selects the run's cell; default: the training run's, from promptrepro_run_config.json, else the preset's).") var k: Int?
    @Option(parsing: .unconditional, help: "Seed of that sample (recorded; pairs the run with trained runs of the same seed; default: the training run's, from promptrepro_run_config.json, else 1).") var seed: Int?
    @Option(help: "Templates: dpt, dept, respt, lopt (default: the protocol's).") var templates: String?
    @Option(name: .customLong("protocol"), help: "Preset whose evaluation settings apply (default: dpt-paper; lopt-paper on GPT-2).") var protocolName: String?
    @Option(parsing: .unconditional, help: "Evaluate on the first N validation examples only (default: the training run's eval_limit, from promptrepro_run_config.json, else all).") var evalLimit: Int?
    @Option(parsing: .unconditional, help: "Input length in tokens (default: the training run's, from the adapter's promptrepro_run_config.json when `train --save-adapter` or `export-adapter` wrote it, else the preset's).")
    var maxSourceLength: Int?
    @Option(parsing: .unconditional, help: "Target length in tokens (default: as --max-source-length).") var maxTargetLength: Int?
    @Option(parsing: .unconditional, help: "Greedy decoding cap in new tokens, or auto: the longest label target in tokens + 1 (default: max target length).") var decodeMaxTokens: DecodeLimit?
    @Option(help: "When greedy decoding ends a row: no-label (default; at </s> or once the text can no longer be read back as a label: the same scores as eos, invalid outputs kept up to the deciding token) or eos (at </s> or the cap only, as the papers' code).")
    var decodeStop: String?
    @Option(help: "How outputs are scored: generate (greedy decoding, default) or rank (T5: the label whose target has the lowest loss). Default: the training run's, from promptrepro_run_config.json.")
    var evalMode: String?
    @Option(help: "Data directory (default: PROMPTREPRO_DATA or data/).") var dataDir: String?
    @Option(help: "Store the run in this SQLite store.") var db: String?
    @Option(help: "Spec the run is stored under: a name, or a spec file's path (stored under the name it declares).") var spec: String = "adapters"
    @Option(help: "Variant (row) name (default: the adapter directory's name).") var variant: String?
    @Option(help: "Model column name (default: the spec's column that loads --model in this profile, else --model).") var column: String?
    @Flag(help: "With --db: replace an evaluated run of an adapter at another path stored under the same variant, task, model, k and seed (refused otherwise).") var replace = false
    @Option(help: "Profile the run is stored under (default: smoke for an embedded: model, else cpu; an embedded model is refused under any other).") var profile: String?
    @OptionGroup var global: GlobalOptions

    func run() throws {
        let dir = URL(fileURLWithPath: adapter).standardizedFileURL.path
        let peftConfig = try checkAdapterFormat(adapterFormat, directory: dir)
        let weights = (dir as NSString).appendingPathComponent("adapter_model.safetensors")
        guard FileManager.default.fileExists(atPath: weights) else {
            throw CommandFailure("\(adapter): no adapter_model.safetensors (a PEFT adapter directory; pickled .bin adapters are not read)")
        }
        let sha = try SHA256.hex(file: weights)
        let isGPT2 = ModelFiles.isGPT2(model)
        var mc = try MethodConfig.defaults("pt")
        mc.method = "peft-adapter"
        // The stored run describes the adapter's shape, not the PT preset's (its config is what
        // `results`, the exports and the run's identity show of it).
        adapterShape(peftConfig, into: &mc)
        // An adapter PromptRepro trained carries its run's settings: the inputs are built as in
        // training (lengths, templates) unless a flag says otherwise, and the run is stored under
        // the training run's seed and k (a flag that names others is refused).
        let runConfig = (dir as NSString).appendingPathComponent(AdapterExport.runConfigFile)
        var trainedRun: TrainConfig?
        if let data = FileManager.default.contents(atPath: runConfig) {
            guard let trained = try? JSONDecoder().decode(TrainConfig.self, from: data) else {
                throw CommandFailure("\(runConfig): not a PromptRepro run config; remove it or pass --max-source-length, --max-target-length and --templates")
            }
            if let stale = try staleRunConfig(trained, data: data, adapterSha256: sha, directory: dir) {
                throw CommandFailure("\(runConfig): \(stale): it belongs to another adapter (one saved into this directory since?); remove it to evaluate with the preset's settings and the flags")
            }
            if let seed, seed != trained.seed {
                throw ValidationError("--seed \(seed): the adapter was trained with seed \(trained.seed) (\(runConfig)); its run pairs with that seed's runs")
            }
            if let k, k != trained.k {
                throw ValidationError("--k \(k): the adapter was trained on k = \(trained.k.map(String.init) ?? "the full split") (\(runConfig))")
            }
            // Scoring a prompt on another task is a transfer, not the run's result: said, since the
            // recorded k and seed are of the training task's sample (a stored run pairs by them).
            // Stored, it counted as a run of the other task and paired with that task's runs of
            // the seed (a review's gate trial): refused with --db.
            if trained.task != task, db != nil {
                throw ValidationError("--task \(task): the adapter was trained on \(trained.task) (\(runConfig)); scored on \(task) it is a transfer, not a \(task) run "
                    + "(its k and seed are those of its \(trained.task) sample), so it is not stored: score it without --db")
            }
            if trained.task != task {
                stderr("warning: the adapter was trained on task \(trained.task) (\(runConfig)) and is scored on \(task): a transfer; "
                    + "its k and seed are those of its \(trained.task) sample")
            }
            trainedRun = trained
        }
        let seed = self.seed ?? trainedRun?.seed ?? 1
        let k = self.k ?? trainedRun?.k
        var c = try TrainConfig.preset(protocolName ?? (isGPT2 ? "lopt-paper" : "dpt-paper"), method: mc, task: task, model: model, k: k, seed: seed)
        // The few-shot sample the run trained on (its seed and sampler when they differ from the
        // defaults): stored without them, an adapter trained on sample 2 paired with the runs of
        // sample 1 (a review's gate trial).
        c.sampleSeed = trainedRun?.sampleSeed
        c.sampler = trainedRun?.sampler
        // respt-code cuts prompt and text to 512 together: the adapter's prompt rows (the preset
        // cannot tell them from a "peft-adapter" method config).
        if c.protocolName == "respt-code" { c.maxSourceLength = 512 - (peftConfig.numVirtualTokens ?? 0) }
        // A transfer keeps the training run's input length unless a flag says otherwise: said where
        // the scored task's preset cuts its inputs elsewhere (an SST-2 prompt scored on AG News
        // cut its texts at SST-2's 128 where LoPT uses 256).
        if let trained = trainedRun, trained.task != task, maxSourceLength == nil,
           let own = try? TrainConfig.preset(trained.protocolName, method: mc, task: task, model: model, k: k, seed: seed),
           trained.maxSourceLength != own.maxSourceLength {
            // The scored task's length under the training run's own preset (respt-code's 412 is
            // every task's there, where dpt-paper's would be 256).
            stderr("note: the transfer cuts \(task)'s inputs at the training run's max_source_length \(trained.maxSourceLength); \(task)'s runs under \(trained.protocolName) use \(own.maxSourceLength) (--max-source-length \(own.maxSourceLength) to score as they do)")
        }
        if let trained = trainedRun {
            c.maxSourceLength = trained.maxSourceLength
            c.maxTargetLength = trained.maxTargetLength
            c.templates = trained.templates
            // How the run scored its outputs: rank classification or greedy decoding, and the decode's cap and stop rule.
            c.evalMode = trained.evalMode
            c.decodeMaxTokens = trained.decodeMaxTokens
            c.decodeStop = trained.decodeStop
        }
        if let templates {
            guard let t = TemplateSet(rawValue: templates) else { throw ValidationError("unknown templates '\(templates)' (\(TemplateSet.allCases.map(\.rawValue).joined(separator: ", ")))\(didYouMean(templates, TemplateSet.allCases.map(\.rawValue)))") }
            c.templates = t
        }
        if let maxSourceLength { c.maxSourceLength = maxSourceLength }
        if let maxTargetLength { c.maxTargetLength = maxTargetLength }
        // The examples the run scored: its eval_limit unless the flag says otherwise (the whole
        // split once scored 36.10 where the run's first 64 rows gave 35.94).
        c.evalLimit = evalLimit ?? trainedRun?.evalLimit
        c.decodeMaxTokens = decodeMaxTokens ?? c.decodeMaxTokens
        if let decodeStop { c.decodeStop = try choice("decode-stop", decodeStop, DecodeStop.self) }
        // GPT-2 ranks the verbaliser's words whatever these say (an eval mode was replaced in silence).
        if let e = gpt2ScoringFlagsProblem(evalMode: evalMode, maxTargetLength: maxTargetLength, gpt2: isGPT2) { throw e }
        if let evalMode { c.evalMode = try choice("eval-mode", evalMode, EvalMode.self) }
        c.threads = global.threads
        // The settings the evaluation runs with, after the flags (it printed the run config's,
        // which the flags had overridden). GPT-2 ranks the verbaliser's words: no decode applies.
        let decode = isGPT2 ? "eval_mode rank (GPT-2: the verbaliser's words)"
            : "eval_mode \(c.evalMode?.rawValue ?? "generate"), decode_max_tokens \(c.decodeMaxTokens?.description ?? "max target length"), decode_stop \(c.decodeStop?.rawValue ?? "default")"
        stderr("eval: max_source_length \(c.maxSourceLength), max_target_length \(c.maxTargetLength), templates \(c.templates.rawValue), \(decode), eval_limit \(c.evalLimit.map(String.init) ?? "none")"
               + (trainedRun != nil ? " (the training run's \(runConfig) where no flag is given)" : ""))
        // The adapter's config too: use_rslora, rank_pattern/alpha_pattern, target_modules or
        // layers_to_transform edited in place change every number while the tensors stay the same.
        let configSha = try SHA256.hex(file: (dir as NSString).appendingPathComponent("adapter_config.json"))
        c.adapter = "\(dir)#sha256:\(sha)#adapter_config:\(configSha)"
        if let e = flagProblem(c) ?? decodeFlagsProblem(decodeMaxTokens: decodeMaxTokens, decodeStop: decodeStop, mode: c.evalMode, gpt2: isGPT2) { throw e }
        let data = try DataFiles.directory(dataDir, environmentDir: Environment.dataDir, defaultDir: ProjectRoot.resolve("data"))
        // A GPT-2 prompt adapter's rows come before the text in n_positions: counted here, where
        // the adapter is known (the generic check counted none for an adapter and advised a
        // max_source_length that still did not fit).
        if isGPT2, let n = peftConfig.numVirtualTokens, n > 0, let mdir = try? ModelFiles.locate(model) {
            let cfgPath = (mdir as NSString).appendingPathComponent("config.json")
            if case .gpt2(let g)? = try? ModelConfig.load(path: cfgPath), n + c.maxSourceLength > g.nPositions {
                throw CommandFailure("\(cfgPath): n_positions is \(g.nPositions), while the adapter's num_virtual_tokens \(n) (prompt rows) + max_source_length \(c.maxSourceLength) = \(n + c.maxSourceLength) positions; "
                    + (n < g.nPositions ? "pass --max-source-length \(g.nPositions - n) or less" : "the prompt alone fills them"))
            }
        }
        // The stored run, checked before evaluating: a cell of a sweep is refused up front rather
        // than after a long evaluation.
        var stored: (store: ResultsStore, run: RunSpec, newStore: Bool)?
        // An embedded backbone has random weights: its runs are smoke runs, never another profile's.
        let embedded = model.hasPrefix("embedded:")
        let profile = self.profile ?? (embedded ? "smoke" : "cpu")
        if let db {
            if embedded && profile != "smoke" {
                throw ValidationError("--profile \(profile): \(model) is a random-weight smoke backbone; its runs are stored under profile smoke")
            }
            let name = variant ?? URL(fileURLWithPath: dir).lastPathComponent
            // As a spec's method names: "|" and "#" separate the parts of cell names and run keys,
            // "@" names a search's grid points.
            if let bad = name.first(where: RunSpec.reservedInVariant.contains) {
                throw ValidationError("variant '\(name)'\(variant == nil ? " (the adapter directory's name)" : ""): '\(bad)' is reserved in variant names; pass --variant NAME without |, # or @")
            }
            if let c = column, let bad = c.first(where: RunSpec.reservedInColumn.contains) {
                throw ValidationError("--column '\(c)': '\(bad)' is reserved in model columns (it separates the parts of cell names and run keys)")
            }
            // A spec given by its file's path is stored under the name the file declares, as
            // `sweep`, `results` and `compare` read it (the path itself was stored as the name, and
            // `compare --spec FILE` found no run of the variant).
            // A name whose file under Baselines/specs declares another `spec:` is read so too.
            let specsDir = ProjectRoot.resolve("Baselines/specs")
            // A .yaml path must be there (a typo stored the run under the path as its spec name);
            // a bare name without a file is a spec of evaluated adapters only ("adapters").
            let specFile = spec.hasSuffix(".yaml") || FileManager.default.fileExists(atPath: ExperimentSpec.path(of: spec, specsDir: specsDir))
                ? try ExperimentSpec.load(spec, specsDir: specsDir) : nil
            let specName = specFile?.name ?? spec
            // A variant the spec trains is its sweep's: an adapter stored there stood in for the
            // planned runs (the gate passed on the baseline's adapters stored as the new method's),
            // whatever method trained it. Reads leave such runs out too.
            if let s = specFile, let planned = s.variants.first(where: { $0.name == name }) {
                throw ValidationError("--variant \(name): spec \(s.name) trains this variant (method \(planned.method)\(planned.searchFor.map { ", a point of the search for \($0)" } ?? "")); "
                    + "an evaluated adapter is stored under a variant of its own (e.g. --variant peft-\(name)), which compare pairs with the trained runs")
            }
            // A name with '/' that is no file reads as a missing spec path everywhere else
            // (`results team/adapters`: "no such spec file"): refused here, before anything is stored.
            if specFile == nil && spec.contains("/") {
                throw ValidationError("--spec \(spec): no such spec file; a spec name without a file (runs of evaluated adapters only) may not contain '/'")
            }
            if specFile == nil && spec != "adapters" {
                stderr("note: no spec file \(ExperimentSpec.path(of: spec, specsDir: specsDir)): the run is stored under spec '\(spec)', which no sweep plans")
            }
            // The model column: --column, else the spec's column this profile loads --model for
            // (the run was stored under the column "embedded:gpt2-tiny", no column of the spec,
            // and `compare` found it missing).
            var col = column ?? model
            // The checkpoint the chosen column loads, where it is not --model by name: checked
            // below, once the store is open, to be the same weights.
            var columnLoads: String?
            if let s = specFile {
                // The profile's columns (a profile may run a subset) and what each loads; a
                // profile the spec does not list runs every column as itself.
                let p = s.profiles[profile]
                let run = p.map(s.columns) ?? s.models
                let loads = { (c: String) in p?.models?[c] ?? c }
                let columns = run.filter { loads($0) == model }
                if column == nil, columns.count == 1 {
                    col = columns[0]
                    stderr("eval: model column \(col) of spec \(s.name) [\(profile)], which loads \(model) (--column to choose another)")
                } else if !run.contains(col) {
                    stderr("warning: model column '\(col)' is not a column spec \(s.name) runs in profile \(profile) (\(run.joined(separator: ", "))): its runs pair with no run of the spec; pass --column")
                } else if loads(col) != model {
                    columnLoads = loads(col)
                }
            }
            // A --db that is not there: a new store, said so (a mistyped path stored the run in a
            // fresh store no read looked at); one whose folder is not there either is refused.
            let newStore = !FileManager.default.fileExists(atPath: db)
            if newStore {
                let folder = (db as NSString).deletingLastPathComponent
                if !folder.isEmpty && !FileManager.default.fileExists(atPath: folder) {
                    throw ValidationError("--db \(db): neither the store nor its folder \(folder) exists (a mistyped path?); create the folder to start a new store there")
                }
                stderr("note: \(db) does not exist: the run goes to a new store there")
            }
            // A new store is made only when the run is stored: the checks below run on an empty
            // one in memory (a refused or failed evaluation left an empty store file behind).
            let store = try ResultsStore(path: newStore ? ":memory:" : db)
            // An adapter scored on another base checkpoint than the column's runs is not stored
            // in that column: `compare` paired it with them example by example and the gate
            // passed (a 32-dim random T5 beside the smoke backbone). The same weights under
            // another name or path are.
            if let loads = columnLoads {
                func weights(_ spec: String) -> String? {
                    guard let dir = try? ModelFiles.locate(spec),
                          ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).contains(where: { $0.hasSuffix(".safetensors") }) else { return nil }
                    return try? store.weightsHash(directory: dir)
                }
                let theirs = weights(loads)
                if theirs == nil || theirs != weights(model) {
                    throw ValidationError("--model \(model): spec \(specName) [\(profile)] loads \(loads) for column \(col), "
                        + (theirs == nil ? "which is not here to compare weights with" : "whose weights differ")
                        + "; its runs would be paired with runs of another backbone. Pass --column NAME for a column of its own (it pairs with no run of the spec), or --model \(loads)")
                }
                stderr("eval: \(model) has the weights of \(loads), which column \(col) loads")
            }
            var r = RunSpec(spec: specName, profile: profile, cell: RunSpec.cellName(variant: name, task: task, model: col, k: k), variant: name,
                            method: "peft-adapter", task: task, model: col, modelSpec: model, k: k, seed: seed, sampleSeed: c.sampleSeed, config: c)
            r = try store.withIdentities([r], dataDir: data, manifestDir: ProjectRoot.resolve("Baselines/manifests"))[0]
            if let problem = try store.sweepRunHolding(r) { throw StoreError(problem) }
            if !replace, let problem = try store.otherAdapterHolding(r) { throw StoreError(problem) }
            if let problem = try store.sameAdapterOtherSeed(r, adapterSha256: sha) { throw StoreError(problem) }
            // The same adapter stored at this seed under another sample seed (by an `eval` from
            // before the run's sample seed was read): this evaluation replaces it.
            let replaced = try store.supersedeSameAdapterOtherSample(r, adapterSha256: sha)
            if replaced > 0 { stderr("eval: \(replaced) evaluated run\(replaced == 1 ? "" : "s") of this adapter at seed \(seed) under another sample seed go to history (the run trained on sample \(r.replicate.sampleSeed))") }
            stored = (store, r, newStore)
        }
        let trainer = Trainer(config: c, dataDir: data, manifestDir: ProjectRoot.resolve("Baselines/manifests")) { stderr($0) }
        trainer.lockPath = ProjectRoot.resolve("Baselines/data.lock")
        var result = try trainer.run()
        if let (checked, r, newStore) = stored, let db {
            let store = newStore ? try ResultsStore(path: db) : checked
            let id = try store.recordEvaluated(r, result: result, adapterSha256: sha, replacingOtherAdapter: replace,
                                               toolVersion: ToolInfo.versionString, threads: c.threads ?? Parallel.defaultThreadsValue,
                                               gitCommit: Environment.values["PROMPTREPRO_GIT_COMMIT"] ?? SweepRunner.gitCommit(in: ProjectRoot.path))
            stderr("stored run \(id) (\(r.cell), seed \(seed), evaluated) under spec \(r.spec) [\(r.profile)] in \(db)")
        }
        result.predictions = nil
        result.bestPredictions = nil
        print(result.json)
    }
}

/// An adapter's sizes as the method config records them, in the fields PromptRepro's own methods
/// use: PROMPT_TUNING's `num_virtual_tokens` as n; LORA's `r` and `lora_alpha` as r and alpha;
/// DePT's PROMPT_TUNING_LORA `num_virtual_tokens` as m (DePT's prompt length, METHODS.md), `r`,
/// `lora_alpha` and `max_length` as s. Fields the adapter does not have keep the preset's values.
func adapterShape(_ cfg: PEFTAdapterConfig, into mc: inout MethodConfig) {
    let dept = cfg.peftType == "PROMPT_TUNING_LORA"
    if let n = cfg.numVirtualTokens, n > 0 { if dept { mc.m = n } else { mc.n = n } }
    if let r = cfg.r, r > 0 { mc.r = r }
    if let a = cfg.loraAlpha { mc.alpha = Float(a) }
    if dept, let s = cfg.maxLength, s > 0 { mc.s = s }
}

/// Why a `promptrepro_run_config.json` beside an adapter is not that adapter's, or nil when it is:
/// its recorded `adapter_sha256` differs from the adapter's, or (configs written before the hash)
/// the adapter's num_virtual_tokens or LoRA r differs from the run's n or r.
func staleRunConfig(_ trained: TrainConfig, data: Data, adapterSha256: String, directory: String) throws -> String? {
    let obj = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
    if let recorded = obj[AdapterExport.runConfigAdapterKey] as? String {
        return recorded == adapterSha256 ? nil : "written with adapter sha256 \(recorded.prefix(12))…, while adapter_model.safetensors has \(adapterSha256.prefix(12))…"
    }
    let cfgPath = (directory as NSString).appendingPathComponent("adapter_config.json")
    guard let cfg = FileManager.default.contents(atPath: cfgPath).flatMap({ try? JSONSerialization.jsonObject(with: $0) as? [String: Any] }) else { return nil }
    if trained.method.method == "lora" {
        if let r = cfg["r"] as? Int, r != trained.method.r { return "the run's LoRA r is \(trained.method.r), the adapter's \(r)" }
    } else if let n = cfg["num_virtual_tokens"] as? Int, n != trained.method.n {
        return "the run's prompt has \(trained.method.n) tokens, the adapter's num_virtual_tokens \(n)"
    }
    return nil
}
