// reshape, concat and narrow (slice) along any axis; gradients are routed back to the sources.

func normAxis(_ axis: Int, _ rank: Int, _ op: String) throws -> Int {
    let a = axis < 0 ? axis + rank : axis
    guard a >= 0 && a < rank else { throw TensorError.invalidArgument(op: op, detail: "axis \(axis) out of range for rank \(rank)") }
    return a
}

/// Same elements, new shape (a copy; gradients flow back).
public func reshape(_ x: Tensor, _ shape: [Int]) throws -> Tensor {
    guard shape.reduce(1, *) == x.count else {
        throw TensorError.shapeMismatch(op: "reshape", detail: "cannot reshape \(shapeString(x.shape)) to \(shapeString(shape))")
    }
    let out = Tensor(uninitialized: shape)
    out.data.update(from: x.data, count: x.count)
    if Tape.needsGrad(x) {
        let ob = out.box, xb = x.box, n = x.count
        Tape.push(out, inputs: [x]) { BLAS.axpy(n, 1, ob.grad!.data, xb.buffer()) }
    }
    return out
}

/// Concatenation along `axis`; all other axes must agree.
public func concat(_ xs: [Tensor], axis: Int) throws -> Tensor {
    guard let first = xs.first else { throw TensorError.invalidArgument(op: "concat", detail: "no tensors") }
    let ax = try normAxis(axis, first.rank, "concat")
    for x in xs {
        guard x.rank == first.rank,
              (0..<x.rank).allSatisfy({ $0 == ax || x.shape[$0] == first.shape[$0] }) else {
            throw TensorError.shapeMismatch(op: "concat", detail: "axis \(ax): \(xs.map { shapeString($0.shape) }.joined(separator: ", "))")
        }
    }
    let outer = first.shape[..<ax].reduce(1, *)
    let inner = first.shape[(ax + 1)...].reduce(1, *)
    let total = xs.reduce(0) { $0 + $1.shape[ax] }
    var shape = first.shape
    shape[ax] = total
    let out = Tensor(uninitialized: shape)
    var offset = 0
    var offsets: [Int] = []
    for x in xs {
        let len = x.shape[ax] * inner
        offsets.append(offset)
        for o in 0..<outer {
            (out.data + o * total * inner + offset).update(from: x.data + o * len, count: len)
        }
        offset += len
    }
    if Tape.shouldRecord(xs) {
        if shape.count == 3, ax == 1 {
            // Positions from inputs that need no gradient need none either (a soft prompt before
            // frozen token embeddings: GradientRows.swift). The span of those that do.
            var starts: [Int] = [], at = 0
            for x in xs { starts.append(at); at += x.shape[1] }
            let needed = xs.indices.filter { xs[$0].requiresGrad }
            if let lo = needed.first.map({ starts[$0] }), let hi = needed.last.map({ starts[$0] + xs[$0].shape[1] }) {
                out.gradientRows = GradientRows(batch: shape[0], length: total, positions: lo..<hi)
            }
        }
        let ob = out.box
        let parts = xs.map { ($0.box, $0.shape[ax] * inner) }
        Tape.push(out, inputs: xs.map { Optional($0) }) {
            let g = ob.grad!.data
            for (i, (xb, len)) in parts.enumerated() where xb.requiresGrad {
                let gx = xb.buffer()
                for o in 0..<outer { BLAS.axpy(len, 1, g + o * total * inner + offsets[i], gx + o * len) }
            }
        }
    }
    return out
}

/// Elements start ..< start+length along `axis`.
public func narrow(_ x: Tensor, axis: Int, start: Int, length: Int) throws -> Tensor {
    let ax = try normAxis(axis, x.rank, "narrow")
    guard start >= 0, length >= 0, start + length <= x.shape[ax] else {
        throw TensorError.invalidArgument(op: "narrow", detail: "range \(start)..<\(start + length) outside axis \(ax) of \(shapeString(x.shape))")
    }
    let outer = x.shape[..<ax].reduce(1, *)
    let inner = x.shape[(ax + 1)...].reduce(1, *)
    let full = x.shape[ax] * inner, len = length * inner, off = start * inner
    var shape = x.shape
    shape[ax] = length
    let out = Tensor(uninitialized: shape)
    for o in 0..<outer { (out.data + o * len).update(from: x.data + o * full + off, count: len) }
    if Tape.needsGrad(x) {
        if ax == 2 { out.inheritGradientRows(x) }  // the same [batch, length] rows (GradientRows.swift)
        let ob = out.box, xb = x.box
        Tape.push(out, inputs: [x]) {
            let g = ob.grad!.data, gx = xb.buffer()
            for o in 0..<outer { BLAS.axpy(len, 1, g + o * len, gx + o * full + off) }
        }
    }
    return out
}

/// [d…] → [batch, d…]: the same rows for every batch entry (a soft prompt shared by the batch).
/// Backward sums the batch entries' gradients.
public func repeatBatch(_ x: Tensor, _ batch: Int) -> Tensor {
    let out = Tensor(uninitialized: [batch] + x.shape)
    for b in 0..<batch { (out.data + b * x.count).update(from: x.data, count: x.count) }
    if Tape.needsGrad(x) {
        let ob = out.box, xb = x.box, n = x.count
        Tape.push(out, inputs: [x]) {
            let g = ob.grad!.data, gx = xb.buffer()
            for b in 0..<batch { BLAS.axpy(n, 1, g + b * n, gx) }
        }
    }
    return out
}
