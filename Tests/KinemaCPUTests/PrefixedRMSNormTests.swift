@testable import KinemaCPU
import KinemaCore
import XCTest

// rmsNorm(silu:after:): the prefix frames come through unchanged in front of the normalized rows, and
// mismatched prefixes are errors (the CUDA fused form is checked against this by `kinema doctor`).

final class PrefixedRMSNormTests: XCTestCase {
    let backend = CPUBackend.shared

    func testPrefixIsCopiedAndRowsAreNormalized() throws {
        var random = SeededRandom(seed: 11)
        let x = try Tensor((0..<(1 * 3 * 2 * 4)).map { _ in random.unitFloat() * 4 - 2 }, shape: [1, 3, 2, 4])
        let prefix = try Tensor((0..<(1 * 2 * 2 * 4)).map { _ in random.unitFloat() }, shape: [1, 2, 2, 4])
        let weight = try Tensor([0.5, 1, 1.5, 2], shape: [4])
        let out = try backend.rmsNorm(x, weight: weight, eps: 1e-6, silu: true, after: prefix)
        XCTAssertEqual(out.shape, [1, 5, 2, 4])
        let values = try out.floats(), xs = try x.floats(), ps = try prefix.floats(), ws = try weight.floats()
        XCTAssertEqual(Array(values[0..<ps.count]), ps)
        // Each row: x / sqrt(mean(x²) + eps) · w, then SiLU, in Double.
        for row in 0..<6 {
            let r = xs[(row * 4)..<(row * 4 + 4)].map(Double.init)
            let scale = 1 / ((r.map { $0 * $0 }.reduce(0, +) / 4) + 1e-6).squareRoot()
            for c in 0..<4 {
                let y = r[c] * scale * Double(ws[c])
                let expected = y / (1 + exp(-y))
                XCTAssertEqual(Double(values[ps.count + row * 4 + c]), expected, accuracy: 1e-5)
            }
        }
    }

    func testMismatchedPrefixesAreErrors() throws {
        let x = try Tensor.zeros([1, 3, 2, 4])
        for bad in [[1, 2, 2, 5], [2, 2, 2, 4], [1, 2, 3, 4], [1, 2, 8]] {
            XCTAssertThrowsError(try backend.rmsNorm(x, weight: nil, eps: 1e-6, silu: true, after: try Tensor.zeros(bad)), "\(bad)")
        }
        XCTAssertThrowsError(try backend.rmsNorm(x, weight: nil, eps: 1e-6, silu: true, after: try Tensor.zeros([1, 1, 2, 4], dtype: .bf16)))
    }
}
