import Foundation
import KinemaCore

/// The Y'CbCr matrix used for Y4M output. Both use limited ("video") range: Y' in 16…235, Cb/Cr in
/// 16…240, which is what players assume for untagged 4:2:0 video.
public enum YCbCrMatrix: String, Sendable, CaseIterable {
    /// ITU-R BT.601 (Kr 0.299, Kb 0.114): the Y4M/MPEG convention for SD and ffmpeg's default for untagged input.
    case bt601
    /// ITU-R BT.709 (Kr 0.2126, Kb 0.0722): HD video.
    case bt709

    var coefficients: (kr: Float, kb: Float) {
        switch self {
        case .bt601: return (0.299, 0.114)
        case .bt709: return (0.2126, 0.0722)
        }
    }
}

// YUV4MPEG2 (.y4m) writer: header line `YUV4MPEG2 W H F<fps>:1 Ip A1:1 C420jpeg XCOLORRANGE=LIMITED`,
// then per frame `FRAME\n` + the Y' plane (W×H) + Cb + Cr planes (⌈W/2⌉×⌈H/2⌉ each). Chroma is
// "420jpeg" siting: each chroma sample is the mean over its 2×2 block (fewer pixels at odd edges),
// computed on the RGB values before the (linear) matrix, then rounded.
//
// Conversion, r, g, b ∈ [0, 1] (gamma-encoded, as stored): y = Kr·r + (1−Kr−Kb)·g + Kb·b,
// Y' = 16 + 219·y, Cb = 128 + 224·(b − y)/(2(1 − Kb)), Cr = 128 + 224·(r − y)/(2(1 − Kr)).

public enum Y4MWriter {
    public static func encode(_ video: RGBVideo, fps: Int, matrix: YCbCrMatrix = .bt601) throws -> [UInt8] {
        guard fps >= 1 else { throw KinemaError.invalidArgument("Y4M frame rate must be positive, got \(fps)") }
        let (w, h) = (video.width, video.height)
        let (cw, ch) = ((w + 1) / 2, (h + 1) / 2)
        var out = Array("YUV4MPEG2 W\(w) H\(h) F\(fps):1 Ip A1:1 C420jpeg XCOLORRANGE=LIMITED\n".utf8)
        out.reserveCapacity(out.count + video.frameCount * (6 + w * h + 2 * cw * ch))
        let (kr, kb) = matrix.coefficients
        let kg = 1 - kr - kb
        func luma(_ r: Float, _ g: Float, _ b: Float) -> Float { kr * r + kg * g + kb * b }
        func byte(_ value: Float) -> UInt8 { UInt8(min(255, max(0, value.rounded()))) }
        for frame in video.frames {
            out += Array("FRAME\n".utf8)
            for pixel in 0..<(w * h) {
                let y = luma(Float(frame[pixel * 3]) / 255, Float(frame[pixel * 3 + 1]) / 255, Float(frame[pixel * 3 + 2]) / 255)
                out.append(byte(16 + 219 * y))
            }
            var cb = [UInt8](repeating: 0, count: cw * ch)
            var cr = [UInt8](repeating: 0, count: cw * ch)
            for cy in 0..<ch {
                for cx in 0..<cw {
                    var (r, g, b, n): (Float, Float, Float, Float) = (0, 0, 0, 0)
                    for y in (2 * cy)..<min(2 * cy + 2, h) {
                        for x in (2 * cx)..<min(2 * cx + 2, w) {
                            let p = (y * w + x) * 3
                            r += Float(frame[p])
                            g += Float(frame[p + 1])
                            b += Float(frame[p + 2])
                            n += 1
                        }
                    }
                    (r, g, b) = (r / (255 * n), g / (255 * n), b / (255 * n))
                    let y = luma(r, g, b)
                    cb[cy * cw + cx] = byte(128 + 224 * (b - y) / (2 * (1 - kb)))
                    cr[cy * cw + cx] = byte(128 + 224 * (r - y) / (2 * (1 - kr)))
                }
            }
            out += cb
            out += cr
        }
        return out
    }
}
