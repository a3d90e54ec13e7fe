// The tool version recorded with every run: PromptRepro's version, the Swift major version and the
// GEMM kernel with its blocking and OpenBLAS's release and core (results are bit-identical for a
// given kernel, kc, OpenBLAS and thread count; mc and nc are recorded, and change no bit).
import Foundation
import Tensor

public enum ToolInfo {
    public static let version = "0.1.0"
    public static var versionString: String { "promptrepro \(version); swift 6; \(BLAS.kernelDescription)" }
}
