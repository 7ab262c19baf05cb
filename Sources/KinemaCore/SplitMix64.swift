import Foundation

// SplitMix64: a tiny, fast, seedable generator with good statistical quality for non-cryptographic use
// (Steele, Lea & Flood 2014). Kinema uses it for initial noise, synthetic benchmark weights and tests, so
// the same seed gives the same numbers on every machine.

public struct SplitMix64: RandomNumberGenerator, Sendable {
    public private(set) var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1) with 24 random bits (every value exactly representable in f32).
    public mutating func unitFloat() -> Float { Float(next() >> 40) / Float(1 << 24) }

    /// Standard normal samples by the Box–Muller transform, computed in f64 and rounded to f32.
    public mutating func normals(_ count: Int) -> [Float] {
        var values = [Float](repeating: 0, count: count)
        var index = 0
        while index < count {
            // u1 in (0, 1] so the logarithm is finite.
            let u1 = (Double(next() >> 11) + 1) / 9_007_199_254_740_992.0
            let u2 = Double(next() >> 11) / 9_007_199_254_740_992.0
            let radius = (-2 * Foundation.log(u1)).squareRoot()
            values[index] = Float(radius * Foundation.cos(2 * Double.pi * u2))
            if index + 1 < count { values[index + 1] = Float(radius * Foundation.sin(2 * Double.pi * u2)) }
            index += 2
        }
        return values
    }
}

