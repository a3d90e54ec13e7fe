// What a run reports while it goes: typed events, in order
//   started, (step… [evaluated] epoch)…, [diverged], done
// delivered to every sink of `Trainer.sinks`. The console lines users and tests read are one
// sink (`ConsoleSink`); the sweep worker's stored progress is another (Store/Sweep.swift).
import Foundation

/// The numbers of a run fixed at setup, sent once as `.started` before any step.
public struct TrainingPlan: Sendable, Equatable {
    public var epochs: Int             // the config's epochs
    public var plannedEpochs: Int      // epochs the run will take (fewer when max_steps ends it early)
    public var stepsPerEpoch: Int
    public var totalSteps: Int
    public var startEpoch: Int         // > 1 after a resume
    public var startStep: Int
    public var resumedFrom: String?    // the checkpoint resumed from
    public var selectionMetric: String
    public var trainExamples: Int
    public var evalExamples: Int
}

/// Why a run stopped as diverged.
public enum Divergence: Sendable, Equatable {
    case loss(Float)          // the batch loss was not finite
    case parameters           // a trainable tensor held a non-finite value after the update
}

public enum TrainingEvent: Sendable {
    case started(TrainingPlan)
    /// After each optimizer step.
    case step(StepRecord)
    /// After an evaluation: the reported scores, the selection score, whether this epoch is now the best.
    case evaluated(epoch: Int, metrics: [String: Double], selection: Double?, isBest: Bool)
    /// After the epoch's checkpoint is written: its record, (epochs done, epochs the run takes,
    /// seconds of the epochs done).
    case epoch(EpochRecord, done: Int, total: Int, seconds: Double)
    /// The run stops at step `step` (1-based) with status `diverged`.
    case diverged(step: Int, reason: Divergence)
    /// Last event of every run, with its status (done, diverged, interrupted, evaluated).
    case done(RunStatus)
}

/// Receives a run's events, in order, on the training thread.
public protocol TrainingSink {
    func receive(_ event: TrainingEvent)
}

/// A sink that is a closure.
public struct ClosureSink: TrainingSink {
    let body: (TrainingEvent) -> Void
    public init(_ body: @escaping (TrainingEvent) -> Void) { self.body = body }
    public func receive(_ event: TrainingEvent) { body(event) }
}

/// The progress lines of a run (resume, one per epoch, divergence), as `Trainer.init`'s
/// `progress` has always received them.
public final class ConsoleSink: TrainingSink {
    let write: (String) -> Void
    private var plan: TrainingPlan?

    public init(_ write: @escaping (String) -> Void) { self.write = write }

    public func receive(_ event: TrainingEvent) {
        switch event {
        case .started(let p):
            plan = p
            if let ck = p.resumedFrom { write("resumed from \(ck) at epoch \(p.startEpoch), step \(p.startStep)") }
        case .epoch(let rec, _, _, _):
            let metric = plan?.selectionMetric ?? "selection"
            write(String(format: "epoch %d/%d step %d loss %.4f %@ %.1fs", rec.epoch, plan?.epochs ?? 0, rec.step, rec.trainLoss,
                         rec.selection.map { "\(metric) \(String(format: "%.2f", $0))" } ?? "", rec.seconds))
        case .diverged(let step, .loss(let lv)):
            write("diverged: loss \(lv) at step \(step)")
        case .diverged(let step, .parameters):
            write("diverged: non-finite parameters after step \(step)")
        case .step, .evaluated, .done:
            break
        }
    }
}
