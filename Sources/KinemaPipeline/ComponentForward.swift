import Foundation
import KinemaCore
import KinemaIO
import KinemaModels
import KinemaNN

// `kinema forward`: run one model component on tensors read from a safetensors file and write its outputs,
// so anyone can check Kinema against another implementation. Tensor names follow diffusers' argument names.

public enum ModelComponent: String, CaseIterable, Sendable {
    case transformer
}

public struct ComponentForwardRequest {
    public var modelPath: String
    public var component: ModelComponent
    public var inputsPath: String
    public var outputPath: String
    public var precision: Precision
    public var device: Device

    public init(modelPath: String, component: ModelComponent, inputsPath: String, outputPath: String, precision: Precision, device: Device) {
        self.modelPath = modelPath
        self.component = component
        self.inputsPath = inputsPath
        self.outputPath = outputPath
        self.precision = precision
        self.device = device
    }
}

public struct ComponentForwardReport {
    public var loadSeconds: Double
    public var forwardSeconds: Double
    public var outputs: [TensorInfo]
}

public enum ComponentForward {
    /// The input names each component reads and the output names it writes.
    public static func signature(of component: ModelComponent) -> (inputs: [String], optional: [String], outputs: [String]) {
        switch component {
        case .transformer:
            return (["hidden_states", "timestep", "encoder_hidden_states"], ["encoder_hidden_states_image"], ["sample"])
        }
    }

    public static func run(_ request: ComponentForwardRequest) throws -> ComponentForwardReport {
        let backend = try Backends.make(request.device)
        let inputs = try SafeTensors.open(request.inputsPath)
        let (required, _, _) = signature(of: request.component)
        let absent = required.filter { inputs.info($0) == nil }
        guard absent.isEmpty else {
            throw KinemaError.badFile(
                path: request.inputsPath, location: nil,
                reason: "missing input tensor(s) \(absent.joined(separator: ", ")) for component \(request.component.rawValue)")
        }
        let clock = ContinuousClock()
        switch request.component {
        case .transformer:
            let loadStart = clock.now
            let files = try ModelFiles.transformer(at: request.modelPath)
            let model = try WanTransformer.load(
                from: files.weights, configJSON: try ModelFiles.configJSON(files), backend: backend, precision: request.precision)
            let loaded = clock.now
            let modelInputs = WanTransformerInputs(
                latents: try inputs.tensor("hidden_states"),
                timestep: try backend.cast(try inputs.tensor("timestep"), to: .f32),
                text: try inputs.tensor("encoder_hidden_states"),
                image: inputs.info("encoder_hidden_states_image") != nil ? try inputs.tensor("encoder_hidden_states_image") : nil)
            let sample = try backend.download(try model.forward(modelInputs))
            let done = clock.now
            try SafeTensors.write(["sample": sample], metadata: ["producer": "kinema forward"], to: request.outputPath)
            return ComponentForwardReport(
                loadSeconds: seconds(loaded - loadStart), forwardSeconds: seconds(done - loaded),
                outputs: [TensorInfo(name: "sample", dtype: sample.dtype, shape: sample.shape)])
        }
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) * 1e-18
    }
}
