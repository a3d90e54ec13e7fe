// swift-tools-version:6.0
// PromptRepro: reproduction harness for low-rank soft-prompt papers (DPT, LoPT).
// Layering (no upward imports): Support, CBLAS, CGemm <- Tensor <- Models <- Methods/Tasks <- Training <- Store <- Harness, Reports <- CLI
// (Harness and Reports both sit on Store and do not import each other; Reports reads no model, method or spec).
import PackageDescription

import Foundation

// x86-64 hosts with AVX2 + FMA (every machine this project targets) compile the Swift code for the
// Haswell ISA: 256-bit SIMD and fused multiply-add instructions instead of SSE2 and libm fma calls.
// The check reads this host's /proc/cpuinfo; PROMPTREPRO_PORTABLE=1 builds for baseline x86-64.
let cpuFlags: [String] = {
    #if arch(x86_64) && os(Linux)
    if ProcessInfo.processInfo.environment["PROMPTREPRO_PORTABLE"] == "1" { return [] }
    guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
          let flags = info.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return [] }
    let have = Set(flags.split(separator: " ").map(String.init))
    return ["avx2", "fma", "bmi2", "f16c", "movbe"].allSatisfy(have.contains) ? ["-target-cpu", "haswell", "-DTARGET_HASWELL"] : []
    #else
    return []
    #endif
}()

// Numeric targets are optimised in debug builds too, so `swift test` (debug) runs at release speed.
let fast: [SwiftSetting] = [
    .unsafeFlags(["-Ounchecked", "-enforce-exclusivity=unchecked"] + cpuFlags, .when(configuration: .release)),
    .unsafeFlags(["-O", "-enforce-exclusivity=unchecked"] + cpuFlags, .when(configuration: .debug)),
    .swiftLanguageMode(.v5),
]

let package = Package(
    name: "PromptRepro",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "promptrepro", targets: ["PromptReproCLI"]),
        .library(name: "Tensor", targets: ["Tensor"]),
        .library(name: "Models", targets: ["Models"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
    ],
    targets: [
        .systemLibrary(
            name: "CBLAS",
            pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"])]
        ),
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        .target(name: "Support", swiftSettings: fast),
        // Results store: schema, migrations, rows, queries, aggregation, export.
        .target(name: "Store", dependencies: ["CSQLite", "Training", "Tasks", "Support"], swiftSettings: fast),
        // Experiment harness: specs and profiles, run identity, sweeps, workers, shards, merge, searches.
        .target(name: "Harness", dependencies: ["Store", "Training", "Methods", "Models", "Tasks", "Tensor", "Support",
                                               .product(name: "Yams", package: "Yams")], swiftSettings: fast),
        // PromptRepro's AVX-512 SGEMM (C, intrinsics); picked at run time on CPUs that have AVX-512.
        // PR_SWIFT_HASWELL: the Swift code is built for Haswell, so start-up checks the CPU
        // (gemm.c) before any of it runs.
        .target(name: "CGemm", cSettings: [.unsafeFlags(["-O3"])] + (cpuFlags.isEmpty ? [] : [.define("PR_SWIFT_HASWELL")])),
        .target(name: "Tensor", dependencies: ["CBLAS", "CGemm", "Support"], swiftSettings: fast),
        .target(name: "Models", dependencies: ["Tensor", "Support"], swiftSettings: fast),
        .target(name: "Methods", dependencies: ["Models", "Tensor", "Support"], swiftSettings: fast),
        .target(name: "Training", dependencies: ["Methods", "Models", "Tasks", "Tensor", "Support", "CGemm"], swiftSettings: fast),
        // Tables, figures, comparisons: from the store's cells and committed files only (no specs,
        // models or methods; the CLI passes what it derives from them as data).
        .target(name: "Reports", dependencies: ["Store", "Tasks", "Training", "Models", "Support", .product(name: "Yams", package: "Yams")],
                swiftSettings: fast),
        .target(name: "Tasks", dependencies: ["Support", .product(name: "Yams", package: "Yams")],
                resources: [.copy("Registry")], swiftSettings: fast),
        .executableTarget(
            name: "PromptReproCLI",
            dependencies: [
                "Tensor",
                "Models",
                "Support",
                "Tasks",
                "Methods",
                "Training",
                "Store",
                "Harness",
                "Reports",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: fast
        ),
        // Shared by the test targets only: repository root, ../shared lookup (fails under CI), temp dirs.
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "TensorTests", dependencies: ["Tensor"], swiftSettings: [.swiftLanguageMode(.v5)]),
        .testTarget(name: "ModelTests", dependencies: ["Models", "Methods", "Tensor", "Support", "TestSupport"], exclude: ["Resources"],
                    swiftSettings: [.swiftLanguageMode(.v5)]),
        .testTarget(name: "TaskTests", dependencies: ["Tasks", "Support", "Tensor", "TestSupport"], exclude: ["Resources"], swiftSettings: [.swiftLanguageMode(.v5)]),
        .testTarget(name: "MethodTests", dependencies: ["Methods", "Training", "Models", "Tasks", "Tensor", "TestSupport"], exclude: ["Resources"],
                    swiftSettings: [.swiftLanguageMode(.v5)]),
        .testTarget(name: "HarnessTests", dependencies: ["Store", "Harness", "Reports", "Training", "Methods", "Models", "Tasks", "Tensor", "TestSupport"],
                    swiftSettings: [.swiftLanguageMode(.v5)]),
        .testTarget(name: "ReportTests", dependencies: ["Reports", "Store", "Harness", "Training", "Methods", "Tasks", "TestSupport"],
                    swiftSettings: [.swiftLanguageMode(.v5)]),
        .testTarget(name: "SupportTests", dependencies: ["Support", "TestSupport"], swiftSettings: [.swiftLanguageMode(.v5)]),
    ]
)
