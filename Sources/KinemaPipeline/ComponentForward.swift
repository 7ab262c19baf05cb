import Foundation
import KinemaCore
import KinemaIO
import KinemaModels
import KinemaNN

// `kinema forward`: run one model component on tensors read from a safetensors file and write its outputs,
// so anyone can check Kinema against another implementation. Tensor names follow diffusers' argument names.

public enum ModelComponent: String, CaseIterable, Sendable {
    case transformer
    case textEncoder = "text_encoder"
    case vaeDecoder = "vae_decoder"
    case vaeEncoder = "vae_encoder"
    /// The CLIP vision tower of Wan I2V: normalised pixel values → penultimate hidden states.
    case imageEncoder = "image_encoder"
}

public struct ComponentForwardRequest {
    public var modelPath: String
    public var component: ModelComponent
    public var inputsPath: String
    public var outputPath: String
    public var precision: Precision
    public var device: Device
    /// GPU allocator budget in bytes (nil: KINEMA_MAX_VRAM or none).
    public var maxDeviceMemory: Int?

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
        case .textEncoder:
            return (["input_ids"], ["attention_mask"], ["last_hidden_state"])
        case .vaeDecoder:
            return (["latents"], [], ["sample"])
        case .vaeEncoder:
            return (["sample"], [], ["latents"])
        case .imageEncoder:
            // diffusers: image_encoder(pixel_values, output_hidden_states=True).hidden_states[-2], which the
            // pipeline passes on as `image_embeds` ([B, 257, 1280] for ViT-H/14).
            return (["pixel_values"], [], ["image_embeds"])
        }
    }

    public static func run(_ request: ComponentForwardRequest) throws -> ComponentForwardReport {
        let backend = try Backends.make(request.device, maxDeviceMemory: request.maxDeviceMemory)
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
            return try finish("sample", sample, loadSeconds: seconds(loaded - loadStart), forwardSeconds: seconds(clock.now - loaded), request)
        case .textEncoder:
            let loadStart = clock.now
            let encoder: UMT5Encoder
            if let folder = try? WanModelFolder.locate(request.modelPath) {
                encoder = try folder.loadTextEncoder(backend: backend, precision: request.precision)
            } else {
                encoder = try UMT5Encoder.load(
                    from: try Checkpoints.open(request.modelPath), configJSON: try siblingConfig(request.modelPath), backend: backend,
                    precision: request.precision)
            }
            let loaded = clock.now
            let mask = inputs.info("attention_mask") != nil ? try inputs.tensor("attention_mask") : nil
            let hidden = try backend.download(try encoder.forward(ids: try inputs.tensor("input_ids"), mask: mask))
            return try finish("last_hidden_state", hidden, loadSeconds: seconds(loaded - loadStart), forwardSeconds: seconds(clock.now - loaded), request)
        case .vaeDecoder, .vaeEncoder:
            let loadStart = clock.now
            let vae: WanVAE
            if let folder = try? WanModelFolder.locate(request.modelPath) {
                vae = try folder.loadVAE(backend: backend, precision: request.precision)
            } else {
                vae = try WanVAE.load(
                    from: try Checkpoints.open(request.modelPath), configJSON: try siblingConfig(request.modelPath), backend: backend,
                    precision: request.precision)
            }
            let loaded = clock.now
            if request.component == .vaeDecoder {
                let video = try backend.download(try vae.decode(try backend.upload(try inputs.tensor("latents"))))
                return try finish("sample", video, loadSeconds: seconds(loaded - loadStart), forwardSeconds: seconds(clock.now - loaded), request)
            }
            let latents = try backend.download(try vae.encode(try backend.upload(try inputs.tensor("sample"))))
            return try finish("latents", latents, loadSeconds: seconds(loaded - loadStart), forwardSeconds: seconds(clock.now - loaded), request)
        case .imageEncoder:
            let loadStart = clock.now
            let encoder = try loadImageEncoder(request.modelPath, backend: backend, precision: request.precision)
            let loaded = clock.now
            let embeds = try encoder(pixelValues: try inputs.tensor("pixel_values"))
            return try finish("image_embeds", embeds, loadSeconds: seconds(loaded - loadStart), forwardSeconds: seconds(clock.now - loaded), request)
        }
    }

    /// Wan's original CLIP checkpoint name (original-layout model folders).
    static let wanCLIPFile = "models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth"

    /// The CLIP vision encoder from a diffusers pipeline folder (its `image_encoder/`), an original Wan folder
    /// (its `models_clip_…pth`), an `image_encoder/` folder, or a file. The folder's config.json is used;
    /// for a file, a config.json beside it only if it is a CLIP config (an original Wan folder's config.json
    /// is the DiT's); otherwise the ViT-H/14 preset applies.
    static func loadImageEncoder(_ path: String, backend: any Backend, precision: Precision) throws -> CLIPVisionEncoder {
        let folder = path as NSString
        var location = path
        if ModelFiles.exists(folder.appendingPathComponent("image_encoder"), directory: true) {
            location = folder.appendingPathComponent("image_encoder")
        } else if ModelFiles.exists(folder.appendingPathComponent(wanCLIPFile), directory: false) {
            location = folder.appendingPathComponent(wanCLIPFile)
        }
        var config = try siblingConfig(location)
        if let found = config, !ModelFiles.exists(location, directory: true) {
            let object = try? JSONSerialization.jsonObject(with: found.data) as? [String: Any]
            let modelType = object?["model_type"] as? String
            if modelType != "clip_vision_model", modelType != "clip" { config = nil }
        }
        return try CLIPVisionEncoder.load(
            from: try Checkpoints.open(location), configJSON: config, backend: backend, precision: precision)
    }

    private static func finish(
        _ name: String, _ tensor: Tensor, loadSeconds: Double, forwardSeconds: Double, _ request: ComponentForwardRequest
    ) throws -> ComponentForwardReport {
        try SafeTensors.write([name: tensor], metadata: ["producer": "kinema forward"], to: request.outputPath)
        return ComponentForwardReport(
            loadSeconds: loadSeconds, forwardSeconds: forwardSeconds, outputs: [TensorInfo(name: name, dtype: tensor.dtype, shape: tensor.shape)])
    }

    /// config.json inside a component folder, or beside a component file.
    private static func siblingConfig(_ path: String) throws -> (data: Data, origin: String)? {
        let folder = ModelFiles.exists(path, directory: true) ? path : (path as NSString).deletingLastPathComponent
        let candidate = folder + "/config.json"
        return ModelFiles.exists(candidate, directory: false) ? try WanModelFolder.json(candidate) : nil
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) * 1e-18
    }
}
