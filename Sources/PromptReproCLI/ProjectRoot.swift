import Foundation

/// The PromptRepro checkout whose committed data (Baselines/: specs, manifests, data.lock, results)
/// the commands read, so they run from any working directory: `PROMPTREPRO_ROOT`, else the first
/// directory holding `Baselines/data.lock` above the working directory, else above the executable
/// (`.build/<config>/promptrepro` sits three levels below the checkout), else the working directory.
enum ProjectRoot {
    static let path: String = {
        let fm = FileManager.default
        func holds(_ d: String) -> Bool { fm.fileExists(atPath: (d as NSString).appendingPathComponent("Baselines/data.lock")) }
        if let r = ProcessInfo.processInfo.environment["PROMPTREPRO_ROOT"], !r.isEmpty { return r }
        var starts = [fm.currentDirectoryPath]
        starts.append((executablePath() as NSString).deletingLastPathComponent)
        for start in starts {
            var d = (start as NSString).standardizingPath
            while true {
                if holds(d) { return d }
                let up = (d as NSString).deletingLastPathComponent
                if up == d || up.isEmpty { break }
                d = up
            }
        }
        return fm.currentDirectoryPath
    }()

    /// `path` relative to the checkout when it lies inside it (as committed files name it), else as given.
    static func display(_ path: String) -> String {
        let root = (self.path as NSString).standardizingPath + "/"
        let p = (path as NSString).standardizingPath
        return p.hasPrefix(root) ? String(p.dropFirst(root.count)) : path
    }

    /// `relative` (e.g. "Baselines/manifests") inside the checkout; an absolute path is kept.
    static func resolve(_ relative: String) -> String {
        if relative.hasPrefix("/") { return relative }
        return (path as NSString).appendingPathComponent(relative)
    }
}
