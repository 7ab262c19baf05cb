import KinemaCore
import XCTest

// Metadata-only views: each must describe exactly the elements PyTorch's view of the same name would,
// share storage, and reject requests that do not fit with a KinemaError.

final class ViewTests: XCTestCase {
    /// [2, 3, 4] holding 0…23, so every element names its own row-major index.
    private func iota(_ shape: [Int] = [2, 3, 4]) throws -> Tensor {
        try Tensor((0..<shape.reduce(1, *)).map(Float.init), shape: shape)
    }

    private func assertThrowsKinema<T>(_ body: @autoclosure () throws -> T, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            XCTAssertTrue(error is KinemaError, "\(error) is not a KinemaError", file: file, line: line)
        }
    }

    func testReshapeOfContiguousIsAView() throws {
        let x = try iota()
        let view = try XCTUnwrap(try x.viewed(as: [6, 4]))
        XCTAssertEqual(view.shape, [6, 4])
        XCTAssertEqual(view.strides, [4, 1])
        XCTAssertTrue(view.storage === x.storage)
        XCTAssertEqual(try view.floats(), try x.floats())
        XCTAssertEqual(try XCTUnwrap(try x.viewed(as: [4, -1])).shape, [4, 6])
        XCTAssertEqual(try XCTUnwrap(try x.viewed(as: [1, 24, 1])).shape, [1, 24, 1])
        let single = try Tensor([5], shape: [1, 1])
        XCTAssertEqual(try XCTUnwrap(try single.viewed(as: [])).shape, [], "a 1-element tensor views as a scalar")
    }

    func testReshapeOfStridedViews() throws {
        let x = try iota()
        // Permuted [4, 2, 3] with strides [1, 12, 4]: the last two axes still merge, the first cannot.
        let permuted = try x.permuted([2, 0, 1])
        let merged = try XCTUnwrap(try permuted.viewed(as: [4, 6]))
        XCTAssertEqual(merged.strides, [1, 4])
        XCTAssertEqual(try merged.floats(), try permuted.floats())
        XCTAssertNil(try permuted.viewed(as: [24]))
        XCTAssertNil(try permuted.viewed(as: [8, 3]))
        // Narrowed last axis: rows can split but the row axis cannot merge with the columns.
        let narrowed = try iota([4, 6]).narrowed(axis: 1, start: 1, length: 3)
        let split = try XCTUnwrap(try narrowed.viewed(as: [2, 2, 3]))
        XCTAssertEqual(split.strides, [12, 6, 1])
        XCTAssertEqual(try split.floats(), try narrowed.floats())
        XCTAssertNil(try narrowed.viewed(as: [12]))
        // Same shape through a transposed view stays a view.
        let transposed = try x.transposed(0, 2)
        XCTAssertEqual(try XCTUnwrap(try transposed.viewed(as: [4, 3, 2])).strides, transposed.strides)
    }

    func testReshapeErrors() throws {
        let x = try iota()
        assertThrowsKinema(try x.viewed(as: [5, 5]))
        assertThrowsKinema(try x.viewed(as: [-1, -1]))
        assertThrowsKinema(try x.viewed(as: [-2, -12]))
        assertThrowsKinema(try x.viewed(as: [7, -1]))
        assertThrowsKinema(try Tensor.zeros([0, 3]).viewed(as: [-1, 0]))
    }

    func testPermuteAndTranspose() throws {
        let x = try iota()
        let p = try x.permuted([2, 0, 1])
        XCTAssertEqual(p.shape, [4, 2, 3])
        XCTAssertEqual(p.strides, [1, 12, 4])
        // Element [k, i, j] of the permuted view is x[i, j, k] = 12i + 4j + k.
        let values = try p.floats()
        XCTAssertEqual(values[0 * 6 + 1 * 3 + 2], Float(12 * 1 + 4 * 2 + 0))
        XCTAssertEqual(values[3 * 6 + 0 * 3 + 1], Float(12 * 0 + 4 * 1 + 3))
        XCTAssertEqual(try x.permuted([-1, 0, 1]).shape, [4, 2, 3])
        XCTAssertEqual(try x.transposed(-1, -2).shape, [2, 4, 3])
        assertThrowsKinema(try x.permuted([0, 0, 1]))
        assertThrowsKinema(try x.permuted([0, 1]))
        assertThrowsKinema(try x.permuted([0, 1, 3]))
        assertThrowsKinema(try x.transposed(0, 3))
    }

    func testNarrowAndSlice() throws {
        let x = try iota([10])
        XCTAssertEqual(try x.narrowed(axis: 0, start: 3, length: 4).floats(), [3, 4, 5, 6])
        XCTAssertEqual(try x.narrowed(axis: -1, start: 10, length: 0).count, 0)
        XCTAssertEqual(try x.sliced(axis: 0, start: 1, end: 8, step: 3).floats(), [1, 4, 7])
        XCTAssertEqual(try x.sliced(axis: 0, start: 1, end: 9, step: 3).floats(), [1, 4, 7])
        XCTAssertEqual(try x.sliced(axis: 0, start: 0, end: 10, step: 4).floats(), [0, 4, 8])
        XCTAssertEqual(try x.sliced(axis: 0, start: 4, end: 4).count, 0)
        let grid = try iota([4, 6])
        let rows = try grid.sliced(axis: 0, start: 1, end: 4, step: 2).narrowed(axis: 1, start: 2, length: 2)
        XCTAssertEqual(try rows.floats(), [8, 9, 20, 21])
        assertThrowsKinema(try x.narrowed(axis: 0, start: 8, length: 3))
        assertThrowsKinema(try x.narrowed(axis: 0, start: -1, length: 3))
        assertThrowsKinema(try x.narrowed(axis: 1, start: 0, length: 1))
        assertThrowsKinema(try x.sliced(axis: 0, start: 0, end: 11))
        assertThrowsKinema(try x.sliced(axis: 0, start: 5, end: 4))
        assertThrowsKinema(try x.sliced(axis: 0, start: 0, end: 4, step: 0))
    }

    func testExpand() throws {
        let column = try Tensor([1, 2, 3], shape: [3, 1])
        let expanded = try column.expanded(to: [2, 3, 4])
        XCTAssertEqual(expanded.strides, [0, 1, 0])
        XCTAssertFalse(expanded.isContiguous)
        XCTAssertEqual(try expanded.floats(), Array(repeating: [1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3], count: 2).flatMap { $0 })
        XCTAssertTrue(try column.expanded(to: [3, 1]).isContiguous)
        XCTAssertEqual(try Tensor([5], shape: []).expanded(to: [2, 2]).floats(), [5, 5, 5, 5])
        assertThrowsKinema(try column.expanded(to: [3, 2, 1]))
        assertThrowsKinema(try column.expanded(to: [4, 4]))
        assertThrowsKinema(try column.expanded(to: [3]))
    }

    func testUnsqueezeSqueezeChunk() throws {
        let x = try iota()
        XCTAssertEqual(try x.unsqueezed(0).shape, [1, 2, 3, 4])
        XCTAssertEqual(try x.unsqueezed(3).shape, [2, 3, 4, 1])
        XCTAssertEqual(try x.unsqueezed(-1).shape, [2, 3, 4, 1])
        XCTAssertEqual(try x.unsqueezed(-4).shape, [1, 2, 3, 4])
        XCTAssertTrue(try x.unsqueezed(1).isContiguous)
        XCTAssertEqual(try x.unsqueezed(2).floats(), try x.floats())
        assertThrowsKinema(try x.unsqueezed(4))
        assertThrowsKinema(try x.unsqueezed(-5))

        let withOne = try x.unsqueezed(1)
        XCTAssertEqual(try withOne.squeezed(1).shape, [2, 3, 4])
        XCTAssertEqual(try withOne.squeezed(-3).shape, [2, 3, 4])
        assertThrowsKinema(try x.squeezed(0))
        assertThrowsKinema(try x.squeezed(3))

        let parts = try x.chunked(3, axis: 1)
        XCTAssertEqual(parts.count, 3)
        XCTAssertEqual(parts[1].shape, [2, 1, 4])
        XCTAssertEqual(try parts[1].floats(), [4, 5, 6, 7, 16, 17, 18, 19])
        XCTAssertEqual(try x.chunked(2, axis: -1)[1].floats(), [2, 3, 6, 7, 10, 11, 14, 15, 18, 19, 22, 23])
        assertThrowsKinema(try x.chunked(2, axis: 1))
        assertThrowsKinema(try x.chunked(0, axis: 0))
        assertThrowsKinema(try x.chunked(1, axis: 3))
    }

    func testAxisAndContiguity() throws {
        let x = try iota()
        XCTAssertEqual(try x.axis(-1), 2)
        XCTAssertEqual(try x.axis(0), 0)
        assertThrowsKinema(try x.axis(3))
        assertThrowsKinema(try x.axis(-4))

        XCTAssertTrue(x.isContiguous)
        XCTAssertFalse(try x.transposed(1, 2).isContiguous)
        XCTAssertTrue(try x.narrowed(axis: 0, start: 1, length: 1).isContiguous, "a contiguous block at an offset")
        XCTAssertFalse(try x.narrowed(axis: 2, start: 0, length: 2).isContiguous)
        XCTAssertTrue(try x.narrowed(axis: 1, start: 1, length: 1).narrowed(axis: 0, start: 0, length: 1).isContiguous)
        XCTAssertFalse(try x.sliced(axis: 2, start: 0, end: 4, step: 2).isContiguous)
        // Size-1 axes may carry any stride without breaking contiguity.
        let odd = try Tensor(storage: x.storage, shape: [2, 1, 12], strides: [12, 99, 1], dtype: .f32)
        XCTAssertTrue(odd.isContiguous)
        XCTAssertTrue(try Tensor.zeros([0, 5]).isContiguous)
        XCTAssertEqual(Tensor.contiguousStrides(for: [2, 0, 3]), [3, 3, 1])
    }

    func testViewBoundsAreChecked() throws {
        let storage = try Storage(hostBytes: 16)
        XCTAssertNoThrow(try Tensor(storage: storage, shape: [4], dtype: .f32))
        assertThrowsKinema(try Tensor(storage: storage, shape: [5], dtype: .f32))
        assertThrowsKinema(try Tensor(storage: storage, shape: [2], strides: [1], offset: 3, dtype: .f32))
        assertThrowsKinema(try Tensor(storage: storage, shape: [2, 2], strides: [1], dtype: .f32))
        assertThrowsKinema(try Tensor(storage: storage, shape: [2], strides: [1], offset: -1, dtype: .f32))
        assertThrowsKinema(try Tensor(storage: storage, shape: [-1], strides: [1], dtype: .f32))
        XCTAssertNoThrow(try Tensor(storage: storage, shape: [8], dtype: .bf16))
        XCTAssertNoThrow(try Tensor(storage: storage, shape: [0], strides: [1], offset: 100, dtype: .f32), "empty views read nothing")
    }
}
