import Foundation
import KinemaCore

// 3-D rotary position embedding of the Wan DiT (matches diffusers WanRotaryPosEmbed and Wan's rope_params).
// The head dim d is split into frequency groups for time, height and width: h = w = 2·⌊d/6⌋, t = d − 2h
// (44/42/42 for d = 128). Each group has its own ladder 1/θ^(2j/d_axis), θ = 10000. Angles are computed in
// f64 and rounded to f32 once, as diffusers does.

public struct WanRoPE {
    public let cos: Tensor  // [L, d/2] f32
    public let sin: Tensor  // [L, d/2] f32

    /// Tables for a latent grid of `frames × height × width` patches, tokens in (f, h, w) order.
    public init(headDim: Int, frames: Int, height: Int, width: Int, theta: Double = 10000) throws {
        let axisH = 2 * (headDim / 6)
        let axisW = axisH
        let axisT = headDim - axisH - axisW
        let half = headDim / 2
        func ladder(_ axisDim: Int) -> [Double] {
            (0..<(axisDim / 2)).map { 1.0 / pow(theta, Double(2 * $0) / Double(axisDim)) }
        }
        let (freqT, freqH, freqW) = (ladder(axisT), ladder(axisH), ladder(axisW))
        let tokens = frames * height * width
        var cosValues = [Float](repeating: 0, count: tokens * half)
        var sinValues = [Float](repeating: 0, count: tokens * half)
        var token = 0
        for f in 0..<frames {
            for h in 0..<height {
                for w in 0..<width {
                    var column = token * half
                    for (position, ladder) in [(f, freqT), (h, freqH), (w, freqW)] {
                        for frequency in ladder {
                            let angle = Double(position) * frequency
                            cosValues[column] = Float(Foundation.cos(angle))
                            sinValues[column] = Float(Foundation.sin(angle))
                            column += 1
                        }
                    }
                    token += 1
                }
            }
        }
        cos = try Tensor(cosValues, shape: [tokens, half])
        sin = try Tensor(sinValues, shape: [tokens, half])
    }
}
