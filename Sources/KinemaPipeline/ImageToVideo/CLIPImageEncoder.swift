import Foundation
import KinemaCore
import KinemaIO
import KinemaModels
import KinemaNN

// The CLIP side of Wan2.1 image-to-video: each image (at the video size) → CLIP pixel values → the vision
// tower's penultimate hidden states [N, 257, 1280], the DiT's image tokens.
//
// Preprocessing is diffusers' (WanImageToVideoPipeline.encode_image → transformers CLIPImageProcessor: shortest
// edge, center crop, Pillow bicubic, CLIP mean/std) in both layouts, so one model gives one video whichever
// files it comes in: diffusers folders take the sizes from image_processor/, original folders (no such
// file) use the encoder's image size. Wan's own clip.py squashes the whole image to 224×224 with torch's
// bicubic instead (`CLIPImagePreprocessing.Mode.wanOriginal`, available to callers; not the pipeline default).

public final class WanCLIPImageEncoder: WanImageEncoder {
    public let encoder: CLIPVisionEncoder
    public let mode: CLIPImagePreprocessing.Mode
    /// Side of the square CLIP input (224 for ViT-H/14).
    public let size: Int

    public init(encoder: CLIPVisionEncoder, mode: CLIPImagePreprocessing.Mode, size: Int? = nil) throws {
        let side = size ?? encoder.config.imageSize
        guard side == encoder.config.imageSize else {
            throw KinemaError.unsupported("CLIP preprocessing size \(side) differs from the vision encoder's image size \(encoder.config.imageSize)")
        }
        self.encoder = encoder
        self.mode = mode
        self.size = side
    }

    public func encode(_ images: [RGBImage]) throws -> Tensor {
        guard !images.isEmpty else { throw KinemaError.invalidArgument("CLIP image encoder: no images") }
        let b = encoder.backend
        let pixels = try images.map { try b.upload(try CLIPImagePreprocessing.pixelValues(from: $0, size: size, mode: mode)) }
        let batch = pixels.count == 1 ? pixels[0] : try b.concat(pixels, axis: 0)
        return try b.upload(try encoder(pixelValues: batch))
    }

    /// The square size a diffusers `preprocessor_config.json` asks for, checking that its other settings are
    /// the ones CLIPImagePreprocessing reproduces (shortest-edge resize to the crop size, bicubic, CLIP mean/std).
    public static func processorSize(json data: Data, origin: String) throws -> Int {
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw KinemaError.badFile(path: origin, location: "top level", reason: "not a JSON object")
        }
        func number(_ value: Any?) -> Int? { (value as? NSNumber)?.intValue }
        let shortest = number((object["size"] as? [String: Any])?["shortest_edge"])
        let crop = object["crop_size"] as? [String: Any]
        let (cropHeight, cropWidth) = (number(crop?["height"]), number(crop?["width"]))
        guard let shortest, cropHeight == shortest, cropWidth == shortest else {
            throw KinemaError.unsupported(
                "\(origin): CLIP preprocessing with size \(String(describing: object["size"])) and crop_size \(String(describing: crop)); "
                    + "only a shortest-edge resize to the square crop size is supported")
        }
        for (key, expected) in [("image_mean", CLIPImagePreprocessing.mean), ("image_std", CLIPImagePreprocessing.std)] {
            if let values = object[key] as? [NSNumber], values.map({ $0.floatValue }) != expected {
                throw KinemaError.unsupported("\(origin): \(key) \(values) differs from CLIP's \(expected)")
            }
        }
        if let resample = number(object["resample"]), resample != 3 {
            throw KinemaError.unsupported("\(origin): resample \(resample); only bicubic (3) is supported")
        }
        for key in ["do_resize", "do_center_crop", "do_rescale", "do_normalize"] {
            if let flag = object[key] as? Bool, !flag {
                throw KinemaError.unsupported("\(origin): \(key) false is not supported (the CLIP preprocessing always does it)")
            }
        }
        if let factor = (object["rescale_factor"] as? NSNumber)?.doubleValue, abs(factor * 255 - 1) > 1e-9 {
            throw KinemaError.unsupported("\(origin): rescale_factor \(factor); only 1/255 is supported")
        }
        return shortest
    }
}

extension WanModelFolder {
    /// The CLIP image encoder of an I2V / FLF2V folder.
    public func loadImageEncoder(backend: any Backend, precision: Precision) throws -> WanCLIPImageEncoder {
        guard let imageEncoderWeights else {
            let expected = layout == .diffusers ? "image_encoder/model.safetensors" : WanModelFolder.originalCLIPFile
            throw KinemaError.io(path: path, reason: "this image-to-video model folder has no CLIP image encoder (looked for \(expected))")
        }
        let setup = try imageEncoderSetup()
        let encoder = try CLIPVisionEncoder.load(
            from: try Checkpoints.open(imageEncoderWeights), config: setup.config, backend: backend, precision: precision)
        return try WanCLIPImageEncoder(encoder: encoder, mode: .clipImageProcessor, size: setup.size)
    }

    /// The CLIP encoder's configuration (image_encoder/config.json; the ViT-H/14 preset for original folders,
    /// which have none) and the square input size (image_processor/preprocessor_config.json, else the
    /// encoder's), read and checked from the small JSON files alone so that a bad file is reported before
    /// any weights are loaded.
    public func imageEncoderSetup() throws -> (config: CLIPVisionConfig, size: Int) {
        let config = try WanModelFolder.json(imageEncoderConfig).map { try CLIPVisionConfig(json: $0.data, origin: $0.origin) } ?? .vitH14
        guard let processor = try WanModelFolder.json(imageProcessorConfig) else { return (config, config.imageSize) }
        let size = try WanCLIPImageEncoder.processorSize(json: processor.data, origin: processor.origin)
        guard size == config.imageSize else {
            throw KinemaError.unsupported(
                "\(processor.origin) asks for \(size)×\(size) CLIP input but the image encoder's image_size is \(config.imageSize) "
                    + "(\(imageEncoderConfig ?? "ViT-H/14 preset")); the two files must agree")
        }
        return (config, size)
    }
}
