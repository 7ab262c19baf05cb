import Foundation
import KinemaCore
import KinemaIO

// The video size of an image-to-video run: the input image's aspect ratio at (about) a target pixel area,
// each side a multiple of 16 (VAE stride 8 × DiT patch 2), e.g. a 1280×720 photo at 480·832 → 832×464.
// Two published rules, which differ only near rounding edges (Tests/Fixtures/wan_i2v/resize.json):
//   diffusers  WanImageToVideoPipeline's example / the Wan2.1-I2V model cards:
//              h = round(√(area · H/W)) // 16 · 16,  w = round(√(area · W/H)) // 16 · 16
//   wan        Wan2.1 wan/image2video.py: latent side = √(area · ratio) // 8 // 2 · 2, side = latent · 8
// Python's round is half-to-even; // on positive floats is the floor.

public enum WanVideoSizeRule: String, Sendable, CaseIterable {
    case diffusers
    case wan
}

public enum WanVideoSize {
    /// Sides are multiples of this (VAE spatial stride 8 × patch 2).
    public static let multiple = 16

    /// (width, height) of the video for an image of `imageWidth` × `imageHeight` at about `area` pixels.
    public static func target(imageWidth: Int, imageHeight: Int, area: Int, rule: WanVideoSizeRule = .diffusers) throws -> (width: Int, height: Int) {
        guard imageWidth > 0, imageHeight > 0 else {
            throw KinemaError.invalidArgument("image size \(imageWidth)×\(imageHeight) is empty")
        }
        let maximumSide = GenerationSettings.maximumSide
        guard area >= multiple * multiple, area <= maximumSide * maximumSide else {
            throw KinemaError.invalidArgument(
                "target area \(area) is outside \(multiple)×\(multiple) … \(maximumSide)×\(maximumSide) pixels")
        }
        let ratio = Double(imageHeight) / Double(imageWidth)
        let tallSide = (Double(area) * ratio).squareRoot()
        let wideSide = (Double(area) / ratio).squareRoot()
        let width: Int
        let height: Int
        switch rule {
        case .diffusers:
            height = Int(tallSide.rounded(.toNearestOrEven)) / multiple * multiple
            width = Int(wideSide.rounded(.toNearestOrEven)) / multiple * multiple
        case .wan:
            let stride = 8.0
            let patch = 2.0
            height = Int(((tallSide / stride).rounded(.down) / patch).rounded(.down) * patch * stride)
            width = Int(((wideSide / stride).rounded(.down) / patch).rounded(.down) * patch * stride)
        }
        guard width >= multiple, height >= multiple, width <= maximumSide, height <= maximumSide else {
            throw KinemaError.invalidArgument(
                "a \(imageWidth)×\(imageHeight) image at an area of \(area) pixels gives a \(width)×\(height) video; "
                    + "its aspect ratio is too extreme for this area (each side must be from \(multiple) to \(maximumSide)): "
                    + "crop the image or change --height × --width")
        }
        return (width, height)
    }
}
