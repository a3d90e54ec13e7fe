// Reverse-mode autodiff over coarse ops.
//
// While a tape records (`tape.record { … }`), every op whose inputs include a tensor that
// requires gradients appends one node: a closure that reads the output's gradient and adds
// into the gradients of exactly those inputs that require them. Frozen weights therefore get
// no gradient buffer and no weight-gradient GEMM. `backward` runs nodes newest-first and drops
// each node (and the activations it captured, and its output's gradient) as soon as it has run.
// A weight gradient whose inputs are smaller than the weight (decoder rows of a few target tokens,
// the LM head, embedding rows) is queued and accumulated after the last node, so that full
// fine-tuning allocates those gradients once the encoder's activations are gone.
//
// Primitives and their gradient rules (one place, as house style §3 asks):
//   add/sub/mul (broadcast)  dA = reduce(g)        dB = ±reduce(g) | reduce(g·A) for mul
//   scale(x, c)              dX = c·g
//   matmul(A, B, tA, tB)     see Matmul.swift (four transpose cases, all GEMMs with flags)
//   linear(x, W, b)          dX = g·W (or g·Wᵀ), dW = gᵀx (or xᵀg), db = Σrows g
//   embedding(W, ids)        dW[id] += g[row]  (scatter-add)
//   concat / narrow / reshape  gradient routed back to the source slice
//   rmsNorm                  dX = r·(gw − x·r²·mean(gw·x)), dw = Σ g·x·r
//   layerNorm                dX = rstd·(gw − mean(gw) − x̂·mean(gw·x̂)), dw = Σ g·x̂, db = Σ g
//   softmax(mask)            dX = y·(g − Σ g·y)
//   attention (fused)        see Attention.swift
//   relu                     dX = g·[y > 0], from bits kept by forward
//   geluNew / gelu / elu     dX = g·f'(x)
//   dropout(p, key)          dX = g·m/(1−p), m drawn once from the counter-based RNG, kept as bits
//   crossEntropy(ignore −100) dLogits = (softmax − onehot)/count
//   sum / mean               dX = g (/n)
//   checkpoint(inputs, body)  body recorded again in backward; its gradients, bit for bit

public final class Tape {
    nonisolated(unsafe) static var active: Tape?

    struct Node {
        let output: GradBox   // the output's gradient slot, not its data
        let backward: () -> Void
        /// Gradient slots of the leaf inputs (parameters) this node adds into or reads, once per
        /// occurrence: a fused optimizer step updates a parameter only after every such node.
        let leaves: [GradBox]
    }

    var nodes: [Node] = []
    /// Weight-gradient work queued by nodes during `backward`, run in queue order after every node.
    var deferred: [() -> Void] = []
    nonisolated(unsafe) static var running: Tape?
    /// Whether small weight gradients are deferred to the end of backward (see `deferWeightGradient`).
    nonisolated(unsafe) public static var defersSmallWeightGradients = true

    public init() {}

    public var isEmpty: Bool { nodes.isEmpty }
    public var nodeCount: Int { nodes.count }

    /// Records every differentiable op executed by `body` on this tape.
    public func record<T>(_ body: () throws -> T) rethrows -> T {
        let previous = Tape.active
        Tape.active = self
        defer { Tape.active = previous }
        return try body()
    }

    /// True while some tape records (inside `record { … }`).
    public static var isRecording: Bool { active != nil }

    /// Checkpointed bodies running now (forward's scratch run or backward's second run).
    nonisolated(unsafe) static var checkpointDepth = 0
    /// True inside a checkpointed block: what it records is used at once or dropped, never kept
    /// from forward to backward.
    public static var isCheckpointing: Bool { checkpointDepth > 0 }

    /// True when an op with these inputs must be recorded.
    @inline(__always)
    static func needsGrad(_ inputs: Tensor?...) -> Bool {
        guard Tape.active != nil else { return false }
        for t in inputs where t?.requiresGrad == true { return true }
        return false
    }

    /// Appends a node for `output` (for ops defined outside this module, e.g. model-specific
    /// gather ops). Call only when `Tape.shouldRecord(inputs)` is true. `inputs` lists every tensor
    /// the op reads (gradient or not): backward with `onFinalGradient` relies on it to know when no
    /// later node reads a parameter or adds into its gradient. The closure must read the output
    /// gradient through `output.box` and must not capture `output` unless backward needs its
    /// values (that would keep the activation alive until backward).
    public static func push(_ output: Tensor, inputs: [Tensor?], backward: @escaping () -> Void) {
        push(output, leaves: leafBoxes(inputs), backward: backward)
    }

    /// Gradient slots of the inputs that are parameters (leaves requiring gradients).
    static func leafBoxes(_ inputs: [Tensor?]) -> [GradBox] {
        inputs.compactMap { t in t.flatMap { $0.isLeaf && $0.requiresGrad ? $0.box : nil } }
    }

    static func push(_ output: Tensor, leaves: [GradBox], backward: @escaping () -> Void) {
        guard let tape = Tape.active else { return }
        output.requiresGrad = true
        output.isLeaf = false
        tape.nodes.append(Node(output: output.box, backward: backward, leaves: leaves))
    }

    public static func shouldRecord(_ inputs: [Tensor?]) -> Bool {
        guard Tape.active != nil else { return false }
        return inputs.contains { $0?.requiresGrad == true }
    }

    /// Back-propagates from a scalar `loss` (seed gradient `seed`), accumulating into the
    /// `grad` of every leaf that requires gradients. The tape is empty afterwards.
    ///
    /// `onFinalGradient`, when given, is called with a leaf's gradient slot as soon as the last
    /// node that reads that leaf has run: its gradient is complete and no remaining node needs its
    /// values, so the caller may update the leaf in place and drop its gradient (an optimizer step
    /// fused into backward). A leaf whose node queued deferred weight-gradient work is reported
    /// once the last such work item that may touch it has run (the work may read it and completes
    /// its gradient), so every gradient has the same bits as without the hook. Leaves that
    /// received no gradient are not reported.
    public func backward(_ loss: Tensor, seed: Float = 1, onFinalGradient: ((GradBox) -> Void)? = nil) {
        precondition(loss.count == 1, "backward needs a scalar loss, got \(loss)")
        if loss.requiresGrad { loss.gradBuffer()[0] += seed }
        run(onFinalGradient: onFinalGradient)
    }

    /// Runs every node newest-first (the seed gradient is already in place), then deferred work.
    func run(onFinalGradient: ((GradBox) -> Void)?) {
        let previous = Tape.running
        Tape.running = self
        defer { Tape.running = previous }
        var pending: [ObjectIdentifier: Int] = [:]     // nodes still to run that read the leaf
        var deferredUses: [ObjectIdentifier: Int] = [:] // queued work items that may touch it
        var owners: [[GradBox]] = []                    // per queued work item: its node's leaves
        if onFinalGradient != nil {
            for n in nodes { for b in n.leaves { pending[ObjectIdentifier(b), default: 0] += 1 } }
        }
        while let node = nodes.popLast() {
            let queued = deferred.count
            if node.output.grad != nil { node.backward() }
            node.output.grad = nil
            node.output.closed = true
            guard let hook = onFinalGradient else { continue }
            for _ in queued..<deferred.count {
                owners.append(node.leaves)
                for b in node.leaves { deferredUses[ObjectIdentifier(b), default: 0] += 1 }
            }
            for b in node.leaves {
                let id = ObjectIdentifier(b)
                let left = pending[id]! - 1
                pending[id] = left
                if left == 0, deferredUses[id, default: 0] == 0, b.grad != nil { hook(b) }
            }
        }
        let work = deferred
        deferred.removeAll()
        for (i, w) in work.enumerated() {
            w()
            guard let hook = onFinalGradient else { continue }
            for b in owners[i] {
                let id = ObjectIdentifier(b)
                let left = deferredUses[id]! - 1
                deferredUses[id] = left
                if left == 0, b.grad != nil { hook(b) }  // every node has run: pending is 0
            }
        }
    }

    /// Activation checkpointing: `body(inputs)` runs on a scratch tape whose nodes (and the
    /// intermediates they keep) are dropped as soon as it returns, so only `inputs` stay alive;
    /// one node, which reads `inputs` and every leaf the body read, runs `body` again in backward on
    /// a fresh tape and back-propagates the output's gradient through it. `body` must compute the
    /// same values when run again (dropout replays its keys: see DropoutContext.replaying). Costs
    /// one more forward of `body` per backward; the gradients are those of the recorded `body`,
    /// bit for bit, since the same nodes run in the same order. Nothing reads the second run's
    /// output values (its gradient is given), so an op whose values only ops that do not read their
    /// inputs' values in backward consume (dropout, add) may skip computing them there.
    public static func checkpoint(inputs: [Tensor], _ body: @escaping ([Tensor]) throws -> Tensor) throws -> Tensor {
        guard Tape.active != nil else { return try body(inputs) }
        let scratch = Tape()
        checkpointDepth += 1
        defer { checkpointDepth -= 1 }
        let out = try scratch.record { try body(inputs) }
        guard !scratch.isEmpty else { return out }
        var leaves = leafBoxes(inputs)
        var seen = Set(leaves.map(ObjectIdentifier.init))
        for n in scratch.nodes { for b in n.leaves where seen.insert(ObjectIdentifier(b)).inserted { leaves.append(b) } }
        scratch.reset()
        let ob = out.box
        push(out, leaves: leaves) {
            let sub = Tape()
            // The same body ran once already on these inputs, so it cannot fail now.
            let again: Tensor = {
                checkpointDepth += 1
                defer { checkpointDepth -= 1 }
                return try! sub.record { try body(inputs) }
            }()
            precondition(again.shape == ob.shape, "checkpointed body changed its output shape")
            guard !sub.isEmpty else { return }
            again.box.grad = ob.grad
            sub.run(onFinalGradient: nil)
        }
        return out
    }

    /// Runs `work` (a weight-gradient accumulation) now, or at the end of the running backward when
    /// the weight is a leaf (a stored parameter: nothing upstream reads its gradient) and the work's
    /// inputs are smaller than the weight (`keptFloats` < `weightFloats`): the decoder's and the LM
    /// head's weight gradients of a full fine-tuning step (a few target rows) then come into
    /// existence after the encoder's activations are freed, not while all are alive. The gradient
    /// of a non-leaf "weight" (an activation gathered from, a product used as a matrix) is always
    /// written at once: its own node runs later and must see it. Queued work runs in queue order,
    /// so a weight's contributions keep their order whenever all of them are deferred (T5's tied
    /// embedding; every weight used once).
    static func deferWeightGradient(weightIsLeaf: Bool, keptFloats: Int, weightFloats: Int, _ work: @escaping () -> Void) {
        if defersSmallWeightGradients, weightIsLeaf, keptFloats < weightFloats, let tape = running {
            tape.deferred.append(work)
        } else {
            work()
        }
    }

    /// Drops recorded nodes without running them (e.g. after an eval pass under a tape).
    public func reset() { nodes.removeAll() }
}
