import Foundation
import KinemaCore
import KinemaCPU
import XCTest

// Interleaved-pair RoPE against an f64 complex-multiplication twin, with x given as the permuted
// [B, H, L, D] → [B, L, H, D] views attention code produces, and with strided / bf16 tables.

final class RopeTests: XCTestCase {
    let backend = CPUBackend.shared

    /// Wan-style tables: θ(l, i) = l · base^(−2i/D), any positions.
    private func tables(length: Int, half: Int, dtype: DType = .f32, layout: Layout = .contiguous) throws -> (Tensor, Tensor) {
        var cosValues: [Float] = [], sinValues: [Float] = []
        for l in 0..<length {
            for i in 0..<half {
                let theta = Double(l) * pow(10_000, -Double(2 * i) / Double(2 * half))
                cosValues.append(Float(Foundation.cos(theta)))
                sinValues.append(Float(Foundation.sin(theta)))
            }
        }
        return (try makeTensor(cosValues, [length, half], dtype, layout), try makeTensor(sinValues, [length, half], dtype, layout))
    }

    /// The slow twin: (re + i·im)(cos + i·sin) per pair, in f64, from the tensors' logical values.
    private func twin(_ x: Tensor, _ cos: Tensor, _ sin: Tensor) throws -> [Double] {
        let values = try doubles(x), c = try doubles(cos), s = try doubles(sin)
        let half = x.shape[3] / 2
        var out = [Double](repeating: 0, count: values.count)
        for flat in stride(from: 0, to: values.count, by: 2) {
            let index = unravel(flat, x.shape)
            let table = index[1] * half + index[3] / 2
            let re = values[flat], im = values[flat + 1]
            out[flat] = re * c[table] - im * s[table]
            out[flat + 1] = re * s[table] + im * c[table]
        }
        return out
    }

    func testRopeShapesDTypesAndLayouts() throws {
        var random = SeededRandom(seed: 40)
        for shape in [[1, 1, 1, 2], [2, 5, 3, 8], [1, 7, 2, 6], [3, 1, 4, 2]] {
            let (length, dim) = (shape[1], shape[3])
            for dtype in [DType.f32, .bf16, .f16] {
                let values = random.values(count(of: shape), -3, 3)
                for layout in Layout.allCases {
                    let x = try makeTensor(values, shape, dtype, layout)
                    for (tableDType, tableLayout) in [(DType.f32, Layout.contiguous), (.f32, .padded), (.bf16, .permuted)] {
                        let (cos, sin) = try tables(length: length, half: dim / 2, dtype: tableDType, layout: tableLayout)
                        let y = try backend.rope(x, cos: cos, sin: sin)
                        XCTAssertEqual(y.dtype, dtype)
                        // Cancellation in re·cos − im·sin: slack of a few f32 ulps of |x|.
                        try assertClose(y, try twin(x, cos, sin), shape: shape, rtol: tolerance(dtype),
                                        atol: dtype == .f32 ? 1e-6 : 0.02,
                                        "\(shape) \(dtype) \(layout) tables \(tableDType) \(tableLayout)")
                    }
                }
            }
        }
    }

    func testRopeOnAttentionLayoutViewAndLargeInput() throws {
        var random = SeededRandom(seed: 41)
        // Projections come out as [B, L, H·D]; heads are split by reshape, or arrive from [B, H, L, D] by permute.
        let (b, l, h, d) = (1, 64, 12, 64)
        let bhld = try makeTensor(random.values(b * h * l * d, -2, 2), [b, h, l, d], .bf16)
        let x = try bhld.permuted([0, 2, 1, 3])
        let (cos, sin) = try tables(length: l, half: d / 2)
        try assertClose(backend.rope(x, cos: cos, sin: sin), try twin(x, cos, sin), shape: [b, l, h, d],
                        rtol: 1.0 / 128, atol: 0.01)
        let big = try makeTensor(random.values(b * l * h * d, -2, 2), [b, l, h, d], .f32, .stepped)
        try assertClose(backend.rope(big, cos: cos, sin: sin), try twin(big, cos, sin), shape: [b, l, h, d],
                        rtol: 2e-6, atol: 1e-6)
    }

    func testRopeIdentityAtPositionZeroAndErrors() throws {
        let x = try Tensor([1, 2, 3, 4], shape: [1, 1, 1, 4])
        let (cos, sin) = try tables(length: 1, half: 2)
        XCTAssertEqual(try backend.rope(x, cos: cos, sin: sin).floats(), [1, 2, 3, 4])
        let empty = try backend.rope(try Tensor.zeros([0, 3, 2, 4]), cos: try Tensor.zeros([3, 2]), sin: try Tensor.zeros([3, 2]))
        XCTAssertEqual(empty.shape, [0, 3, 2, 4])

        let odd = try Tensor.zeros([1, 2, 1, 5])
        assertThrowsKinema(try self.backend.rope(odd, cos: try Tensor.zeros([2, 2]), sin: try Tensor.zeros([2, 2])), mentioning: ["odd"])
        let x4 = try Tensor.zeros([1, 3, 2, 8])
        assertThrowsKinema(try self.backend.rope(x4, cos: try Tensor.zeros([3, 8]), sin: try Tensor.zeros([3, 4])),
                           mentioning: ["[3, 4]", "[3, 8]"])
        assertThrowsKinema(try self.backend.rope(x4, cos: try Tensor.zeros([3, 4]), sin: try Tensor.zeros([2, 4])))
        assertThrowsKinema(try self.backend.rope(try Tensor.zeros([3, 2, 8]), cos: try Tensor.zeros([3, 4]), sin: try Tensor.zeros([3, 4])))
    }
}
