// Full fine-tuning: every backbone weight is trainable (tied embeddings counted once). No prompt.
import Support
import Models
import Tensor

public final class FullFineTuning: TuningMethod {
    public static let name = "ft"
    public static let configKeys: [String] = []
    public static let defaultProtocol = "ft-respt-code"
    public let config: MethodConfig
    public let trainable: [TrainableTensor]

    public init(config: MethodConfig, backbone: Backbone, key: RNGKey) throws {
        self.config = config
        backbone.setTrainable(true)
        trainable = backbone.parameters.map { TrainableTensor(name: $0.name, tensor: $0.tensor, group: .main) }
    }

    public func injection(drop: DropoutContext) throws -> Injection { Injection() }

    public static func parameterCount(_ c: MethodConfig, architecture: ModelConfig) throws -> Int { architecture.parameterCount }
}
