// Row gather from an embedding table; backward is a scatter-add into the table's gradient.

/// out[i, :] = weight[ids[i], :]; output shape `shape + [d]` (default [ids.count, d]).
public func embedding(_ weight: Tensor, ids: [Int32], shape: [Int]? = nil) throws -> Tensor {
    guard weight.rank == 2 else {
        throw TensorError.shapeMismatch(op: "embedding", detail: "table must be 2-D, got \(shapeString(weight.shape))")
    }
    let (v, d) = (weight.shape[0], weight.shape[1])
    let lead = shape ?? [ids.count]
    guard lead.reduce(1, *) == ids.count else {
        throw TensorError.shapeMismatch(op: "embedding", detail: "\(ids.count) ids do not fill shape \(shapeString(lead))")
    }
    if let bad = ids.first(where: { $0 < 0 || Int($0) >= v }) {
        throw TensorError.invalidArgument(op: "embedding", detail: "id \(bad) outside table of \(v) rows")
    }
    let out = Tensor(uninitialized: lead + [d])
    for (i, id) in ids.enumerated() { (out.data + i * d).update(from: weight.data + Int(id) * d, count: d) }
    if Tape.needsGrad(weight) {
        let ob = out.box, wb = weight.box, leaf = weight.isLeaf
        Tape.push(out, inputs: [weight]) {
            let gt = ob.grad!  // kept by deferred work
            Tape.deferWeightGradient(weightIsLeaf: leaf, keptFloats: ids.count * d, weightFloats: v * d) {
                let g = gt.data, gw = wb.buffer()
                for (i, id) in ids.enumerated() { BLAS.axpy(d, 1, g + i * d, gw + Int(id) * d) }
            }
        }
    }
    return out
}
