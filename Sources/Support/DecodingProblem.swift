import Foundation

/// What is wrong with a JSON file that `JSONDecoder` refused, in words that name the field
/// ("missing field 'peft_type'", "field 'r' has the wrong type", "field 'x' is null", "not valid
/// JSON"), for errors of the form "PATH: …". Swift's own description of a `DecodingError` is a
/// debug dump of coding keys.
public func decodingProblem(_ error: Error) -> String {
    func field(_ path: [CodingKey]) -> String { path.map(\.stringValue).joined(separator: ".") }
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
