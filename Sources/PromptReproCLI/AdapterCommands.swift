import Support
import ArgumentParser
import Foundation
import Methods
import Models
import Tensor
import Training

/// PEFT adapter export of a PromptRepro run artifact (see docs/formats.md and PEFTAdapter).
enum AdapterExport {
    /// Why a method cannot be written as a PEFT adapter (nil: it can).
    static func refusal(_ method: String) -> String? {
        switch method {
        case "dept": return "DePT adds a position-indexed low-rank update to the input embeddings, for which PEFT has no adapter type; its prompt alone is not the trained model"
        case "ft": return "full fine-tuning has no adapter: the run's artifact is the whole model"
        default: return nil
        }
    }

    /// `base_model_name_or_path` for a run's model: a local directory as an absolute path (a
    /// relative one resolved only from the directory the run started in, so `AutoPeftModel`
    /// elsewhere could not find it), anything else (a hub id, `embedded:NAME`) as written.
    static func peftBaseModel(_ model: String) -> String {
        var isDir: ObjCBool = false
        guard !model.hasPrefix("embedded:"), FileManager.default.fileExists(atPath: model, isDirectory: &isDir), isDir.boolValue else { return model }
        return URL(fileURLWithPath: model).standardizedFileURL.path
    }

    /// The file beside an exported adapter that holds the training run's config (`TrainConfig` JSON).
    static let runConfigFile = "promptrepro_run_config.json"
    /// The run config's key for the sha256 of the adapter_model.safetensors it was written with.
    static let runConfigAdapterKey = "adapter_sha256"

    /// Writes `artifact` (a run's final tensors with its config in the metadata) as a PEFT adapter:
    /// prompt methods as PROMPT_TUNING holding the materialised n×d prompt (the factors are kept in
    /// `promptrepro_factors.safetensors` beside it for methods that have them), LoRA as LORA.
    /// DePT's position-indexed input update has no PEFT form: refused.
    static func export(artifact: String, to dir: String) throws -> String {
        let (what, json) = try writeAdapter(artifact: artifact, to: dir)
        // The run's settings beside the adapter, which `eval --adapter` reads its scoring settings from,
        // with the sha256 of the adapter written (`adapter_sha256`): a later adapter saved into the
        // same directory (PEFT's save_pretrained keeps other files) does not take these settings.
        // Written only once the adapter is, so a failed export never vouches for an older adapter.
        let weights = (dir as NSString).appendingPathComponent("adapter_model.safetensors")
        var obj = (try? JSONSerialization.jsonObject(with: Data(json.utf8))) as? [String: Any] ?? [:]
        obj[runConfigAdapterKey] = try SHA256.hex(file: weights)
        try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys])
            .write(to: URL(fileURLWithPath: (dir as NSString).appendingPathComponent(runConfigFile)), options: .atomic)
        return what
    }

    /// The file beside a PROMPT_TUNING adapter holding the factors that make its prompt (DPT, LoPT, …).
    static let factorsFile = "promptrepro_factors.safetensors"

    /// Removes a factors file an earlier export into `dir` left: an adapter written without factors
    /// (PT, LoRA) beside another method's factors, which `--init-from` would read.
    private static func removeStaleFactors(in dir: String) throws {
        let path = (dir as NSString).appendingPathComponent(factorsFile)
        if FileManager.default.fileExists(atPath: path) { try FileManager.default.removeItem(atPath: path) }
    }

    /// `export` without the run config: the adapter files, what was written, and the run's config JSON.
    private static func writeAdapter(artifact: String, to dir: String) throws -> (String, String) {
        let f = try SafeTensorsFile(path: artifact)
        guard let json = f.metadata["config"], let c = try? JSONDecoder().decode(TrainConfig.self, from: Data(json.utf8)) else {
            throw CommandFailure("\(artifact): no run config in its metadata (not a PromptRepro run artifact)")
        }
        var mc = c.method
        if let why = refusal(mc.method) { throw CommandFailure("\(artifact): \(why)") }
        // The artifact's tensors replace the initial values: a text or label-word init (whose
        // token ids the run config does not keep) is built as a uniform table, then overwritten.
        if mc.initialization.hasPrefix("text:") || mc.initialization == "labels" { mc.initialization = "uniform" }
        let dirModel = try ModelFiles.locate(c.model)
        let cfgPath = (dirModel as NSString).appendingPathComponent("config.json")
        let arch = try ModelConfig.load(path: cfgPath)
        let backbone: Backbone
        switch arch {
        case .t5: backbone = try T5Model.load(directory: dirModel)
        case .gpt2: backbone = try GPT2Model.load(directory: dirModel)
        }
        var isT5 = false
        if case .t5 = arch { isT5 = true }
        let method = try MethodRegistry.make(mc, backbone: backbone, key: RNGKey(seed: UInt64(c.seed)))
        var saved: [String: Tensor] = [:]
        for n in f.names { saved[n] = try f.tensor(n).detached() }
        try method.load(state: saved)
        if mc.method == "lora" {
            let prefix = isT5 ? "" : "transformer."
            var pairs: [(module: String, a: Tensor, b: Tensor)] = []
            for w in Set(method.trainable.map { String($0.name.dropLast(".lora_A".count)) }).sorted() where w.hasSuffix(".weight") {  // "<weight>.lora_A|B" → "<weight>"
                guard let a = saved["\(w).lora_A"], let b = saved["\(w).lora_B"] else { continue }
                let module = String(w.dropLast(".weight".count))
                pairs.append((module.hasPrefix(prefix) ? module : prefix + module, a, b))
            }
            try PEFTAdapter.write(prompt: nil, lora: pairs, r: mc.r, alpha: Double(mc.alpha), targets: LoRA.effectiveTargets(mc.targets, gpt2: !isT5), isT5: isT5,
                                  baseModel: peftBaseModel(c.model), to: dir)
            try removeStaleFactors(in: dir)
            return ("LORA (\(pairs.count) modules, r \(mc.r), alpha \(mc.alpha))", json)
        }
        guard let prompt = try method.injection(drop: .eval).prompt else {
            throw CommandFailure("\(artifact): method \(mc.method) builds no prompt to export")
        }
        try PEFTAdapter.write(prompt: prompt.detached(), lora: [], isT5: isT5, baseModel: peftBaseModel(c.model), to: dir)
        if mc.method != "pt" {  // the factors that make the prompt, for PromptRepro (--init-from)
            try SafeTensorsFile.write(method.state, to: (dir as NSString).appendingPathComponent(factorsFile), metadata: ["config": json])
        } else {
            try removeStaleFactors(in: dir)
        }
        return ("PROMPT_TUNING (\(prompt.shape[0]) × \(prompt.shape[1]) prompt materialised from \(mc.method))", json)
    }
}

struct ExportAdapter: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export-adapter",
        abstract: "Write a run artifact as a Hugging Face PEFT adapter directory (PROMPT_TUNING or LORA) that PeftModel.from_pretrained loads.",
        discussion: """
        PT, DPT, LoPT-1/2, Residual PT and the rank probe become PROMPT_TUNING with the materialised n×d prompt
        (encoder-only on T5: num_transformer_submodules 1); their factors are kept beside it in
        promptrepro_factors.safetensors. LoRA becomes LORA. DePT (no PEFT form for its input update) and FT are refused.
        """)
    @Option(help: "Run artifact (safetensors with the run config in its metadata).") var artifact: String
    @Option(help: "Output adapter directory.") var out: String

    func run() throws {
        let what = try AdapterExport.export(artifact: artifact, to: out)
        stderr("wrote \(out): \(what)")
    }
}

/// `--adapter-format`: `peft` (any supported PEFT type) or `dept` (DePT's fork, PROMPT_TUNING_LORA);
/// the type itself comes from adapter_config.json, the flag only states what the user expects.
@discardableResult
func checkAdapterFormat(_ format: String, directory: String) throws -> PEFTAdapterConfig {
    guard ["peft", "dept"].contains(format) else { throw ValidationError("--adapter-format must be peft or dept, got '\(format)'") }
    let path = (directory as NSString).appendingPathComponent("adapter_config.json")
    guard let data = FileManager.default.contents(atPath: path) else {
        throw CommandFailure("\(path): not found (a PEFT adapter directory holds adapter_config.json)")
    }
    let cfg: PEFTAdapterConfig
    do { cfg = try JSONDecoder().decode(PEFTAdapterConfig.self, from: data) } catch {
        throw CommandFailure("\(path): not a PEFT adapter config (\(decodingProblem(error)))")
    }
    if format == "dept" && cfg.peftType != "PROMPT_TUNING_LORA" {
        throw CommandFailure("\(path): --adapter-format dept expects DePT's PROMPT_TUNING_LORA, found \(cfg.peftType)")
    }
    return cfg
}
