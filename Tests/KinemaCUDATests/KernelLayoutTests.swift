import KinemaCore
import XCTest

@testable import KinemaCUDA

// KernelLayout.coalesced merges axes for the elementwise kernels. Checked without a GPU by evaluating the
// kernels' offset_of (logical index → element offset) in Swift on the merged and the original layouts:
// every logical index must land on the same element.
final class KernelLayoutTests: XCTestCase {
    private func sizes(_ layout: KernelLayout) -> [Int] {
        withUnsafeBytes(of: layout.size) { Array($0.bindMemory(to: Int64.self).prefix(Int(layout.rank))).map(Int.init) }
    }

    private func strides(_ layout: KernelLayout) -> [Int] {
        withUnsafeBytes(of: layout.stride) { Array($0.bindMemory(to: Int64.self).prefix(Int(layout.rank))).map(Int.init) }
    }

    /// The device's offset_of, row-major over the layout's axes.
    private func offset(_ layout: KernelLayout, _ linear: Int) -> Int {
        var (rest, result) = (linear, 0)
        for (size, stride) in zip(sizes(layout), strides(layout)).reversed() {
            result += (rest % size) * stride
            rest /= size
        }
        return result
    }

    private func assertSameOffsets(_ tensors: [Tensor], mergedRank: Int, file: StaticString = #filePath, line: UInt = #line) throws {
        let merged = try KernelLayout.coalesced(tensors)
        XCTAssertEqual(Int(merged[0].rank), mergedRank, "merged sizes \(sizes(merged[0]))", file: file, line: line)
        for (tensor, layout) in zip(tensors, merged) {
            let original = try KernelLayout(tensor)
            for index in 0..<tensor.count where offset(original, index) != offset(layout, index) {
                return XCTFail("index \(index): \(offset(original, index)) vs \(offset(layout, index))", file: file, line: line)
            }
        }
    }

    func testContiguousTensorsBecomeOneRun() throws {
        let x = try Tensor.zeros([2, 3, 4, 5, 6], dtype: .bf16)
        try assertSameOffsets([x], mergedRank: 1)
        try assertSameOffsets([x, x], mergedRank: 1)
    }

    func testViewsKeepTheAxesTheyNeed() throws {
        let base = try Tensor.zeros([2, 4, 6, 5, 3], dtype: .f32)
        // A time slice of NCDHW: [B·C, T·H·W] runs, the channel stride skipping the other frames.
        let slice = try base.narrowed(axis: 2, start: 2, length: 3)
        try assertSameOffsets([slice], mergedRank: 2)
        try assertSameOffsets([slice, try Tensor.zeros(slice.shape, dtype: .f32)], mergedRank: 2)
        // A permutation merges nothing it reorders.
        try assertSameOffsets([try base.permuted([0, 2, 3, 4, 1])], mergedRank: 3)
        // Broadcast axes (stride 0) merge with each other; size-1 axes disappear.
        let row = try Tensor.zeros([1, 1, 6, 1, 1], dtype: .f32).expanded(to: [2, 4, 6, 5, 3])
        try assertSameOffsets([row, base], mergedRank: 3)
        try assertSameOffsets([try Tensor.zeros([1, 1, 1], dtype: .f32)], mergedRank: 0)
    }

    func testWidenedCopiesMoveTheSameElements() throws {
        // The VAE cache concatenation: 2 frames of [1, 8, 2, 6, 8] into frames 2…3 of [1, 8, 4, 6, 8].
        let source = try Tensor.zeros([1, 8, 2, 6, 8], dtype: .bf16)
        let destination = try Tensor.zeros([1, 8, 4, 6, 8], dtype: .bf16).narrowed(axis: 2, start: 2, length: 2)
        let layouts = try KernelLayout.coalesced([source, destination])
        let widened = try XCTUnwrap(KernelLayout.widened(layouts, by: 8, addresses: [0, 256], elementBytes: 2))
        for (original, wide) in zip(layouts, widened) {
            for index in 0..<source.count where offset(original, index) != offset(wide, index / 8) * 8 + index % 8 {
                return XCTFail("element \(index): \(offset(original, index)) vs vector \(offset(wide, index / 8))")
            }
        }
        // Refused: a misaligned start, a run the factor does not divide, a non-unit innermost stride.
        XCTAssertNil(KernelLayout.widened(layouts, by: 8, addresses: [0, 2], elementBytes: 2))
        let odd = try KernelLayout.coalesced([try Tensor.zeros([3, 5], dtype: .bf16)])
        XCTAssertNil(KernelLayout.widened(odd, by: 2, addresses: [0], elementBytes: 2))
        let transposed = try KernelLayout.coalesced([try Tensor.zeros([4, 8], dtype: .bf16).permuted([1, 0])])
        XCTAssertNil(KernelLayout.widened(transposed, by: 2, addresses: [0], elementBytes: 2))
    }
}
