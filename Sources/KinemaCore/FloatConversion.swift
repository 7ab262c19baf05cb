// Scalar conversions between f32 and the narrow float formats, rounding exactly as PyTorch does (checked
// bit for bit against torch 2.15 in FloatConversionGoldenTests): round-to-nearest-even for bf16, f16 and
// f8e5m2 (overflow → ±inf); f8e4m3fn rounds to nearest even and saturates to ±448, infinities included.

/// What an f8e4m3fn conversion does with values beyond its largest finite value, 448.
public enum Float8Overflow: Sendable {
    /// Clamp to ±448: what `tensor.to(torch.float8_e4m3fn)` does in current PyTorch, and what LightX2V's
    /// quantizers do explicitly.
    case saturate
    /// Older PyTorch (c10 before saturation): values that round past 448, and infinities, become NaN.
    case nan
}

@inline(__always)
public func bf16Bits(fromFloat value: Float) -> UInt16 {
    let bits = value.bitPattern
    if value.isNaN { return 0x7FC0 }  // c10's canonical bf16 NaN
    let roundingBias: UInt32 = 0x7FFF + ((bits >> 16) & 1)
    return UInt16(truncatingIfNeeded: (bits &+ roundingBias) >> 16)
}

@inline(__always)
public func float(fromBF16Bits bits: UInt16) -> Float {
    Float(bitPattern: UInt32(bits) << 16)
}

@inline(__always)
public func f16Bits(fromFloat value: Float) -> UInt16 {
    if value.isNaN { return UInt16(truncatingIfNeeded: value.bitPattern >> 16) & 0x8000 | 0x7E00 }
    return Float16(value).bitPattern
}

@inline(__always)
public func float(fromF16Bits bits: UInt16) -> Float {
    Float(Float16(bitPattern: bits))
}

/// Rounds a finite magnitude to a small binary float with `exponentBits`/`mantissaBits` and the given
/// bias, nearest-even, returning the unsigned bit pattern. The result may overflow into the top exponent
/// code; callers decide what that means for their format.
@inline(__always)
private func smallFloatBits(magnitude: Float, mantissaBits: Int, bias: Int) -> Int {
    let minNormalExponent = 1 - bias
    if magnitude == 0 { return 0 }
    let exponent = Int((magnitude.bitPattern >> 23) & 0xFF) - 127
    if exponent < minNormalExponent {
        // Subnormal: an integer number of units of 2^(emin − M). A count of 2^M is the smallest normal.
        let units = (magnitude * Float(sign: .plus, exponent: mantissaBits - minNormalExponent, significand: 1))
            .rounded(.toNearestOrEven)
        return Int(units)
    }
    let significand = magnitude * Float(sign: .plus, exponent: -exponent, significand: 1)  // [1, 2)
    var fraction = Int(((significand - 1) * Float(1 << mantissaBits)).rounded(.toNearestOrEven))
    var biased = exponent + bias
    if fraction == 1 << mantissaBits {
        fraction = 0
        biased += 1
    }
    return (biased << mantissaBits) | fraction
}

/// f32 → f8e4m3fn (bias 7, 3 mantissa bits, no infinities, NaN = S.1111.111, largest finite 448).
public func f8e4m3Bits(fromFloat value: Float, overflow: Float8Overflow = .saturate) -> UInt8 {
    let sign = UInt8(truncatingIfNeeded: (value.bitPattern >> 24) & 0x80)
    if value.isNaN { return sign | 0x7F }
    var magnitude = abs(value)
    if overflow == .saturate { magnitude = min(magnitude, 448) }
    if magnitude.isInfinite { return sign | 0x7F }
    let bits = smallFloatBits(magnitude: magnitude, mantissaBits: 3, bias: 7)
    if bits >= 0x7F { return sign | 0x7F }  // rounds past 448: NaN, as c10 does
    return sign | UInt8(bits)
}

public func float(fromF8E4M3Bits bits: UInt8) -> Float {
    let sign: Float = (bits & 0x80) != 0 ? -1 : 1
    let exponentField = Int((bits >> 3) & 0xF)
    let fraction = Float(bits & 0x7)
    if exponentField == 15 && (bits & 0x7) == 7 { return .nan }
    if exponentField == 0 { return sign * fraction * (1.0 / 512.0) }
    return sign * (1 + fraction / 8) * Float(sign: .plus, exponent: exponentField - 7, significand: 1)
}

/// f32 → f8e5m2 (bias 15, 2 mantissa bits, IEEE-like), nearest-even; overflow gives ±infinity.
public func f8e5m2Bits(fromFloat value: Float) -> UInt8 {
    let sign = UInt8(truncatingIfNeeded: (value.bitPattern >> 24) & 0x80)
    if value.isNaN { return sign | 0x7F }
    let magnitude = abs(value)
    if magnitude.isInfinite { return sign | 0x7C }
    let bits = smallFloatBits(magnitude: magnitude, mantissaBits: 2, bias: 15)
    if bits >= 0x7C { return sign | 0x7C }
    return sign | UInt8(bits)
}

public func float(fromF8E5M2Bits bits: UInt8) -> Float {
    float(fromF16Bits: UInt16(bits) << 8)
}
