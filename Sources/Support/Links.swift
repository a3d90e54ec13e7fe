// Symbolic links whose target is gone (an HF cache snapshot's blob deleted or never downloaded).
// Foundation only: the tokenizer fuzz target (Makefile, fuzz-build) compiles this file directly.
import Foundation

/// The target of `path` when it is a symbolic link whose target does not exist (an HF cache
/// snapshot whose blob was deleted or never finished downloading), else nil. `fileExists` follows
/// the link and reports such a file as absent, so messages said "no config.json" of a directory
/// that lists one.
public func danglingLinkTarget(_ path: String) -> String? {
    guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: path) else { return nil }
    return FileManager.default.fileExists(atPath: path) ? nil : target
}

/// The words a message gives a dangling link (`danglingLinkTarget`).
public func danglingLinkProblem(_ target: String) -> String {
    "a link to \(target), which does not exist (an incomplete or deleted download? fetch the checkpoint again, e.g. `huggingface-cli download REPO`)"
}
