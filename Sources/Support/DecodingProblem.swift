import Foundation

/// What is wrong with a JSON file that `JSONDecoder` refused, in words that name the field
/// ("missing field 'peft_type'", "field 'r' has the wrong type", "field 'x' is null", "not valid
/// JSON"), for errors of the form "PATH: …". Swift's own description of a `DecodingError` is a
/// debug dump of coding keys.
public func decodingProblem(_ error: Error) -> String {
    // "rows[0].published", not "rows.Index 0.published": an array's position as a subscript.
    func field(_ path: [CodingKey]) -> String {
        path.reduce(into: "") { out, key in
            if let i = key.intValue { out += "[\(i)]" } else { out += (out.isEmpty ? "" : ".") + key.stringValue }
        }
    }
    switch error {
    case DecodingError.keyNotFound(let key, let ctx):
        return "missing field '\(field(ctx.codingPath + [key]))'"
    case DecodingError.typeMismatch(_, let ctx):
        return ctx.codingPath.isEmpty ? "not a JSON object" : "field '\(field(ctx.codingPath))' has the wrong type"
    case DecodingError.valueNotFound(_, let ctx):
        return ctx.codingPath.isEmpty ? "not a JSON object (null)" : "field '\(field(ctx.codingPath))' is null"
    case DecodingError.dataCorrupted(let ctx):
        return ctx.codingPath.isEmpty ? "not valid JSON" : "field '\(field(ctx.codingPath))': \(ctx.debugDescription)"
    default:
        return "\(error)"
    }
}

/// `decodingProblem` for a YAML file that `YAMLDecoder` refused: text that does not parse is
/// "invalid YAML: LINE:COLUMN: …" (the parser's own message, as spec files report it), a missing
/// or mistyped field as `decodingProblem` names it. Swift's description of the error was a debug
/// dump ("DecodingError.dataCorrupted: Data was corrupted. Debug description: …").
public func yamlDecodingProblem(_ error: Error) -> String {
    if case DecodingError.dataCorrupted(let ctx) = error, ctx.codingPath.isEmpty {
        return "invalid YAML" + (ctx.underlyingError.map { ": \($0)" } ?? "")
    }
    if case DecodingError.typeMismatch(_, let ctx) = error, ctx.codingPath.isEmpty { return "not a YAML mapping" }
    if case DecodingError.valueNotFound(_, let ctx) = error, ctx.codingPath.isEmpty { return "empty (not a YAML mapping)" }
    return decodingProblem(error)
}

/// Why writing a file failed, in words (Foundation's errors print as "Error Domain=NSCocoaErrorDomain
/// Code=640 …" dumps): the disk is full, a read-only file system, permission denied, else the
/// underlying system error's text (`strerror`), else the error's own description.
public func fileWriteProblem(_ error: Error) -> String {
    let ns = error as NSError
    if ns.domain == NSCocoaErrorDomain {
        switch ns.code {
        case NSFileWriteOutOfSpaceError: return "the disk is full; free space and rerun"
        case NSFileWriteVolumeReadOnlyError: return "a read-only file system"
        case NSFileWriteNoPermissionError: return "permission denied"
        default: break
        }
    }
    // The system error under it: a POSIXError on Linux's Foundation, an NSError elsewhere.
    if let posix = ns.userInfo[NSUnderlyingErrorKey] as? POSIXError { return String(cString: strerror(posix.code.rawValue)) }
    if let underlying = ns.userInfo[NSUnderlyingErrorKey] as? Error {
        let u = underlying as NSError
        if u.domain == NSPOSIXErrorDomain { return String(cString: strerror(Int32(u.code))) }
    }
    if ns.domain == NSPOSIXErrorDomain { return String(cString: strerror(Int32(ns.code))) }
    return ns.localizedDescription
}
