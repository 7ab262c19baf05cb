import Foundation
import KinemaCore

// Where attention and conv3d go to cuDNN. `auto`: cuDNN when it loaded and accepts the problem, otherwise
// Kinema's kernel (one warning per rejected problem); `cudnn`: cuDNN for every problem it can take, an error
// instead of a fallback; `kinema`: never cuDNN.

extension CUDABackend {
    /// Attention through cuDNN, or nil when Kinema's kernel should run it.
    func attentionThroughCUDNN(query: Tensor, key: Tensor, value: Tensor, scale: Float) throws -> Tensor? {
        if attentionChoice == .kinema || attentionChoice == .wgmma { return nil }
        if let reason = CUDNNAttention.supports(query: query, key: key, value: value) {
            _ = reason  // e.g. f32: not a cuDNN SDPA problem, Kinema's kernel runs it in either mode
            return nil
        }
        let engine: CUDNNAttention
        switch context.cudnnAttention {
        case .success(let loaded): engine = loaded
        case .failure(let error):
            if attentionChoice == .cudnn { throw KinemaError.unsupported("KINEMA_ATTENTION=cudnn but \(error)") }
            return nil
        }
        do {
            return try engine.forward(query: query, key: key, value: value, scale: scale, context: context)
        } catch {
            if attentionChoice == .cudnn { throw error }
            context.warnOnce(
                "attention \(query.shape) \(key.shape) \(query.dtype)",
                "cuDNN attention failed for q \(query.shape) k \(key.shape) \(query.dtype.rawValue), using Kinema's kernel: \(error)")
            return nil
        }
    }

    /// conv3d through cuDNN into `out` (bias added here), or false when Kinema's kernel should run it.
    func conv3dThroughCUDNN(
        input: Tensor, filters: Tensor, bias: Tensor?, out: Tensor, stride: [Int], padding: [Int]
    ) throws -> Bool {
        if convolutionChoice == .kinema || convolutionChoice == .wgmma { return false }
        guard input.dtype == filters.dtype else { return false }  // mixed-dtype weights: Kinema's kernel
        let engine: CUDNNConvolution
        switch context.cudnnConvolution {
        case .success(let loaded): engine = loaded
        case .failure(let error):
            if convolutionChoice == .cudnn { throw KinemaError.unsupported("KINEMA_CONV=cudnn but \(error)") }
            return false
        }
        do {
            try engine.forward(input: input, filter: filters, output: out, stride: stride, padding: padding, context: context)
        } catch {
            if convolutionChoice == .cudnn { throw error }
            context.warnOnce(
                "conv3d \(input.shape) \(filters.shape) \(input.dtype)",
                "cuDNN conv3d failed for x \(input.shape) w \(filters.shape) \(input.dtype.rawValue), using Kinema's kernel: \(error)")
            return false
        }
        if let bias {
            let (planes, channels) = (out.shape[0] * out.shape[1], out.shape[1])
            let inner = out.count / max(1, planes)
            guard planes > 0, inner > 0 else { return true }
            // Enough blocks to fill the GPU: planes × blocks-per-plane ≈ 64 per multiprocessor.
            let perPlane = max(1, min((inner + 255) / 256, context.multiprocessors * 64 / planes))
            try launch(
                "kinema_channel_bias", ElementwiseKernels.unary(out.dtype), grid: (perPlane, min(planes, 65535), 1), block: (256, 1, 1)
            ) { arguments in
                arguments.append(address(out))
                arguments.append(address(bias))
                arguments.append(Int64(planes))
                arguments.append(Int32(channels))
                arguments.append(Int64(inner))
            }
        }
        return true
    }

    /// What runs attention and conv3d on this backend now, for `kinema doctor` / `kinema bench`.
    public var librarySelection: String {
        let loaded = context.cudnnAvailable
        func describe(_ choice: LibraryChoice) -> String {
            switch choice {
            case .kinema: return "Kinema kernel"
            case .wgmma:
                return context.architecture == "sm_90a"
                    ? "Kinema wgmma kernel where it applies (bf16, d = 128), else Kinema kernel" : "Kinema kernel (wgmma needs sm_90)"
            case .cudnn: return loaded ? "cuDNN (forced)" : "cuDNN (forced, but not loaded: calls fail)"
            case .auto: return loaded ? "cuDNN when it accepts the problem, else Kinema kernel" : "Kinema kernel (cuDNN not loaded)"
            }
        }
        return "attention: \(describe(attentionChoice)) [KINEMA_ATTENTION=\(attentionChoice.rawValue)]; "
            + "conv3d: \(describe(convolutionChoice)) [KINEMA_CONV=\(convolutionChoice.rawValue)]; "
            + "DiT passes: \(fusedPasses ? "fused" : "unfused compositions") [KINEMA_FUSED]"
    }

    /// The cuDNN plans built so far (attention and convolution), one line each.
    public var cudnnPlanSummary: [String] {
        var lines: [String] = []
        if case .success(let attention) = context.cudnnAttention { lines += attention.describePlans().map { "sdpa " + $0 } }
        if case .success(let convolution) = context.cudnnConvolution { lines += convolution.describePlans().map { "conv " + $0 } }
        if case .success(let graph) = context.cudnnChannelsLast { lines += graph.describePlans().map { "conv channels-last " + $0 } }
        return lines.sorted()
    }
}
