import Foundation
import KinemaCore

// LightX2V's flat JSON inference config (`--config_json`), mapped onto GenerationSettings. Only the keys
// that mean something for this engine are applied; the rest are reported back as ignored so a user sees
// what had no effect.

public struct LightX2VConfig: Sendable {
    public var steps: Int?
    public var frames: Int?
    public var height: Int?
    public var width: Int?
    public var guidance: Float?
    public var shift: Double?
    public var enableCFG: Bool?
    public var denoisingSteps: [Int]?
    public var seed: UInt64?
    public var fps: Int?
    public var negativePrompt: String?
    /// Keys present in the file that Kinema does not use.
    public var ignoredKeys: [String]

    static let applied: Set<String> = [
        "infer_steps", "target_video_length", "target_height", "target_width", "sample_guide_scale", "sample_shift",
        "enable_cfg", "denoising_step_list", "seed", "fps", "negative_prompt",
    ]

    public static func parse(_ data: Data, origin: String) throws -> LightX2VConfig {
        guard let object = try? JSONSerialization.jsonObject(with: data), let dict = object as? [String: Any] else {
            throw KinemaError.badFile(path: origin, location: nil, reason: "not a JSON object")
        }
        func number(_ key: String) throws -> Double? {
            guard let value = dict[key], !(value is NSNull) else { return nil }
            if let list = value as? [NSNumber], let first = list.first {
                return first.doubleValue  // Wan2.2 MoE gives [high, low]; Wan2.1 uses one value
            }
            guard let number = value as? NSNumber else {
                throw KinemaError.badFile(path: origin, location: key, reason: "expected a number, found \(value)")
            }
            return number.doubleValue
        }
        func integer(_ key: String, limit: Double = 1e9) throws -> Int? {
            guard let value = try number(key) else { return nil }
            guard value.rounded() == value, abs(value) < limit else {
                throw KinemaError.badFile(path: origin, location: key, reason: "expected an integer below \(limit) in magnitude, found \(value)")
            }
            return Int(value)
        }
        var config = LightX2VConfig(ignoredKeys: dict.keys.filter { !applied.contains($0) }.sorted())
        config.steps = try integer("infer_steps")
        config.frames = try integer("target_video_length")
        config.height = try integer("target_height")
        config.width = try integer("target_width")
        config.guidance = try number("sample_guide_scale").map(Float.init)
        config.shift = try number("sample_shift")
        if let value = dict["enable_cfg"] {
            guard let flag = value as? Bool else {
                throw KinemaError.badFile(path: origin, location: "enable_cfg", reason: "expected true or false, found \(value)")
            }
            config.enableCFG = flag
        }
        if let value = dict["denoising_step_list"] {
            guard let list = value as? [NSNumber], list.allSatisfy({ $0.doubleValue.rounded() == $0.doubleValue }) else {
                throw KinemaError.badFile(path: origin, location: "denoising_step_list", reason: "expected a list of integers, found \(value)")
            }
            config.denoisingSteps = list.map(\.intValue)
        }
        // Seeds are often above 1e9; every integer up to 2^53 survives JSON's double.
        if let seed = try integer("seed", limit: 0x20_0000_0000_0000) {
            guard seed >= 0 else { throw KinemaError.badFile(path: origin, location: "seed", reason: "expected a seed ≥ 0, found \(seed)") }
            config.seed = UInt64(seed)
        }
        config.fps = try integer("fps")
        config.negativePrompt = dict["negative_prompt"] as? String
        return config
    }

    /// Applies the file's values to `settings` (explicit command-line values are applied after this).
    public func apply(to settings: inout GenerationSettings) {
        if let frames { settings.frames = frames }
        if let height { settings.height = height }
        if let width { settings.width = width }
        if let guidance { settings.guidance = guidance }
        if let shift { settings.sampler.shift = shift }
        if let steps { settings.sampler.steps = steps }
        if let denoisingSteps {
            settings.sampler.kind = .stepDistill
            settings.sampler.denoisingSteps = denoisingSteps
            settings.sampler.steps = denoisingSteps.count
        }
        if enableCFG == false { settings.guidance = 1 }
        if let seed { settings.seed = seed }
        if let negativePrompt { settings.negativePrompt = negativePrompt }
    }
}
