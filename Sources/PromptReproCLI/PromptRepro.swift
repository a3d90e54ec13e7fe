import ArgumentParser
import Tensor

@main
struct PromptRepro: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "promptrepro",
        abstract: "Reproduce and extend low-rank soft-prompt papers (DPT, LoPT) on T5 and GPT-2.",
        subcommands: [Sweep.self, WorkerCommand.self, Shard.self, Merge.self, Results.self, Report.self, FiguresCommand.self, CompareCommand.self, Export.self, Train.self, Info.self, Forward.self, Tokenize.self, Params.self, Score.self, Sample.self, DataCommand.self, Bench.self, BenchOne.self, ExportEmbedded.self])
}
