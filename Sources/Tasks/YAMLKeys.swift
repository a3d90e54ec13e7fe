// Duplicate mapping keys in YAML files the harness reads (specs, task definitions, table layouts,
// figure specs). YAML 1.2 requires a mapping's keys to be unique; Yams keeps the last value of a
// repeated key without a word, so a key pasted twice (a merge leftover) would silently change a
// spec's runs and what the gate judges.
import Foundation
import Yams

public enum YAMLKeys {
    /// The first repeated key of any mapping in `text` (block or flow style, at any depth), as
    /// "line L, column C: key 'k' repeats the key at line L0"; nil when every mapping's keys are
    /// unique or the text is not YAML (the caller's parser reports that). Keys compare by their
    /// scalar text (`epochs` and `"epochs"` are one key).
    public static func firstDuplicate(in text: String) -> String? {
        guard let root = try? Yams.compose(yaml: text) else { return nil }
        var stack = [root]
        while let node = stack.popLast() {
            switch node {
            case .mapping(let m):
                var seen: [String: Node] = [:]
                for (key, value) in m {
                    if let k = key.scalar?.string {
                        if let first = seen[k] {
                            let at = key.mark.map { "line \($0.line), column \($0.column)" } ?? "a later line"
                            return "\(at): key '\(k)' repeats the key at line \(first.mark?.line ?? 0) (YAML keys must be unique; the later value would silently win)"
                        }
                        seen[k] = key
                    }
                    stack.append(value)
                }
            case .sequence(let s):
                stack.append(contentsOf: s)
            default:
                break
            }
        }
        return nil
    }
}
