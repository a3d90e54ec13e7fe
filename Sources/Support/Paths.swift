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

/// Why a file cannot be written at `path` (its directory cannot be created or is not writable, or
/// `path` is a directory), or nil when it can. Checked before a run trains, so that its result is
/// not lost at the end.
public func unwritableReason(_ path: String) -> String? {
    var isDir: ObjCBool = false
    if FileManager.default.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue { return "is a directory" }
    do { try createParentDirectory(of: path) } catch { return "its directory cannot be created (\(error.localizedDescription))" }
    let parent = (path as NSString).deletingLastPathComponent
    let dir = parent.isEmpty ? FileManager.default.currentDirectoryPath : parent
    return FileManager.default.isWritableFile(atPath: dir) ? nil : "directory '\(dir)' is not writable"
}
