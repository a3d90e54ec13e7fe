// Per-run invalid-output fractions (issue #20 item 4), kept beside the scores in `extras`.
import Tasks

extension TrainResult {
    /// Sets `extras["invalid_fraction"]` (the best epoch's predictions) and
    /// `extras["invalid_fraction_last"]` (the last evaluation's): the fraction (0–1) of validation
    /// outputs that name no label, by `Metrics.invalidFraction`'s rules. Rank-classification runs
    /// (GPT-2) always output a label word and record 0; sets without a rule record nothing.
    public mutating func recordInvalidFractions(_ def: TaskDefinition, examples: [Example]) throws {
        for (name, preds) in [("invalid_fraction", bestPredictions), ("invalid_fraction_last", predictions)] {
            guard let preds, preds.count == examples.count,
                  let f = try Metrics.invalidFraction(def, set: config.templates, examples: examples, predictions: preds) else { continue }
            extras = extras ?? [:]
            extras![name] = f
        }
    }
}
