import Foundation
import KinemaCore

// Reads back what a clip of the demo world shows (tools/demo-model/world.py: one coloured shape moving on a
// plain background), to check that the demo model's videos mean what their prompts say. The same rules as
// tools/demo-model/analyse.py, which reports the pass rates during training:
//
// - background: per-channel median of the frame borders (all frames);
// - foreground: pixels farther than 0.3 from it (RGB in [0, 1], Euclidean);
// - colour: the palette colour nearest to the mean of the clearly foreground pixels (distance > 0.5);
// - direction: the mask centroid's shift between the first and the last T/6 frames; it must exceed 8% of
//   the frame along one axis and be more than twice the shift along the other;
// - shape: median over frames of mask area / bounding-box area (square ≈ 1, circle ≈ π/4, triangle ≈ ½).

/// The demo world's vocabulary (tools/demo-model/world.py).
public enum DemoWorld {
    /// Object colours, RGB in [0, 1].
    public static let colours: [(name: String, rgb: [Float])] = [
        ("red", [1, 0, 0]), ("green", [0, 0.8, 0]), ("blue", [0, 0.25, 1]), ("yellow", [1, 1, 0]),
        ("cyan", [0, 1, 1]), ("magenta", [1, 0, 1]), ("orange", [1, 0.5, 0]), ("white", [1, 1, 1]),
    ]
    public static let shapes = ["circle", "square", "triangle"]
    public static let directions = ["right", "left", "up", "down"]
}

/// What a prompt asks for, read from its words ("a red circle moving right quickly").
public struct DemoPromptMeaning: Sendable, Equatable {
    public var colour: String
    public var shape: String
    public var direction: String

    public init(colour: String, shape: String, direction: String) {
        self.colour = colour
        self.shape = shape
        self.direction = direction
    }

    /// nil when the prompt does not name exactly one colour, shape and direction of the demo world.
    public init?(prompt: String) {
        let words = prompt.lowercased().split(whereSeparator: { !$0.isLetter }).map(String.init)
        // "dark blue" and "white" can name the background: only words before "on"/"over" describe the object.
        let object = words.prefix { $0 != "on" && $0 != "over" }
        func one(_ options: [String]) -> String? {
            let found = options.filter(object.contains)
            return found.count == 1 ? found[0] : nil
        }
        guard let colour = one(DemoWorld.colours.map(\.name)), let shape = one(DemoWorld.shapes),
            let direction = one(DemoWorld.directions)
        else { return nil }
        self.init(colour: colour, shape: shape, direction: direction)
    }
}

public struct DemoClipAnalysis: Sendable, CustomStringConvertible {
    public var background: [Float] = []
    /// Mean foreground pixels per frame.
    public var area: Float = 0
    public var colour: String?
    public var direction: String?
    public var shape: String?
    /// Centroid shift over the clip, as a fraction of the frame width / height (x right, y down).
    public var dx: Float = 0
    public var dy: Float = 0
    /// Median mask fill of its bounding box.
    public var fill: Float = 0

    public var description: String {
        String(
            format: "colour %@, direction %@ (dx %.3f, dy %.3f), shape %@ (fill %.2f), area %.0f px, background [%.2f %.2f %.2f]",
            colour ?? "none", direction ?? "none", dx, dy, shape ?? "none", fill, area,
            background.count == 3 ? background[0] : 0, background.count == 3 ? background[1] : 0,
            background.count == 3 ? background[2] : 0)
    }

    /// Which of colour, direction and shape match the prompt's meaning.
    public func matches(_ meaning: DemoPromptMeaning) -> (colour: Bool, direction: Bool, shape: Bool) {
        (colour == meaning.colour, direction == meaning.direction, shape == meaning.shape)
    }
}

public enum DemoFrameAnalyser {
    static let foregroundDistance: Float = 0.3
    static let strongDistance: Float = 0.5
    static let minimumTravel: Float = 0.08

    /// Analyses a video [3, T, H, W] or [1, 3, T, H, W] with values in [-1, 1] (host tensor, any float dtype).
    public static func analyse(_ video: Tensor) throws -> DemoClipAnalysis {
        let shape = video.shape
        guard (shape.count == 5 && shape[0] == 1 && shape[1] == 3) || (shape.count == 4 && shape[0] == 3) else {
            throw KinemaError.shapeMismatch(context: "demo clip analysis", expected: "[3, T, H, W] or [1, 3, T, H, W]", found: "\(shape)")
        }
        let (t, h, w) = (shape[shape.count - 3], shape[shape.count - 2], shape[shape.count - 1])
        guard t >= 1, h >= 2, w >= 2 else {
            throw KinemaError.shapeMismatch(context: "demo clip analysis", expected: "at least 1 frame of 2×2", found: "\(shape)")
        }
        let values = try video.floats()
        let plane = t * h * w
        // RGB in [0, 1] at (frame, y, x).
        func pixel(_ f: Int, _ y: Int, _ x: Int) -> (Float, Float, Float) {
            let i = (f * h + y) * w + x
            func unit(_ v: Float) -> Float { (min(max(v, -1), 1) + 1) / 2 }
            return (unit(values[i]), unit(values[plane + i]), unit(values[2 * plane + i]))
        }
        var result = DemoClipAnalysis()
        var border: [[Float]] = [[], [], []]
        for f in 0..<t {
            for x in 0..<w {
                for y in [0, h - 1] { let p = pixel(f, y, x); border[0].append(p.0); border[1].append(p.1); border[2].append(p.2) }
            }
            for y in 0..<h {
                for x in [0, w - 1] { let p = pixel(f, y, x); border[0].append(p.0); border[1].append(p.1); border[2].append(p.2) }
            }
        }
        let background = border.map(lowerMedian)
        result.background = background
        var mask = [Bool](repeating: false, count: plane)
        var strongSum: [Float] = [0, 0, 0]
        var strongCount = 0
        for f in 0..<t {
            for y in 0..<h {
                for x in 0..<w {
                    let p = pixel(f, y, x)
                    let d = ((p.0 - background[0]) * (p.0 - background[0]) + (p.1 - background[1]) * (p.1 - background[1])
                        + (p.2 - background[2]) * (p.2 - background[2])).squareRoot()
                    mask[(f * h + y) * w + x] = d > foregroundDistance
                    if d > strongDistance {
                        strongSum[0] += p.0
                        strongSum[1] += p.1
                        strongSum[2] += p.2
                        strongCount += 1
                    }
                }
            }
        }
        var centroids: [(x: Float, y: Float)] = []
        var fills: [Float] = []
        var totalArea = 0
        for f in 0..<t {
            var count = 0
            var sx: Float = 0
            var sy: Float = 0
            var (minX, maxX, minY, maxY) = (w, -1, h, -1)
            for y in 0..<h {
                for x in 0..<w where mask[(f * h + y) * w + x] {
                    count += 1
                    sx += Float(x)
                    sy += Float(y)
                    minX = min(minX, x); maxX = max(maxX, x); minY = min(minY, y); maxY = max(maxY, y)
                }
            }
            totalArea += count
            guard count > 0 else { continue }
            centroids.append((sx / Float(count), sy / Float(count)))
            fills.append(Float(count) / Float((maxX - minX + 1) * (maxY - minY + 1)))
        }
        result.area = Float(totalArea) / Float(t)
        // Every frame must show the object; a clip where it vanishes has no defined motion or shape.
        guard strongCount > 0, centroids.count == t else { return result }
        let mean = strongSum.map { $0 / Float(strongCount) }
        result.colour = DemoWorld.colours.min { distance($0.rgb, mean) < distance($1.rgb, mean) }?.name
        let k = max(1, t / 6)
        func average(_ slice: ArraySlice<(x: Float, y: Float)>) -> (Float, Float) {
            (slice.map(\.x).reduce(0, +) / Float(slice.count), slice.map(\.y).reduce(0, +) / Float(slice.count))
        }
        let first = average(centroids.prefix(k))
        let last = average(centroids.suffix(k))
        result.dx = (last.0 - first.0) / Float(w)
        result.dy = (last.1 - first.1) / Float(h)
        if max(abs(result.dx), abs(result.dy)) > minimumTravel {
            if abs(result.dx) > 2 * abs(result.dy) {
                result.direction = result.dx > 0 ? "right" : "left"
            } else if abs(result.dy) > 2 * abs(result.dx) {
                result.direction = result.dy > 0 ? "down" : "up"
            }
        }
        result.fill = fills.sorted()[fills.count / 2]
        result.shape = result.fill > 0.89 ? "square" : (result.fill < 0.64 ? "triangle" : "circle")
        return result
    }

    /// torch.median's choice for an even count: the lower of the two middle values.
    static func lowerMedian(_ values: [Float]) -> Float {
        let sorted = values.sorted()
        return sorted[(sorted.count - 1) / 2]
    }

    static func distance(_ a: [Float], _ b: [Float]) -> Float {
        zip(a, b).map { ($0 - $1) * ($0 - $1) }.reduce(0, +).squareRoot()
    }
}
