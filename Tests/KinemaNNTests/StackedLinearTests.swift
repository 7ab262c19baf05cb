import KinemaCPU
import KinemaCore
import KinemaNN
import KinemaTestSupport
import XCTest

// Linear(stacking:) — the fused QKV / KV projections — against the separate projections it replaces.

final class StackedLinearTests: XCTestCase {
    func testStackedProjectionColumnsAreTheSeparateProjections() throws {
        let backend = CPUBackend.shared
        let store = WeightStore(synthesizingFor: "stacking test", backend: backend, seed: 7)
        let (inFeatures, outFeatures) = (96, 40)
        let parts = try ["q", "k", "v"].map { try Linear(store.root[$0], inFeatures: inFeatures, outFeatures: outFeatures, dtype: .f32) }
        let stacked = try Linear(stacking: parts)
        XCTAssertEqual(stacked.weight.shape, [3 * outFeatures, inFeatures])
        XCTAssertEqual(stacked.bias?.shape, [3 * outFeatures])
        var numbers = SplitMix64(seed: 3)
        let x = try Tensor((0..<(2 * 13 * inFeatures)).map { _ in numbers.unitFloat() * 2 - 1 }, shape: [2, 13, inFeatures])
        let all = try stacked(x)  // on the CPU: one GEMM per part, concatenated
        let wide = try backend.linear(x, weight: stacked.weight, bias: stacked.bias)  // the one GEMM other backends run
        XCTAssertEqual(all.shape, [2, 13, 3 * outFeatures])
        for (index, part) in parts.enumerated() {
            let separate = try part(x)
            let slice = try backend.contiguous(try all.narrowed(axis: 2, start: index * outFeatures, length: outFeatures))
            assertClose(slice, separate, relL2: 0, maxAbs: 0, "part \(index) of the stacked Linear")
            // Same products and sums; BLAS may order the f32 additions differently for a wider matrix.
            let wideSlice = try backend.contiguous(try wide.narrowed(axis: 2, start: index * outFeatures, length: outFeatures))
            assertClose(wideSlice, separate, relL2: Tolerances.opF32RelL2, "part \(index) of the wide GEMM")
        }
    }

    func testStackingRejectsMismatchedInputWidths() throws {
        let store = WeightStore(synthesizingFor: "stacking test", backend: CPUBackend.shared, seed: 8)
        let a = try Linear(store.root["a"], inFeatures: 8, outFeatures: 4, dtype: .f32)
        let b = try Linear(store.root["b"], inFeatures: 9, outFeatures: 4, dtype: .f32)
        XCTAssertThrowsError(try Linear(stacking: [a, b]))
        XCTAssertThrowsError(try Linear(stacking: []))
    }
}
