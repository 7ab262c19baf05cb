import Foundation

// JPEG sample reconstruction after entropy decoding: dequantisation + inverse DCT per block, chroma
// upsampling and YCbCr → RGB. Kept apart from the marker/Huffman parser (JPEGDecoder) because these
// steps do no parsing: all inputs here are already validated sizes.

enum JPEGPixels {
    /// cos table: basis[x * 8 + u] = C(u)/2 · cos((2x + 1)uπ/16), C(0) = 1/√2, else 1.
    static let basis: [Float] = {
        var table = [Float](repeating: 0, count: 64)
        for x in 0..<8 {
            for u in 0..<8 {
                let cu = u == 0 ? 1.0 / 2.0.squareRoot() : 1.0
                table[x * 8 + u] = Float(cu / 2 * cos(Double(2 * x + 1) * Double(u) * Double.pi / 16))
            }
        }
        return table
    }()

    /// A component plane of `blocksWide·8 × blocksHigh·8` samples (0...255), row-major.
    struct Plane {
        var width: Int
        var height: Int
        var samples: [UInt8]
    }

    /// Dequantises and inverse-transforms every block (separable float IDCT, T.81 A.3.3), level-shifts
    /// by +128 and clamps, as libjpeg's range limiting does.
    static func inverseTransform(_ component: JPEGDecoder.Component, quant: [Int32]) -> Plane {
        let width = component.blocksWide * 8, height = component.blocksHigh * 8
        var samples = [UInt8](repeating: 0, count: width * height)
        var block = [Float](repeating: 0, count: 64)
        var temp = [Float](repeating: 0, count: 64)
        for by in 0..<component.blocksHigh {
            for bx in 0..<component.blocksWide {
                let base = (by * component.blocksWide + bx) * 64
                for i in 0..<64 { block[i] = Float(component.coefficients[base + i]) * Float(quant[i]) }
                // Rows of the coefficient block (index v·8 + u): temp[v][x] = Σ_u basis[x][u] F[v][u].
                for v in 0..<8 {
                    for x in 0..<8 {
                        var sum: Float = 0
                        for u in 0..<8 { sum += basis[x * 8 + u] * block[v * 8 + u] }
                        temp[v * 8 + x] = sum
                    }
                }
                for y in 0..<8 {
                    for x in 0..<8 {
                        var sum: Float = 0
                        for v in 0..<8 { sum += basis[y * 8 + v] * temp[v * 8 + x] }
                        let value = (sum + 128).rounded()
                        samples[(by * 8 + y) * width + bx * 8 + x] = UInt8(max(0, min(255, value)))
                    }
                }
            }
        }
        return Plane(width: width, height: height, samples: samples)
    }

    /// Upsamples each plane to full resolution and converts to RGB.
    static func toRGB(planes: [Plane], components: [JPEGDecoder.Component], width: Int, height: Int,
                      hMax: Int, vMax: Int) -> RGBImage {
        let full = zip(planes, components).map { plane, component in
            upsample(plane, component: component, width: width, height: height, hMax: hMax, vMax: vMax)
        }
        var pixels = [UInt8](repeating: 0, count: width * height * 3)
        if full.count == 1 {
            for i in 0..<(width * height) {
                let g = full[0][i]
                pixels[i * 3] = g
                pixels[i * 3 + 1] = g
                pixels[i * 3 + 2] = g
            }
            return RGBImage(width: width, height: height, pixels: pixels)
        }
        // JFIF YCbCr → RGB (ITU-R BT.601, full range), rounded to nearest like libjpeg's tables.
        for i in 0..<(width * height) {
            let y = Float(full[0][i]), cb = Float(full[1][i]) - 128, cr = Float(full[2][i]) - 128
            let r = y + 1.402 * cr
            let g = y - 0.344136 * cb - 0.714136 * cr
            let b = y + 1.772 * cb
            pixels[i * 3] = UInt8(max(0, min(255, r.rounded())))
            pixels[i * 3 + 1] = UInt8(max(0, min(255, g.rounded())))
            pixels[i * 3 + 2] = UInt8(max(0, min(255, b.rounded())))
        }
        return RGBImage(width: width, height: height, pixels: pixels)
    }

    /// One component at full resolution, `width × height`.
    /// 2×1 and 2×2 use libjpeg's "fancy" triangle filter (3/4 nearer + 1/4 farther sample, with its
    /// exact integer rounding biases); edges replicate the last real sample, as libjpeg's context rows
    /// do. Other ratios replicate samples.
    static func upsample(_ plane: Plane, component: JPEGDecoder.Component, width: Int, height: Int,
                         hMax: Int, vMax: Int) -> [UInt8] {
        let fx = hMax / component.h, fy = vMax / component.v
        let exact = hMax % component.h == 0 && vMax % component.v == 0
        let cw = component.width, ch = component.height
        func at(_ x: Int, _ y: Int) -> Int {
            Int(plane.samples[min(max(y, 0), ch - 1) * plane.width + min(max(x, 0), cw - 1)])
        }
        var out = [UInt8](repeating: 0, count: width * height)
        if exact && fx == 1 && fy == 1 {
            for y in 0..<height { for x in 0..<width { out[y * width + x] = UInt8(at(x, y)) } }
        } else if exact && fx == 2 && fy == 1 {
            for y in 0..<height {
                for x in 0..<width {
                    let sx = x >> 1
                    let value = (x & 1) == 0 ? (3 * at(sx, y) + at(sx - 1, y) + 1) >> 2
                        : (3 * at(sx, y) + at(sx + 1, y) + 2) >> 2
                    out[y * width + x] = UInt8(value)
                }
            }
        } else if exact && fx == 2 && fy == 2 {
            for y in 0..<height {
                let sy = y >> 1
                let near = sy, far = (y & 1) == 0 ? sy - 1 : sy + 1
                func column(_ sx: Int) -> Int { 3 * at(sx, near) + at(sx, far) }
                for x in 0..<width {
                    let sx = x >> 1
                    let value = (x & 1) == 0 ? (3 * column(sx) + column(sx - 1) + 8) >> 4
                        : (3 * column(sx) + column(sx + 1) + 7) >> 4
                    out[y * width + x] = UInt8(value)
                }
            }
        } else {
            for y in 0..<height {
                for x in 0..<width {
                    out[y * width + x] = UInt8(at(x * component.h / hMax, y * component.v / vMax))
                }
            }
        }
        return out
    }
}
