import ArgumentParser
import Foundation
import KinemaCore
import KinemaPipeline

struct Forward: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run one model component on tensors from a safetensors file and write its outputs.",
        discussion: """
            Tensor names follow diffusers' argument names.
              transformer:  hidden_states [B, C, F, H, W], timestep [B], encoder_hidden_states [B, L, 4096],
                            optional encoder_hidden_states_image [B, 257, 1280] → sample [B, 16, F, H, W]
              text_encoder: input_ids [B, L], optional attention_mask [B, L] → last_hidden_state [B, L, 4096]
              vae_decoder:  latents [B, 16, T, h, w] (normalized, as the DiT produces them) → sample [B, 3, 4(T−1)+1, 8h, 8w]
              vae_encoder:  sample [B, 3, F, H, W] in [-1, 1] → latents (normalized μ)
              image_encoder: pixel_values [B, 3, 224, 224] (CLIP-normalized) → image_embeds [B, 257, 1280]
                            (CLIP ViT-H/14 hidden states after the second-to-last block, as Wan I2V uses them)
            --model may be a pipeline folder (the component is found inside it) or the component's own folder or file.
            """)

    @Option(help: "Model folder, pipeline folder or single .safetensors file.")
    var model: String

    @Option(help: "Which component to run.")
    var component: ModelComponent = .transformer

    @Option(help: "Input tensors (.safetensors).")
    var inputs: String

    @Option(help: "Where to write the outputs (.safetensors).")
    var output: String

    @OptionGroup var compute: ComputeOptions

    func run() throws {
        try runReportingErrors {
            let logger = makeLogger()
            var request = ComponentForwardRequest(
                modelPath: model, component: component, inputsPath: inputs, outputPath: output,
                precision: compute.precision, device: compute.device.device)
            request.maxDeviceMemory = try compute.memoryBudget()
            let report = try ComponentForward.run(request)
            for tensor in report.outputs {
                logger.info("\(tensor.name): \(tensor.dtype.rawValue) \(tensor.shape)")
            }
            logger.info(
                "loaded in \(String(format: "%.2f", report.loadSeconds)) s, forward in \(String(format: "%.2f", report.forwardSeconds)) s → \(output)")
        }
    }
}
