import ArgumentParser
import Tensor

@main
struct PromptRepro: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "promptrepro",
        abstract: "Reproduce and extend low-rank soft-prompt papers (DPT, LoPT) on T5 and GPT-2.",
        discussion: """
            Environment:
              PROMPTREPRO_THREADS  numeric-core threads (default: the core count)
              PROMPTREPRO_GEMM     auto | openblas | avx512 (auto: PromptRepro's
                                   AVX-512 GEMM where the CPU has it)
              PROMPTREPRO_DATA     data directory without --data-dir (default: data/)
              PROMPTREPRO_CACHE    embedded smoke backbones (~/.cache/promptrepro)
              HF_HUB_CACHE/HF_HOME Hugging Face cache searched for checkpoints
              PROMPTREPRO_CHECKPOINT  ffn,attention | all: recompute those T5 sublayers in
                                   backward (less memory, more FLOPs, same results)
              PROMPTREPRO_DEBUG    list checkpoint tensors the model does not use
            Results are bit-identical for a given seed, thread count and GEMM kernel.
            """,
        subcommands: [Sweep.self, WorkerCommand.self, Shard.self, Merge.self, Results.self, Report.self, FiguresCommand.self, CompareCommand.self, Export.self, ExportAdapter.self, EvalCommand.self, LossCurvesCommand.self, StepsCommand.self, Train.self, Info.self, Forward.self, Tokenize.self, Params.self, Score.self, Sample.self, DataCommand.self, Bench.self, BenchOne.self, ExportEmbedded.self])
}
