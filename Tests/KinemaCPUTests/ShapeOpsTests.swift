import KinemaCore
import KinemaCPU
import XCTest

// contiguous / cast / concat on every dtype and awkward layouts. Layout changes must preserve bytes
// exactly; casts must agree with Core's scalar conversions (HostElements), element for element.

final class ShapeOpsTests: XCTestCase {
    let backend = CPUBackend.shared
    let shapes: [[Int]] = [[1], [7], [3, 5], [2, 3, 4], [2, 1, 3, 5], [0, 3], [4, 0, 2]]

    func testContiguousPreservesBytesForEveryDTypeAndLayout() throws {
        var random = SeededRandom(seed: 1)
        for dtype in DType.allCases {
            for shape in shapes {
                let values = random.values(count(of: shape), -100, 100)
                for layout in Layout.allCases {
                    let x = try makeTensor(values, shape, dtype, layout)
                    let y = try backend.contiguous(x)
                    let context = "\(dtype) \(shape) \(layout)"
                    XCTAssertEqual(y.shape, shape, context)
                    XCTAssertTrue(y.isContiguous, context)
                    XCTAssertEqual(y.dtype, dtype, context)
                    XCTAssertEqual(logicalBytes(y), logicalBytes(x), context)
                    if layout == .contiguous { XCTAssertTrue(y.storage === x.storage, "contiguous input is returned as is") }
                }
            }
        }
    }

    func testContiguousOfExpandedAndLargeViews() throws {
        var random = SeededRandom(seed: 2)
        let small = try makeTensor(random.values(12, -1, 1), [3, 1, 4], .bf16).expanded(to: [2, 3, 5, 4])
        XCTAssertEqual(logicalBytes(try backend.contiguous(small)), logicalBytes(small))
        // Large enough to be split over threads.
        let large = try makeTensor(random.values(3 * 130 * 101, -1, 1), [3, 130, 101], .f32, .permuted)
        XCTAssertEqual(logicalBytes(try backend.contiguous(large)), logicalBytes(large))
        let stepped = try makeTensor(random.values(5 * 9000, -1, 1), [5, 9000], .f16, .stepped)
        XCTAssertEqual(logicalBytes(try backend.contiguous(stepped)), logicalBytes(stepped))
    }

    func testCastMatchesScalarConversionsForEveryPair() throws {
        var random = SeededRandom(seed: 3)
        for source in DType.allCases {
            for target in DType.allCases {
                for (shape, layout) in [([2, 3, 5], Layout.permuted), ([11], .stepped), ([3, 4], .padded), ([0, 2], .contiguous)] {
                    let values = random.values(count(of: shape), -300, 300)
                    let x = try makeTensor(values, shape, source, layout)
                    let y = try backend.cast(x, to: target)
                    let expected: Tensor
                    if !source.isFloatingPoint && !target.isFloatingPoint {
                        expected = try Tensor(integers: x.integers(), shape: shape, dtype: target)
                    } else if !source.isFloatingPoint {
                        expected = try Tensor(x.integers().map { Float($0) }, shape: shape, dtype: target)
                    } else {
                        expected = try Tensor(x.floats(), shape: shape, dtype: target)
                    }
                    let context = "\(source) → \(target) \(shape) \(layout)"
                    XCTAssertEqual(y.dtype, target, context)
                    XCTAssertEqual(y.shape, shape, context)
                    XCTAssertTrue(y.isContiguous, context)
                    XCTAssertEqual(logicalBytes(y), logicalBytes(expected), context)
                }
            }
        }
    }

    func testCastSemantics() throws {
        // Integers never pass through f32: 2^40 + 3 survives i64 → i64 and wraps to 3 in i32.
        let big = try Tensor(integers: [(1 << 40) + 3, -5, (1 << 24) + 1], shape: [3], dtype: .i64)
        XCTAssertEqual(try backend.cast(big, to: .i32).integers(), [3, -5, (1 << 24) + 1])
        XCTAssertEqual(try backend.cast(try backend.cast(big, to: .i32), to: .i64).integers(), [3, -5, (1 << 24) + 1])
        XCTAssertEqual(try backend.cast(big, to: .f32).floats()[2], 16_777_216)
        XCTAssertEqual(try backend.cast(big, to: .bool).integers(), [1, 1, 1])

        let floats = try Tensor([-1.7, -1, 1e20, .nan, 0, -0.0, 0.5], shape: [7])
        XCTAssertEqual(try backend.cast(floats, to: .i32).integers(), [-1, -1, Int64(Int32.max), 0, 0, 0, 0])
        XCTAssertEqual(try backend.cast(floats, to: .i64).integers(), [-1, -1, Int64.max, 0, 0, 0, 0])
        // PyTorch converts float → uint8 through int64, so −1 wraps to 255.
        XCTAssertEqual(try backend.cast(floats, to: .u8).integers()[1], 255)
        XCTAssertEqual(try backend.cast(floats, to: .bool).integers(), [1, 1, 1, 1, 0, 0, 1])

        // f8e4m3: the cast saturates values past the largest finite one at ±448, as PyTorch's does
        // (FloatConversionGoldenTests checks every rounding case against torch itself).
        let wide = try Tensor([500, -448, 1, .nan], shape: [4])
        let f8 = try backend.cast(wide, to: .f8e4m3).floats()
        XCTAssertEqual(Array(f8[0..<3]), [448, -448, 1])
        XCTAssertTrue(f8[3].isNaN)

        let x = try makeTensor([1, 2, 3, 4, 5, 6], [2, 3], .bf16, .permuted)
        let same = try backend.cast(x, to: .bf16)
        XCTAssertTrue(same.isContiguous)
        XCTAssertEqual(try same.floats(), [1, 2, 3, 4, 5, 6])
    }

    /// The slow twin: the output element at each index comes from the piece covering it along `axis`.
    private func concatTwin(_ pieces: [Tensor], axis: Int) -> [UInt8] {
        var shape = pieces[0].shape
        shape[axis] = pieces.reduce(0) { $0 + $1.shape[axis] }
        let size = pieces[0].dtype.byteSize
        let bytes = pieces.map(logicalBytes)
        var out: [UInt8] = []
        for flat in 0..<count(of: shape) {
            var index = unravel(flat, shape)
            var piece = 0
            while index[axis] >= pieces[piece].shape[axis] {
                index[axis] -= pieces[piece].shape[axis]
                piece += 1
            }
            let local = ravel(index, pieces[piece].shape)
            out.append(contentsOf: bytes[piece][(local * size)..<((local + 1) * size)])
        }
        return out
    }

    func testConcatAlongEveryAxisWithMixedLayouts() throws {
        var random = SeededRandom(seed: 4)
        let base = [2, 3, 4]
        for dtype in [DType.f32, .bf16, .i64, .f8e5m2, .bool] {
            for axis in 0..<3 {
                var pieces: [Tensor] = []
                for (index, size) in [1, 0, 2, 3].enumerated() {
                    var shape = base
                    shape[axis] = size
                    let layout = Layout.allCases[index % Layout.allCases.count]
                    pieces.append(try makeTensor(random.values(count(of: shape), -50, 50), shape, dtype, layout))
                }
                for requested in [axis, axis - 3] {
                    let y = try backend.concat(pieces, axis: requested)
                    var shape = base
                    shape[axis] = 6
                    XCTAssertEqual(y.shape, shape)
                    XCTAssertTrue(y.isContiguous)
                    XCTAssertEqual(logicalBytes(y), concatTwin(pieces, axis: axis), "\(dtype) axis \(requested)")
                }
            }
        }
    }

    func testConcatLargeAndSingle() throws {
        var random = SeededRandom(seed: 5)
        let a = try makeTensor(random.values(2 * 100 * 200, -1, 1), [2, 100, 200], .f32, .permuted)
        let b = try makeTensor(random.values(2 * 37 * 200, -1, 1), [2, 37, 200], .f32)
        XCTAssertEqual(logicalBytes(try backend.concat([a, b], axis: 1)), concatTwin([a, b], axis: 1))
        XCTAssertEqual(logicalBytes(try backend.concat([b, a], axis: -2)), concatTwin([b, a], axis: 1))
        let single = try backend.concat([a], axis: 0)
        XCTAssertFalse(single.storage === a.storage)
        XCTAssertEqual(logicalBytes(single), logicalBytes(a))
        let scalarsRow = try backend.concat([try Tensor([1], shape: [1]), try Tensor([2, 3], shape: [2])], axis: 0)
        XCTAssertEqual(try scalarsRow.floats(), [1, 2, 3])
    }

    func testConcatErrors() throws {
        let a = try Tensor.zeros([2, 3])
        assertThrowsKinema(try self.backend.concat([], axis: 0))
        assertThrowsKinema(try self.backend.concat([a, try Tensor.zeros([2, 4])], axis: 0), mentioning: ["[2, 4]", "[*, 3]"])
        assertThrowsKinema(try self.backend.concat([a, try Tensor.zeros([2, 3, 1])], axis: 0))
        assertThrowsKinema(try self.backend.concat([a, try Tensor.zeros([2, 3], dtype: .bf16)], axis: 0), mentioning: ["bf16"])
        assertThrowsKinema(try self.backend.concat([a, a], axis: 2))
        assertThrowsKinema(try self.backend.concat([a, a], axis: -3))
    }

    func testBackendReshapeCopiesOnlyWhenNeeded() throws {
        let x = try makeTensor((0..<24).map(Float.init), [2, 3, 4])
        let view = try backend.reshape(x, [6, 4])
        XCTAssertTrue(view.storage === x.storage)
        let transposed = try x.transposed(0, 2)  // [4, 3, 2]
        let flat = try backend.reshape(transposed, [-1])
        XCTAssertFalse(flat.storage === x.storage)
        XCTAssertEqual(try flat.floats(), try transposed.floats())
        assertThrowsKinema(try self.backend.reshape(x, [5, 5]))
    }
}
