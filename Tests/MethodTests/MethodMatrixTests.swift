import Foundation
import Methods
import Models
import Support
import Tensor
import TestSupport
import Training
import XCTest

/// Every method through the same matrix (house style §7) on the embedded tiny T5 and GPT-2, with a
/// synthetic batch (TestSupport `SyntheticBatch`; no ../shared needed): a few full-batch steps lower the loss, only the method's tensors change,
/// the trainable count equals the method's formula, and save → load reproduces the logits exactly.
final class MethodMatrixTests: XCTestCase {
    /// The matrix's batch: 8 synthetic rows of up to 96 ids from the tokenizer's vocabulary
    /// (T5 targets of up to 12 tokens; GPT-2 causal labels), the same on every machine.
    func batch(tok: TextTokenizer, t5: Bool) -> SyntheticBatch {
        SyntheticBatch(vocabSize: tok.vocabSize, padId: tok.padId, eosId: tok.eosId, causal: !t5)
    }

    /// The method's forward on `data` as the trainer feeds the backbone: `method.inputs` →
    /// `inputsEmbeds`; GPT-2 labels get −100 over the prompt rows.
    func forward(_ backbone: Backbone, _ method: TuningMethod, _ data: SyntheticBatch, drop: DropoutContext = .eval) throws
        -> (loss: Tensor, logits: Tensor) {
        let (e, m) = try method.inputs(for: backbone, inputIds: data.ids, attentionMask: data.mask, batch: data.b, drop: drop)
        if let t5 = backbone as? T5Model {
            let o = try t5.forward(inputsEmbeds: e, attentionMask: m, labels: data.labels, drop: drop)
            return (o.loss, o.logits)
        }
        let n = e.shape[1] - data.ids.count / data.b
        let o = try (backbone as! GPT2Model).forward(inputsEmbeds: e, attentionMask: m,
                                                     labels: promptedLabels(data.labels, batch: data.b, promptRows: n), drop: drop)
        return (o.loss, o.logits)
    }

    func checksum(_ ts: [Tensor]) -> Double { ts.reduce(0.0) { acc, t in acc + t.array.enumerated().reduce(0.0) { $0 + Double($1.element) * Double($1.offset % 7 + 1) } } }

    func runMatrix(arch: String) throws {
        let dir = try EmbeddedBackbones.directory(arch)
        let tok = try Tokenizers.load(directory: dir)
        let isT5 = arch == "t5-tiny"
        let methods = MethodRegistry.names
        let data = batch(tok: tok, t5: isT5)
        for name in methods {
            let backbone: Backbone = isT5 ? try T5Model.load(directory: dir) : try GPT2Model.load(directory: dir)
            var mc = try MethodConfig.defaults(name)
            mc.initTokens = textInitTokens(mc)
            mc.n = 6; mc.r = 3; mc.m = name == "dept" ? 4 : 16; mc.s = 128
            let method = try MethodRegistry.make(mc, backbone: backbone, key: RNGKey(seed: 1))
            XCTAssertEqual(method.trainableCount, try MethodRegistry.parameterCount(mc, architecture: backbone.architecture), "\(name) count")
            let frozen = backbone.parameters.map(\.tensor)
            let before = checksum(frozen)
            func lossNow() throws -> Tensor { try forward(backbone, method, data).loss }
            let opt = Optimizer(kind: .adamwTorch, groups: [ParamGroup(tensors: method.trainable.map(\.tensor), lr: name == "ft" ? 1e-3 : 0.05, weightDecay: 0)])
            let first = try lossNow().scalar
            for _ in 0..<6 {
                let tape = Tape()
                let l = try tape.record { try lossNow() }
                tape.backward(l)
                opt.update()
                for t in method.trainable { t.tensor.zeroGrad() }
                XCTAssertTrue(backbone.parameters.allSatisfy { name == "ft" || $0.tensor.grad == nil }, "\(name): frozen weights got gradients")
            }
            let last = try lossNow().scalar
            XCTAssertLessThan(last, first, "\(arch) \(name): loss \(first) → \(last)")
            if name != "ft" { XCTAssertEqual(checksum(frozen), before, "\(name) changed backbone weights") }
            // Save → load into a fresh instance (other seed) reproduces the logits exactly.
            let saved = method.state.mapValues { $0.detached() }
            let backbone2: Backbone = isT5 ? try T5Model.load(directory: dir) : try GPT2Model.load(directory: dir)
            if name == "ft" { for (p, q) in zip(backbone2.parameters, backbone.parameters) { p.tensor.copy(from: q.tensor) } }
            let fresh = try MethodRegistry.make(mc, backbone: backbone2, key: RNGKey(seed: 99))
            try fresh.load(state: saved)
            let a = try method.injection(drop: .eval), b = try fresh.injection(drop: .eval)
            XCTAssertEqual(a.prompt?.array, b.prompt?.array, "\(name) prompt after reload")
            let la = try forward(backbone, method, data).logits, lb = try forward(backbone2, fresh, data).logits
            XCTAssertTrue(la.array == lb.array, "\(arch) \(name) logits after reload")
            print("matrix \(arch) \(name): trainable \(method.trainableCount), loss \(first) → \(last)")
        }
    }

    /// The optimizer step fused into backward (`backwardWithStep`, used by the trainer when there is
    /// no gradient clipping) gives the same bits as backward then `update`, for every method on both
    /// architectures with dropout on, and for each optimizer on full fine-tuning (also over two short
    /// rows, whose weight gradients are deferred to the end of backward): a parameter updated before
    /// the last backward node that reads it would change the other gradients.
    func testFusedOptimizerStepIsBitIdentical() throws {
        for arch in ["t5-tiny", "gpt2-tiny"] {
            let dir = try EmbeddedBackbones.directory(arch)
            let tok = try Tokenizers.load(directory: dir)
            let isT5 = arch == "t5-tiny"
            // Two rows of ≤ 16 tokens: few enough that the weight gradients of the decoder's (T5)
            // and the blocks' (GPT-2) linear layers are deferred to the end of backward, where a
            // norm output recomputed for them must still see the norm weights of forward.
            let few = SyntheticBatch(vocabSize: tok.vocabSize, padId: tok.padId, eosId: tok.eosId, rows: 2, maxLength: 16,
                                     targetLength: 6, causal: !isT5, seed: 3)
            var cases: [(String, OptimizerKind, SyntheticBatch)] = ["pt", "respt", "dpt", "lopt1", "lopt2", "lora", "probe"].map {
                ($0, .adamwTorch, batch(tok: tok, t5: isT5))
            }
            cases.append(("dept", .adamwHF, batch(tok: tok, t5: isT5)))
            cases += [("ft", .adamwTorch, batch(tok: tok, t5: isT5)), ("ft", .adamwHF, batch(tok: tok, t5: isT5)),
                      ("ft", .adafactor, batch(tok: tok, t5: isT5)), ("ft", .adamwTorch, few)]
            for (name, kind, data) in cases {
                var results: [[[Float]]] = []
                for fused in [false, true] {
                    let backbone: Backbone = isT5 ? try T5Model.load(directory: dir) : try GPT2Model.load(directory: dir)
                    var mc = try MethodConfig.defaults(name)
                    mc.initTokens = textInitTokens(mc)
                    mc.n = 6; mc.r = 3; mc.m = name == "dept" ? 4 : 16; mc.s = 128
                    if !isT5 && name == "lora" { mc.targets = ["c_attn"] }
                    let method = try MethodRegistry.make(mc, backbone: backbone, key: RNGKey(seed: 1))
                    let params = method.trainable.map(\.tensor)
                    let opt = Optimizer(kind: kind, groups: [ParamGroup(tensors: params, lr: name == "ft" ? 1e-3 : 0.05, weightDecay: 0.01)])
                    for step in 0..<3 {
                        let drop = DropoutContext(key: RNGKey(seed: 7).derive(UInt64(step)), p: 0.1)
                        let tape = Tape()
                        let loss = try tape.record { try forward(backbone, method, data, drop: drop).loss }
                        if fused {
                            backwardWithStep(tape, loss: loss, optimizer: opt, params: params, lrScale: 0.5 + Float(step))
                            XCTAssertTrue(params.allSatisfy { $0.grad == nil }, "\(arch) \(name): fused step left a gradient")
                        } else {
                            tape.backward(loss)
                            opt.update(lrScale: 0.5 + Float(step))
                            for t in params { t.zeroGrad() }
                        }
                    }
                    results.append(params.map(\.array) + backbone.parameters.map(\.tensor.array))
                }
                XCTAssertEqual(results[0].count, results[1].count)
                var same = true
                for (a, b) in zip(results[0], results[1]) where a != b { same = false }
                XCTAssertTrue(same, "\(arch) \(name) \(kind) (\(data.b) rows): fused step differs from backward + update")
            }
        }
    }

    /// Checkpointed T5 sublayers (self-attention and feed-forward, PROMPTREPRO_CHECKPOINT=all) give
    /// the same parameters after three training steps as the recorded ones, bit for bit, for full
    /// fine-tuning, prompt tuning and LoRA (whose adapters sit inside the checkpointed attention),
    /// with dropout on, through backward + update and through the fused step.
    func testCheckpointedSublayersAreBitIdentical() throws {
        let dir = try EmbeddedBackbones.directory("t5-tiny")
        let tok = try Tokenizers.load(directory: dir)
        let data = batch(tok: tok, t5: true)
        for name in ["ft", "pt", "lora"] {
            var results: [[[Float]]] = []
            for (checkpointed, fused) in [(false, false), (true, false), (true, true)] {
                let t5 = try T5Model.load(directory: dir)
                t5.checkpointSelfAttention = checkpointed
                t5.checkpointFeedForward = checkpointed
                var mc = try MethodConfig.defaults(name)
                mc.n = 6; mc.r = 3
                let method = try MethodRegistry.make(mc, backbone: t5, key: RNGKey(seed: 1))
                let params = method.trainable.map(\.tensor)
                let opt = Optimizer(kind: .adamwTorch, groups: [ParamGroup(tensors: params, lr: name == "ft" ? 1e-3 : 0.05, weightDecay: 0.01)])
                for step in 0..<3 {
                    let drop = DropoutContext(key: RNGKey(seed: 9).derive(UInt64(step)), p: 0.1)
                    let tape = Tape()
                    let loss = try tape.record { try forward(t5, method, data, drop: drop).loss }
                    if fused {
                        backwardWithStep(tape, loss: loss, optimizer: opt, params: params)
                    } else {
                        tape.backward(loss)
                        opt.update()
                        for t in params { t.zeroGrad() }
                    }
                }
                results.append(params.map(\.array) + t5.parameters.map(\.tensor.array))
            }
            for r in results.dropFirst() {
                XCTAssertEqual(r.count, results[0].count)
                var same = true
                for (a, b) in zip(results[0], r) where a != b { same = false }
                XCTAssertTrue(same, "\(name): checkpointed training differs from recorded")
            }
        }
    }

    func testT5Matrix() throws { try runMatrix(arch: "t5-tiny") }
    func testGPT2Matrix() throws { try runMatrix(arch: "gpt2-tiny") }

    func testDePTUsesAlphaOverSqrtRAndStartsAtZero() throws {
        let m = try T5Model.load(directory: try EmbeddedBackbones.directory("t5-tiny"))
        var c = try MethodConfig.defaults("dept"); c.r = 4; c.m = 5; c.s = 32
        c.initTokens = textInitTokens(c)
        let d = try MethodRegistry.make(c, backbone: m, key: RNGKey(seed: 2)) as! DePT
        XCTAssertEqual(d.scaling, 8 / 2, accuracy: 1e-6)
        let inj = try d.injection(drop: .eval)
        XCTAssertEqual(inj.inputDelta!.shape, [32, 64])
        XCTAssertTrue(inj.inputDelta!.array.allSatisfy { $0 == 0 })  // B = 0 at init
        XCTAssertEqual(d.trainable.filter { $0.group == .secondary }.count, 2)
    }

    func testPromptInitFromFirst5000Rows() throws {
        let m = try T5Model.load(directory: try EmbeddedBackbones.directory("t5-tiny"))
        var c = try MethodConfig.defaults("pt"); c.n = 10
        let pt = try MethodRegistry.make(c, backbone: m, key: RNGKey(seed: 3)) as! PromptTuning
        // Every prompt row is a copy of a distinct embedding row (without replacement).
        let d = 64
        var matched = Set<Int>()
        for i in 0..<10 {
            let row = Array(pt.prompt.array[(i * d)..<((i + 1) * d)])
            let j = (0..<m.shared.shape[0]).first { Array(m.shared.array[($0 * d)..<(($0 + 1) * d)]) == row }
            XCTAssertNotNil(j)
            matched.insert(j!)
        }
        XCTAssertEqual(matched.count, 10)
    }

    func testRankProbeDiagnostics() throws {
        // rank(A·B) for random A (6×3), B (3×40) is 3; a zero row block lowers it.
        let a = Tensor.uniform([6, 3], lo: -1, hi: 1, key: RNGKey(seed: 5)), b = Tensor.uniform([3, 40], lo: -1, hi: 1, key: RNGKey(seed: 6))
        XCTAssertEqual(numericalRank(try matmul(a, b)), 3)
        XCTAssertEqual(numericalRank(Tensor(zeros: [4, 9])), 0)
        let m = try T5Model.load(directory: try EmbeddedBackbones.directory("t5-tiny"))
        var c = try MethodConfig.defaults("probe"); c.n = 8; c.r = 5
        let probe = try MethodRegistry.make(c, backbone: m, key: RNGKey(seed: 7)) as! RankProbe
        let d = try probe.diagnostics()
        XCTAssertEqual(d.positive, 5)
        XCTAssertEqual(d.negative, 0)
        XCTAssertEqual(d.rank, 5)
    }

    func testParameterAuditMatchesEveryPrintedCount() throws {
        let rows = try ParameterAudit.rows()
        XCTAssertEqual(rows.filter { $0.ours != nil }.count, 31)
        for r in rows { XCTAssertTrue(r.matches, "\(r.source) \(r.row): printed \(r.printed), ours \(r.oursText)") }
        // The check can fail: a wrong printed value is caught.
        XCTAssertFalse(AuditRow(source: "", row: "", printed: "52K", ours: 51_200, note: "").matches)
        XCTAssertFalse(AuditRow(source: "", row: "", printed: "-89.93%", ours: -899_219, note: "").matches)
        XCTAssertTrue(AuditRow(source: "", row: "", printed: "693K", ours: 693_904, note: "").matches)
    }
}

/// Token ids standing in for a text init's tokenization (DePT's default init is its code's text;
/// `train` tokenizes it): ids 3, 4, 5 of the backbone's vocabulary, nil for other inits.
func textInitTokens(_ c: MethodConfig) -> [Int32]? {
    c.initialization.hasPrefix("text:") ? [3, 4, 5] : nil
}
