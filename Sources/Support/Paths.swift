// File-system helpers shared by the writers of run outputs.
import Foundation

/// Creates the directory that will hold `path`, with its parents. A bare file name ("it.safetensors")
/// lives in the current directory, which exists: nothing to create (`deletingLastPathComponent` is ""
/// there, and creating "" failed with "The file doesn't exist" after a whole run had trained).
public func createParentDirectory(of path: String) throws {
    let parent = (path as NSString).deletingLastPathComponent
    guard !parent.isEmpty else { return }
    try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
}

/// Why a file cannot be written at `path`, or nil when it can: `path` is a directory, or the nearest
/// existing ancestor of its directory is a file or not writable (the directories below it would be
/// created on write). Creates nothing. Checked before a run trains, so that its result is not lost
/// at the end.
public func unwritableReason(_ path: String) -> String? {
    let fm = FileManager.default
    var isDir: ObjCBool = false
    if fm.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue { return "is a directory" }
    var dir = (path as NSString).deletingLastPathComponent
    if dir.isEmpty { dir = fm.currentDirectoryPath }
    while !fm.fileExists(atPath: dir, isDirectory: &isDir) {
        // A symbolic link to nothing blocks creating the directory it names.
        if (try? fm.destinationOfSymbolicLink(atPath: dir)) != nil { return "'\(dir)' is a symbolic link to nothing" }
        let up = (dir as NSString).deletingLastPathComponent
        if up.isEmpty || up == dir { dir = fm.currentDirectoryPath; break }
        dir = up
    }
    guard fm.fileExists(atPath: dir, isDirectory: &isDir), isDir.boolValue else { return "'\(dir)' is not a directory" }
    return fm.isWritableFile(atPath: dir) ? nil : "directory '\(dir)' is not writable"
}
