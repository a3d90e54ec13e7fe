import Dispatch
import Foundation
import Tensor
import XCTest

/// `BLAS.flops` (the GEMM FLOP counter behind a run's `flops_per_step`) against counts worked by hand.
final class FLOPCounterTests: XCTestCase {
    func ramp(_ shape: [Int], grad: Bool) -> Tensor {
        let n = shape.reduce(1, *)
        return Tensor(shape: shape, values: (0..<n).map { Float($0 % 7) / 7 - 0.4 }, requiresGrad: grad)
    }

    /// y = x·Wᵀ + b with x (2, 3, 5) → 6 rows of 5, W (4, 5): forward one GEMM 6×4×5 = 2·6·4·5 = 240
    /// FLOPs; backward dX = g·W (6×5×4) 240 and dW = gᵀ·x (4×5×6) 240 (the bias gradient is a column
    /// sum, no GEMM): 720 for the step. A frozen W (prompt tuning's backbone) skips dW: 480.
    func testLinearLayerAgainstHandCount() throws {
        for (wGrad, forward, total) in [(true, 240, 720), (false, 240, 480)] {
            let x = ramp([2, 3, 5], grad: true), w = ramp([4, 5], grad: wGrad), b = ramp([4], grad: wGrad)
            let f0 = BLAS.flops
            let tape = Tape()
            let loss = try tape.record { mean(try linear(x, w, bias: b)) }
            XCTAssertEqual(BLAS.flops - f0, forward, "forward, W trainable \(wGrad)")
            tape.backward(loss)
            XCTAssertEqual(BLAS.flops - f0, total, "forward + backward, W trainable \(wGrad)")
        }
    }

    /// A (2, 3, 4) · B (2, 4, 5), one GEMM per batch: forward 2 · (2·3·5·4) = 240; backward dA
    /// (3×4 from 3×5 · 5×4) and dB (4×5 from 4×3 · 3×5) per batch, 240 each: 720.
    func testBatchedMatmulAgainstHandCount() throws {
        let a = ramp([2, 3, 4], grad: true), b = ramp([2, 4, 5], grad: true)
        let f0 = BLAS.flops
        let tape = Tape()
        let loss = try tape.record { mean(try matmul(a, b)) }
        XCTAssertEqual(BLAS.flops - f0, 240)
        tape.backward(loss)
        XCTAssertEqual(BLAS.flops - f0, 720)
    }

    /// Products issued from 8 threads at once are all counted (each thread adds to a slot of its own).
    func testConcurrentProductsAreAllCounted() {
        let n = 16
        let f0 = BLAS.flops
        DispatchQueue.concurrentPerform(iterations: 8) { _ in
            let a = [Float](repeating: 1, count: n * n), b = a
            var c = [Float](repeating: 0, count: n * n)
            for _ in 0..<50 {
                BLAS.sgemm(transA: false, transB: false, m: n, n: n, k: n, alpha: 1, a: a, lda: n, b: b, ldb: n, beta: 0, c: &c, ldc: n)
            }
        }
        XCTAssertEqual(BLAS.flops - f0, 8 * 50 * 2 * n * n * n)
    }

    /// More threads than the counter has slots of their own (64): the later ones share one slot,
    /// and every product is still counted once.
    func testMoreThreadsThanSlotsAreAllCounted() {
        let n = 8, threads = 80
        let f0 = BLAS.flops
        let done = DispatchGroup()
        for _ in 0..<threads {
            done.enter()
            Thread {
                let a = [Float](repeating: 1, count: n * n)
                var c = [Float](repeating: 0, count: n * n)
                for _ in 0..<3 {
                    BLAS.sgemm(transA: false, transB: false, m: n, n: n, k: n, alpha: 1, a: a, lda: n, b: a, ldb: n, beta: 0, c: &c, ldc: n)
                }
                done.leave()
            }.start()
        }
        done.wait()
        XCTAssertEqual(BLAS.flops - f0, threads * 3 * 2 * n * n * n)
    }
}
