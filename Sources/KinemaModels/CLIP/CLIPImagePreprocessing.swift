import Foundation
import KinemaCore
import KinemaIO

// Image → CLIP pixel values, the two ways Wan2.1 I2V implementations do it. They differ (aspect ratio and
// resampler), so the image embedding — and the video — depend on which one a pipeline follows:
//
// - `.clipImageProcessor` — diffusers' WanImageToVideoPipeline.encode_image: transformers CLIPImageProcessor
//   from the folder's `image_processor/` (Wan's: shortest edge 224, center crop 224, bicubic, rescale 1/255,
//   CLIP mean/std). The aspect ratio is kept and the borders are cropped. Reproduced: the PIL backend
//   (`CLIPImageProcessorPil`), which transformers 5 uses when torchvision is absent and which every
//   transformers 4 release used. With torchvision installed, transformers 5's default CLIPImageProcessor
//   resizes with torchvision on tensors instead (antialiased bicubic, close to Pillow but not bit-identical).
//   Use this for diffusers-layout folders.
// - `.wanOriginal` — Wan's wan/modules/clip.py CLIPModel.visual: the [-1, 1] image tensor is resized with
//   `F.interpolate(mode="bicubic", align_corners=False)` straight to 224×224 (the aspect ratio is squashed,
//   nothing is cropped, no antialiasing, no rounding to 8 bits), mapped to [0, 1] by ·0.5 + 0.5, then
//   normalised with the same mean/std. Use this for original-Wan-layout checkpoints.

public enum CLIPImagePreprocessing {
    public enum Mode: String, Sendable, CaseIterable {
        case clipImageProcessor
        case wanOriginal
    }

    /// OpenAI CLIP normalisation (transformers OPENAI_CLIP_MEAN / _STD; Wan's clip.py uses the same values).
    public static let mean: [Float] = [0.48145466, 0.4578275, 0.40821073]
    public static let std: [Float] = [0.26862954, 0.26130258, 0.27577711]

    /// The CLIP vision encoder's input for one image: [1, 3, size, size] f32 (host), resized and normalised
    /// as `mode` says. Batches are made by concatenating along axis 0.
    public static func pixelValues(from image: RGBImage, size: Int = 224, mode: Mode = .clipImageProcessor) throws -> Tensor {
        guard size > 0, image.width > 0, image.height > 0, image.pixels.count == image.width * image.height * 3 else {
            throw KinemaError.invalidArgument(
                "CLIP preprocessing: a \(image.width)×\(image.height) image with \(image.pixels.count) bytes, size \(size)")
        }
        switch mode {
        case .clipImageProcessor:
            return try processorPixelValues(image, size: size)
        case .wanOriginal:
            return try wanPixelValues(image, size: size)
        }
    }

    /// Pillow's `image.resize((width, height), Image.BICUBIC)` for an 8-bit RGB image, byte for byte.
    public static func pillowBicubicResize(_ image: RGBImage, width: Int, height: Int) throws -> RGBImage {
        try image.resized(width: width, height: height, filter: .bicubic)
    }

    /// transformers `get_resize_output_image_size(default_to_square=False)`: the short side becomes `size`,
    /// the long side `int(size · long / short)` (truncated) → (width, height).
    static func shortestEdgeSize(width: Int, height: Int, size: Int) -> (width: Int, height: Int) {
        if width <= height {
            return (size, Int(Double(size) * Double(height) / Double(width)))
        }
        return (Int(Double(size) * Double(width) / Double(height)), size)
    }

    /// Resize (Pillow bicubic, shortest edge) → center crop → `u8 · (1/255)` (computed in f64, stored f32, as
    /// transformers' rescale) → `(x − mean) / std` in f32.
    static func processorPixelValues(_ image: RGBImage, size: Int) throws -> Tensor {
        let target = shortestEdgeSize(width: image.width, height: image.height, size: size)
        // transformers center_crop: top = (h − crop) // 2, left = (w − crop) // 2 (never out of bounds here:
        // both sides are ≥ size after the resize). Only the cropped square is resampled, which gives the same
        // bytes (each resampled sample depends only on its own position) without the full long side.
        let top = (target.height - size) / 2
        let left = (target.width - size) / 2
        let crop = try image.resized(
            width: target.width, height: target.height, filter: .bicubic, columns: left..<(left + size), rows: top..<(top + size))
        var values = [Float](repeating: 0, count: 3 * size * size)
        for channel in 0..<3 {
            let (mean, std) = (mean[channel], std[channel])
            for y in 0..<size {
                for x in 0..<size {
                    let byte = crop.pixels[(y * size + x) * 3 + channel]
                    let rescaled = Float(Double(byte) * (1.0 / 255.0))
                    values[(channel * size + y) * size + x] = (rescaled - mean) / std
                }
            }
        }
        return try Tensor(values, shape: [1, 3, size, size], dtype: .f32)
    }

    /// Wan: `F.interpolate` bicubic of the [-1, 1] tensor to size×size, ·0.5 + 0.5, `(x − mean) / std`, all f32.
    /// (On the GPU Wan interpolates in the image tensor's dtype, f32; its CLIP forward then runs under autocast.)
    static func wanPixelValues(_ image: RGBImage, size: Int) throws -> Tensor {
        let resized = try TorchBicubic.resize(try image.tensor(), height: size, width: size).floats()
        let plane = size * size
        var values = [Float](repeating: 0, count: 3 * plane)
        for channel in 0..<3 {
            let (mean, std) = (mean[channel], std[channel])
            for index in 0..<plane {
                let unit = resized[channel * plane + index] * 0.5 + 0.5
                values[channel * plane + index] = (unit - mean) / std
            }
        }
        return try Tensor(values, shape: [1, 3, size, size], dtype: .f32)
    }
}
