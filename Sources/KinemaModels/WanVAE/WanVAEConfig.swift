import Foundation
import KinemaCore

// Hyper-parameters of the Wan2.1 video VAE (matches the constructor of diffusers AutoencoderKLWan and Wan's
// `_video_vae`). Read from a diffusers `config.json`, or detected from the original-Wan tensor names and
// shapes (`Wan2.1_VAE.pth` ships without a config).

public struct WanVAEConfig: Sendable, Equatable, Codable {
    /// Encoder width of the first stage (96 in Wan2.1).
    public var baseDim: Int
    /// Decoder base width; differs from `baseDim` only in pruned variants.
    public var decoderBaseDim: Int
    /// Latent channels (16 in Wan2.1). The encoder produces 2·z (μ, log σ²).
    public var zDim: Int
    /// Channel multiplier per stage ([1, 2, 4, 4] in Wan2.1).
    public var dimMult: [Int]
    /// Residual blocks per encoder stage (the decoder uses one more).
    public var numResBlocks: Int
    /// Per encoder downsample: whether it also halves time ([false, true, true] in Wan2.1). The decoder
    /// upsamples in time in the reverse order.
    public var temporalDownsample: [Bool]
    public var inChannels: Int = 3
    public var outChannels: Int = 3
    /// Per-channel statistics of the latent space: the diffusion model works on (μ − mean) / std.
    public var latentsMean: [Float]
    public var latentsStd: [Float]

    /// Wan2.1's published statistics of its 16 latent channels (the `latents_mean` / `latents_std` defaults
    /// of AutoencoderKLWan and the constants of Wan's `WanVAE`).
    public static let wan21LatentsMean: [Float] = [
        -0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
        0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921,
    ]
    public static let wan21LatentsStd: [Float] = [
        2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
        3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160,
    ]

    /// Wan2.1_VAE (also used by every Wan2.1 T2V / I2V / FLF2V model).
    public static let wan21 = WanVAEConfig(
        baseDim: 96, decoderBaseDim: 96, zDim: 16, dimMult: [1, 2, 4, 4], numResBlocks: 2,
        temporalDownsample: [false, true, true], latentsMean: wan21LatentsMean, latentsStd: wan21LatentsStd)

    public var stageCount: Int { dimMult.count }
    /// Pixels per latent pixel along H and W (8 in Wan2.1).
    public var spatialCompression: Int { 1 << (dimMult.count - 1) }
    /// Pixel frames per latent frame after the first (4 in Wan2.1).
    public var temporalCompression: Int { 1 << temporalDownsample.filter { $0 }.count }
    /// Decoder upsample order: the encoder's temporal flags reversed.
    public var temporalUpsample: [Bool] { temporalDownsample.reversed() }

    /// Encoder stage widths: base·[1] + base·dimMult.
    var encoderDims: [Int] { [baseDim] + dimMult.map { $0 * baseDim } }
    /// Decoder stage widths: base·[last mult] + base·reversed(dimMult).
    var decoderDims: [Int] { [dimMult.last ?? 1].map { $0 * decoderBaseDim } + dimMult.reversed().map { $0 * decoderBaseDim } }

    public func validate() throws {
        guard baseDim > 0, decoderBaseDim > 0, zDim > 0, numResBlocks > 0, inChannels > 0, outChannels > 0,
            !dimMult.isEmpty, dimMult.allSatisfy({ $0 > 0 })
        else {
            throw KinemaError.invalidArgument("Wan VAE config: sizes must be positive: \(self)")
        }
        // Bounds before any arithmetic on the sizes: a config file controls them, and width products
        // must not overflow.
        guard baseDim <= 1 << 16, decoderBaseDim <= 1 << 16, zDim <= 1 << 16, inChannels <= 1 << 16,
            outChannels <= 1 << 16, numResBlocks <= 64, dimMult.count <= 8, dimMult.allSatisfy({ $0 <= 1 << 8 })
        else {
            throw KinemaError.invalidArgument("Wan VAE config: sizes out of range: \(self)")
        }
        guard temporalDownsample.count == dimMult.count - 1 else {
            throw KinemaError.invalidArgument(
                "Wan VAE config: temperal_downsample has \(temporalDownsample.count) entries, dim_mult \(dimMult.count) stages need \(dimMult.count - 1)")
        }
        // The chunked encoder reads 1 + 4k frames in chunks of 4 (hard-coded upstream); that only lines up
        // with the latent grid when time is compressed exactly 4×.
        guard temporalCompression == 4 else {
            throw KinemaError.unsupported("Wan VAE config: temporal compression \(temporalCompression); the chunked Wan2.1 VAE needs 4")
        }
        // upsample2d/3d halve the channels; every stage after the first sees half its predecessor's width.
        guard decoderDims.dropFirst().allSatisfy({ $0 % 2 == 0 }) else {
            throw KinemaError.invalidArgument("Wan VAE config: decoder widths \(decoderDims) must be even")
        }
        guard latentsMean.count == zDim, latentsStd.count == zDim else {
            throw KinemaError.invalidArgument(
                "Wan VAE config: latents_mean / latents_std have \(latentsMean.count) / \(latentsStd.count) entries, z_dim is \(zDim)")
        }
        guard latentsStd.allSatisfy({ $0.isFinite && $0 != 0 }), latentsMean.allSatisfy(\.isFinite) else {
            throw KinemaError.invalidArgument("Wan VAE config: latents_std must be finite and non-zero, latents_mean finite")
        }
    }
}

// MARK: - config.json (diffusers AutoencoderKLWan)

extension WanVAEConfig {
    /// Parses a diffusers `AutoencoderKLWan` config.json. Wan2.2 features (`is_residual`, `patch_size`) and
    /// encoder attention (`attn_scales`) are refused: the Wan2.1 blocks do not implement them.
    public static func parse(json data: Data, origin: String) throws -> WanVAEConfig {
        guard let object = try? JSONSerialization.jsonObject(with: data), let dict = object as? [String: Any] else {
            throw KinemaError.badFile(path: origin, location: nil, reason: "config.json is not a JSON object")
        }
        func present(_ key: String) -> Any? {
            guard let value = dict[key], !(value is NSNull) else { return nil }
            return value
        }
        func int(_ key: String, default fallback: Int) throws -> Int {
            guard let value = present(key) else { return fallback }
            guard let number = value as? NSNumber, let exact = Int(exactly: number.doubleValue) else {
                throw KinemaError.badFile(path: origin, location: key, reason: "expected an integer, found \(value)")
            }
            return exact
        }
        func list<T>(_ key: String, default fallback: [T], _ convert: (Any) -> T?) throws -> [T] {
            guard let value = present(key) else { return fallback }
            guard let items = value as? [Any] else {
                throw KinemaError.badFile(path: origin, location: key, reason: "expected a list, found \(value)")
            }
            return try items.enumerated().map { index, item in
                guard let converted = convert(item) else {
                    throw KinemaError.badFile(path: origin, location: "\(key)[\(index)]", reason: "unexpected value \(item)")
                }
                return converted
            }
        }
        let floatValue: (Any) -> Float? = { item in
            guard let number = item as? NSNumber else { return nil }
            return number.floatValue
        }
        if let name = present("_class_name") as? String, name != "AutoencoderKLWan" {
            throw KinemaError.badFile(path: origin, location: "_class_name", reason: "expected AutoencoderKLWan, found \(name)")
        }
        if let residual = present("is_residual") as? Bool, residual {
            throw KinemaError.unsupported("\(origin): is_residual = true is the Wan2.2 VAE; only the Wan2.1 VAE is implemented")
        }
        if present("patch_size") != nil {
            throw KinemaError.unsupported("\(origin): patch_size is a Wan2.2 VAE feature; only the Wan2.1 VAE is implemented")
        }
        let attention = try list("attn_scales", default: [Float]()) { floatValue($0) }
        guard attention.isEmpty else {
            throw KinemaError.unsupported("\(origin): attn_scales \(attention); Wan2.1 uses attention only in the middle blocks ([])")
        }
        let base = try int("base_dim", default: 96)
        let z = try int("z_dim", default: 16)
        var config = WanVAEConfig(
            baseDim: base, decoderBaseDim: try int("decoder_base_dim", default: base), zDim: z,
            dimMult: try list("dim_mult", default: [1, 2, 4, 4]) { ($0 as? NSNumber).flatMap { Int(exactly: $0.doubleValue) } },
            numResBlocks: try int("num_res_blocks", default: 2),
            temporalDownsample: try list("temperal_downsample", default: [false, true, true]) { $0 as? Bool },
            latentsMean: try list("latents_mean", default: wan21LatentsMean, floatValue),
            latentsStd: try list("latents_std", default: wan21LatentsStd, floatValue))
        config.inChannels = try int("in_channels", default: 3)
        config.outChannels = try int("out_channels", default: 3)
        do {
            try config.validate()
        } catch let error as KinemaError {
            throw KinemaError.badFile(path: origin, location: nil, reason: error.description)
        }
        return config
    }
}

// MARK: - detection from original-Wan tensor names

extension WanVAEConfig {
    /// Derives the architecture from canonical (original Wan) keys: widths from conv shapes, stages and
    /// temporal flags from the `encoder.downsamples.N` sequence (residual blocks, then a `resample` with or
    /// without `time_conv`). The latent statistics are not in the weights: Wan2.1's are used for z = 16,
    /// other widths must pass them.
    public static func detect(
        info: (String) -> TensorInfo?, keys: [String], latentsMean: [Float]? = nil, latentsStd: [Float]? = nil,
        origin: String = "checkpoint"
    ) throws -> WanVAEConfig {
        func shape(_ key: String, rank: Int) throws -> [Int] {
            guard let found = info(key) else {
                throw KinemaError.badFile(path: origin, location: key, reason: "not a Wan2.1 VAE: this tensor is needed to detect its configuration")
            }
            guard found.shape.count == rank else {
                throw KinemaError.badFile(path: origin, location: key, reason: "expected \(rank) dims, found \(found.shape)")
            }
            return found.shape
        }
        let stem = try shape("encoder.conv1.weight", rank: 5)  // [base, in, 3, 3, 3]
        let post = try shape("conv2.weight", rank: 5)  // [z, z, 1, 1, 1]
        let head = try shape("decoder.head.2.weight", rank: 5)  // [out, decoder base, 3, 3, 3]
        let indices = Set(keys.compactMap { key -> Int? in
            guard key.hasPrefix("encoder.downsamples.") else { return nil }
            return Int(key.dropFirst("encoder.downsamples.".count).prefix { $0 != "." })
        }).sorted()
        guard indices == Array(0..<indices.count), !indices.isEmpty else {
            throw KinemaError.badFile(path: origin, location: "encoder.downsamples", reason: "block indices \(indices) are not 0..<n")
        }
        var stageWidths: [Int] = []  // output width of each stage's last residual block
        var residualCounts: [Int] = []
        var temporal: [Bool] = []
        var current = 0
        var width = 0
        for index in indices {
            let prefix = "encoder.downsamples.\(index)."
            if info(prefix + "residual.2.weight") != nil {
                width = try shape(prefix + "residual.2.weight", rank: 5)[0]
                current += 1
            } else if info(prefix + "resample.1.weight") != nil {
                stageWidths.append(width)
                residualCounts.append(current)
                temporal.append(info(prefix + "time_conv.weight") != nil)
                current = 0
            } else {
                throw KinemaError.badFile(path: origin, location: String(prefix.dropLast()), reason: "neither a residual block nor a resample")
            }
        }
        stageWidths.append(width)
        residualCounts.append(current)
        guard let blocks = residualCounts.first, residualCounts.allSatisfy({ $0 == blocks }), stem[0] > 0,
            stageWidths.allSatisfy({ $0 % stem[0] == 0 })
        else {
            throw KinemaError.badFile(
                path: origin, location: "encoder.downsamples",
                reason: "irregular stages: residual blocks \(residualCounts), widths \(stageWidths) for base \(stem[0])")
        }
        let z = post[0]
        let mean = latentsMean ?? (z == 16 ? wan21LatentsMean : nil)
        let std = latentsStd ?? (z == 16 ? wan21LatentsStd : nil)
        guard let mean, let std else {
            throw KinemaError.invalidArgument("\(origin): z_dim \(z) is not Wan2.1's 16; pass latents_mean and latents_std (or a config.json)")
        }
        var config = WanVAEConfig(
            baseDim: stem[0], decoderBaseDim: head[1], zDim: z, dimMult: stageWidths.map { $0 / stem[0] },
            numResBlocks: blocks, temporalDownsample: temporal, latentsMean: mean, latentsStd: std)
        config.inChannels = stem[1]
        config.outChannels = head[0]
        try config.validate()
        return config
    }
}
