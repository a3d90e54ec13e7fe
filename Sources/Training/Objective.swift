// What the trainer does differently per architecture, chosen once when a run is set up:
// T5 (text-to-text): labels are the target's tokens, the loss is the mean token cross-entropy,
// predictions are greedy decodes (or rank classification over the candidates, `eval_mode`);
// GPT-2 (LoPT Table 1): the target is a class index, the loss is the verbaliser's class
// cross-entropy at the last text position, the prediction is the best-scoring label word.
import Foundation
import Methods
import Models
import Support
import Tasks
import Tensor

/// One training batch in token ids, right-padded: `ids`/`mask` (B × L); T5: `labels` (B × T,
/// −100 padded); GPT-2: `classTargets` (B) and `lastPositions` (B, index of each row's last text
/// token), `labels` unused.
public struct TrainingBatch {
    public var ids: [Int32], mask: [Float], labels: [Int32], size: Int
    public var classTargets: [Int32] = []
    public var lastPositions: [Int] = []
    public init(ids: [Int32], mask: [Float], labels: [Int32], size: Int, classTargets: [Int32] = [], lastPositions: [Int] = []) {
        self.ids = ids; self.mask = mask; self.labels = labels; self.size = size
        self.classTargets = classTargets; self.lastPositions = lastPositions
    }
}

/// The per-architecture part of a run: batches, the training loss, and evaluation predictions.
public protocol ArchitectureObjective {
    var backbone: Backbone { get }
    /// The batch of `ex` (sources truncated to `max_source_length`).
    func makeBatch(_ ex: [Example]) throws -> TrainingBatch
    /// The scalar training loss of `b` under `method`'s injection.
    func loss(_ b: TrainingBatch, method: TuningMethod, drop: DropoutContext) throws -> Tensor
    /// One prediction per example of `chunk` (batched as `b`); `data` is the split the examples
    /// come from (rank classification reads ReCoRD's entities from it).
    /// Predictions of `chunk` and how many rows greedy decoding stopped at `maxNewTokens` before
    /// </s> (0 for scoring objectives).
    func predict(_ chunk: [Example], _ b: TrainingBatch, data: TaskData, injection inj: Injection, maxNewTokens: Int) throws
        -> (predictions: [String], unfinished: Int)
}

/// `ids` cut to `max` tokens, keeping a final `eos`.
func truncate(_ ids: [Int32], _ max: Int, eos: Int32?) -> [Int32] {
    guard ids.count > max else { return ids }
    if let eos, ids.last == eos { return Array(ids.prefix(max - 1)) + [eos] }
    return Array(ids.prefix(max))
}

/// The ids of `source` in at most `max` tokens, keeping the template's `tail` whole: a source
/// longer than `max` loses the end of its text, never the template text after it (OpenPrompt's
/// tokenizer wrappers, on which PEZ and LoPT build, shorten only the input text parts). The head
/// and the tail are tokenized apart then, as OpenPrompt tokenizes each part; a source that fits
/// keeps the ids of its whole text. Without a tail (or one of `max` tokens or more) it is `truncate`.
func truncate(source: String, tail: String, tok: TextTokenizer, max: Int) -> [Int32] {
    let ids = tok.encode(source)
    // On Unicode scalars: `hasSuffix` and `dropLast` compare Characters, and a text ending in a
    // "prepend" scalar (U+0600) joins the template's first "." into one Character, so the suffix
    // test failed and the template was cut off with the text.
    guard ids.count > max, !tail.isEmpty else { return truncate(ids, max, eos: tok.eosId) }
    let s = Array(source.unicodeScalars), t = Array(tail.unicodeScalars)
    guard s.count >= t.count, s.suffix(t.count).elementsEqual(t) else { return truncate(ids, max, eos: tok.eosId) }
    let tailIds = tok.encode(tail)
    guard tailIds.count < max else { return truncate(ids, max, eos: tok.eosId) }
    var headScalars = String.UnicodeScalarView()
    headScalars.append(contentsOf: s.dropLast(t.count))
    var head = tok.encode(String(headScalars))
    if let eos = tok.eosId, head.last == eos { head.removeLast() }
    return Array(head.prefix(max - tailIds.count)) + tailIds
}

/// Source ids and mask (B × L, right-padded with the tokenizer's pad id); `src` the unpadded rows.
/// `keepTail`: the template's text after its last field, kept whole by truncation (decoder-only
/// models score the label right after it); nil truncates at the tail (DPT's T5 sources).
func sourceBatch(_ ex: [Example], tok: TextTokenizer, maxLength: Int, keepTail: String? = nil) -> (batch: TrainingBatch, src: [[Int32]]) {
    let src = ex.map { e in
        keepTail.map { truncate(source: e.source, tail: $0, tok: tok, max: maxLength) } ?? truncate(tok.encode(e.source), maxLength, eos: tok.eosId)
    }
    let L = src.map(\.count).max() ?? 1
    var ids: [Int32] = [], mask: [Float] = []
    let pad = tok.padId
    for s in src {
        ids += s + [Int32](repeating: pad, count: L - s.count)
        mask += [Float](repeating: 1, count: s.count) + [Float](repeating: 0, count: L - s.count)
    }
    return (TrainingBatch(ids: ids, mask: mask, labels: [], size: ex.count), src)
}

public struct T5Objective: ArchitectureObjective {
    public let model: T5Model
    let tok: TextTokenizer
    let config: TrainConfig
    let def: TaskDefinition
    public var backbone: Backbone { model }

    public init(model: T5Model, tokenizer: TextTokenizer, config: TrainConfig, task: TaskDefinition) {
        self.model = model; tok = tokenizer; self.config = config; def = task
    }

    public func makeBatch(_ ex: [Example]) throws -> TrainingBatch {
        var (b, _) = sourceBatch(ex, tok: tok, maxLength: config.maxSourceLength)
        let tg = ex.map { truncate(tok.encode($0.target), config.maxTargetLength, eos: tok.eosId) }
        let T = tg.map(\.count).max() ?? 1
        for t in tg { b.labels += t + [Int32](repeating: ignoreIndex, count: T - t.count) }
        return b
    }

    public func loss(_ b: TrainingBatch, method: TuningMethod, drop: DropoutContext) throws -> Tensor {
        try Self.loss(b, model: model, method: method, drop: drop)
    }

    /// Mean token cross-entropy of the target given the prompted input. The encoder's linear
    /// layers skip the padding (`T5Model.withEncoderOverRealPositions`: the loss and the gradients
    /// keep their bits; CB's few-shot batches with DPT's prompt compute 67 % of their positions).
    public static func loss(_ b: TrainingBatch, model m: T5Model, method: TuningMethod, drop: DropoutContext) throws -> Tensor {
        let (embeds, mask) = try method.inputs(for: m, inputIds: b.ids, attentionMask: b.mask, batch: b.size, drop: drop)
        return try m.withEncoderOverRealPositions {
            try m.forward(inputsEmbeds: embeds, attentionMask: mask, labels: b.labels, drop: drop).loss
        }
    }

    public func predict(_ chunk: [Example], _ b: TrainingBatch, data: TaskData, injection inj: Injection, maxNewTokens: Int) throws
        -> (predictions: [String], unfinished: Int) {
        let m = model
        let (embeds, mask) = try inj.inputs(for: m, inputIds: b.ids, attentionMask: b.mask, batch: b.size)
        if let mode = config.evalMode, mode != .generate {
            let enc = try m.encode(embeds: consume embeds, mask: mask, drop: .eval)
            let cands = try chunk.map { try RankCandidates.candidates(def, set: config.templates, data: data, example: $0) }
            let ll = try RankScorer.logLikelihoods(m, encoder: enc, encoderMask: mask, candidates: cands.map { $0.map {
                truncate(tok.encode($0), config.maxTargetLength, eos: tok.eosId) } }, mean: mode == .rankMean)
            var preds: [String] = []
            for (r, scores) in ll.enumerated() {
                var best = 0
                for j in scores.indices where scores[j] > scores[best] { best = j }
                preds.append(cands[r][best])
            }
            return (preds, 0)
        }
        // A row whose text can no longer be read back as a label stops (`DecodeStop.noLabel`): its
        // score is decided, and the other rows' tokens are unchanged.
        let reach = (config.decodeStop ?? .noLabel) == .noLabel
            ? try def.template(config.templates).verbalizer(labels: def.labels).map(LabelReachability.init(labels:)) : nil
        let decided = reach.map { r in { [tok] (t: ArraySlice<Int32>) -> Bool in !r.canStillNameALabel(tok.decode(Array(t), skipSpecialTokens: true)) } }
        let stop = decided.map { decided in { [tok] (_: Int, t: ArraySlice<Int32>) -> Bool in
            // A token without text (pad, a sentinel, an id past the pieces) leaves the text, and so the answer, as before.
            if t.count > 1, let last = t.last, tok.decode([last], skipSpecialTokens: true).isEmpty { return false }
            return decided(t)
        } }
        let gen = try m.generate(embeds: consume embeds, mask: mask, maxNewTokens: maxNewTokens, stopRow: stop)
        let eos = Int32(m.config.eosTokenId ?? 1)
        return (gen.map { pyStrip(tok.decode($0, skipSpecialTokens: true)) },  // DPT: batch_decode(...) then .strip()
                // Rows that ended without </s> and could still name a label: only the cap ended these.
                gen.filter { !$0.dropFirst().contains(eos) && decided?($0.dropFirst()) != true }.count)
    }
}

public struct GPT2Objective: ArchitectureObjective {
    public let model: GPT2Model
    let tok: TextTokenizer
    let config: TrainConfig
    /// The template set's label words, and the first token of each (" word" with a BPE tokenizer).
    public let words: [String]
    public let classTokens: [Int32]
    /// The template's text after its last field (" It was about"), which truncation keeps.
    let sourceTail: String
    public var backbone: Backbone { model }

    /// Fails when the template set has no label words or two words share their first token.
    public init(model: GPT2Model, tokenizer: TextTokenizer, config: TrainConfig, task def: TaskDefinition) throws {
        let template = try def.template(config.templates)
        guard let words = template.words else {
            // Sets with label words, those that end in a cue before the word first (LoPT's "It
            // was"): the message recommended ResPT's T5 targets, which score the word right after
            // the input with no cue.
            let withWords = TemplateSet.allCases.filter { (try? def.template($0).words) != nil }
            let cued = withWords.filter { (try? def.template($0).sourceTail.isEmpty) == false }
            let listed = (cued + withWords.filter { !cued.contains($0) }).map { $0.rawValue + (cued.contains($0) ? "" : " (no cue after the input)") }
            throw TrainError("\(config.task): GPT-2 runs score label words, and template set '\(config.templates.rawValue)' of \(config.task) has none"
                + (withWords.isEmpty ? " (no template set of \(config.task) has label words: GPT-2 cannot train on it)" : " (sets with label words: \(listed.joined(separator: ", ")))"))
        }
        // The template's text after the input (" It was about") must fit with at least one input
        // token: the label is scored right after it, and a limit too short for it cut it off with
        // the text (AG News at max_source_length 3 scored 0.00).
        let tailTokens = template.sourceTail.isEmpty ? 0 : tokenizer.encode(template.sourceTail).count
        if tailTokens > 0 && tailTokens >= config.maxSourceLength {
            throw TrainError("\(config.task): max_source_length \(config.maxSourceLength) cannot hold the template's text after the input ('\(template.sourceTail)', \(tailTokens) tokens) "
                + "and any of the input; GPT-2 scores the label right after that text: use at least \(tailTokens + 1)")
        }
        let classTokens = words.map { w in
            let ids = tokenizer is ByteTokenizer ? tokenizer.encode(w) : tokenizer.encode(" " + w)
            return ids.first ?? 0
        }
        guard Set(classTokens).count == classTokens.count else { throw TrainError("label words \(words) share their first token") }
        self.model = model; tok = tokenizer; self.config = config; self.words = words; self.classTokens = classTokens
        sourceTail = template.sourceTail
    }

    public func makeBatch(_ ex: [Example]) throws -> TrainingBatch {
        var (b, src) = sourceBatch(ex, tok: tok, maxLength: config.maxSourceLength, keepTail: sourceTail)
        b.classTargets = try ex.map { e in
            guard let i = words.firstIndex(of: e.target) else { throw TrainError("target '\(e.target)' is not a label word of \(words)") }
            return Int32(i)
        }
        b.lastPositions = src.map { $0.count - 1 }
        b.labels = b.ids
        return b
    }

    public func loss(_ b: TrainingBatch, method: TuningMethod, drop: DropoutContext) throws -> Tensor {
        try Self.loss(b, model: model, method: method, classTokens: classTokens, drop: drop)
    }

    /// The verbaliser's class cross-entropy (OpenPrompt ManualVerbalizer: next-token logits at the
    /// last text position, gathered at the label words' first tokens, softmax over the classes).
    public static func loss(_ b: TrainingBatch, model m: GPT2Model, method: TuningMethod, classTokens: [Int32], drop: DropoutContext) throws -> Tensor {
        let inputs = try method.inputs(for: m, inputIds: b.ids, attentionMask: b.mask, batch: b.size, drop: drop)
        return try crossEntropy(try classLogits(b, m, inputs, classTokens, drop), targets: b.classTargets)
    }

    /// Verbaliser scores (B, C) of GPT-2 for `b` fed as `inputs` (B, S = n + L: the method's prompt
    /// rows first): hidden state at position n + lastPositions[b] (after ln_f) times the output
    /// head's rows of the class tokens.
    public static func classLogits(_ b: TrainingBatch, _ m: GPT2Model, _ inputs: (inputsEmbeds: Tensor, attentionMask: Tensor),
                                   _ classTokens: [Int32], _ drop: DropoutContext) throws -> Tensor {
        let h = try m.hidden(inputsEmbeds: inputs.inputsEmbeds, attentionMask: inputs.attentionMask, drop: drop)  // (B, S, d)
        let S = h.shape[1], n = S - b.ids.count / b.size                                                    // n prompt rows
        let rows = try embedding(try reshape(h, [b.size * S, m.config.nEmbd]),
                                 ids: b.lastPositions.enumerated().map { Int32($0.offset * S + n + $0.element) })  // (B, d)
        let words = try embedding(m.head, ids: classTokens)                                                         // (C, d)
        return try matmul(rows, words, transB: true)                                                                // (B, C)
    }

    public func predict(_ chunk: [Example], _ b: TrainingBatch, data: TaskData, injection inj: Injection, maxNewTokens: Int) throws
        -> (predictions: [String], unfinished: Int) {
        let inputs = try inj.inputs(for: model, inputIds: b.ids, attentionMask: b.mask, batch: b.size)
        let logits = try Self.classLogits(b, model, inputs, classTokens, .eval)
        let C = classTokens.count
        var preds: [String] = []
        for r in 0..<b.size {
            var best = 0
            for j in 1..<C where logits.data[r * C + j] > logits.data[r * C + best] { best = j }
            preds.append(words[best])
        }
        return (preds, 0)
    }
}

/// The objective of a loaded backbone: T5 or GPT-2 (GPT-2 needs label words).
func architectureObjective(_ backbone: Backbone, tokenizer: TextTokenizer, config: TrainConfig, task: TaskDefinition) throws -> ArchitectureObjective {
    if let m = backbone as? T5Model { return T5Objective(model: m, tokenizer: tokenizer, config: config, task: task) }
    if let m = backbone as? GPT2Model { return try GPT2Objective(model: m, tokenizer: tokenizer, config: config, task: task) }
    throw TrainError("no objective for \(type(of: backbone))")
}

/// The training loss of a batch built elsewhere (parity fixtures): T5's token cross-entropy, or
/// GPT-2's verbaliser cross-entropy over `classTokens`.
public enum Objective {
    public static func loss(_ b: TrainingBatch, model: Backbone, method: TuningMethod, classTokens: [Int32], drop: DropoutContext) throws -> Tensor {
        if let m = model as? T5Model { return try T5Objective.loss(b, model: m, method: method, drop: drop) }
        guard let m = model as? GPT2Model else { throw TrainError("no objective for \(type(of: model))") }
        return try GPT2Objective.loss(b, model: m, method: method, classTokens: classTokens, drop: drop)
    }
}
