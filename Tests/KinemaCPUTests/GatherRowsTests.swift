import KinemaCPU
import KinemaCore
import XCTest

// gatherRows (embedding lookup) on every dtype and the table layouts it accepts; bytes must come through
// unchanged, row for row, and bad indices or layouts must be KinemaErrors.

final class GatherRowsTests: XCTestCase {
    let backend = CPUBackend.shared

    /// The expected result, row by row from the table's logical bytes (independent of the op's pointer math).
    private func expectedBytes(_ table: Tensor, _ indices: [Int]) throws -> [UInt8] {
        try indices.flatMap { logicalBytes(try table.narrowed(axis: 0, start: $0, length: 1)) }
    }

    func testGathersRowsOfEveryDTypeFromContiguousAndPaddedTables() throws {
        var random = SeededRandom(seed: 31)
        let indices = [8, 0, 3, 3, 8, 1, 5]
        for dtype in DType.allCases {
            for layout in [Layout.contiguous, .padded] {
                let table = try makeTensor(random.values(9 * 13, -100, 100), [9, 13], dtype, layout)
                let out = try backend.gatherRows(table, indices: indices)
                let context = "\(dtype) \(layout)"
                XCTAssertEqual(out.shape, [7, 13], context)
                XCTAssertEqual(out.dtype, dtype, context)
                XCTAssertTrue(out.isContiguous, context)
                XCTAssertEqual(logicalBytes(out), try expectedBytes(table, indices), context)
            }
        }
    }

    func testLargeGatherSplitOverThreads() throws {
        var random = SeededRandom(seed: 32)
        let table = try makeTensor(random.values(300 * 4096, -1, 1), [300, 4096], .bf16)
        let indices = (0..<512).map { ($0 * 7919) % 300 }
        let out = try backend.gatherRows(table, indices: indices)
        XCTAssertEqual(out.shape, [512, 4096])
        XCTAssertEqual(logicalBytes(out), try expectedBytes(table, indices))
    }

    func testColumnSliceAndBroadcastRows() throws {
        var random = SeededRandom(seed: 33)
        let wide = try makeTensor(random.values(6 * 20, -5, 5), [6, 20], .f16)
        let slice = try wide.narrowed(axis: 1, start: 3, length: 11)  // rows strided by 20, offset 3
        XCTAssertEqual(logicalBytes(try backend.gatherRows(slice, indices: [5, 2, 0])), try expectedBytes(slice, [5, 2, 0]))
        // A single row broadcast to 4 (row stride 0): every index reads the same row.
        let row = try makeTensor(random.values(9, -5, 5), [1, 9], .f32).expanded(to: [4, 9])
        let out = try backend.gatherRows(row, indices: [3, 0, 1])
        XCTAssertEqual(try out.floats(), Array(repeating: try row.narrowed(axis: 0, start: 0, length: 1).floats(), count: 3).flatMap { $0 })
        // A width-1 table may have any last stride.
        let column = try wide.narrowed(axis: 1, start: 4, length: 1)
        XCTAssertEqual(logicalBytes(try backend.gatherRows(column, indices: [1, 4])), try expectedBytes(column, [1, 4]))
    }

    func testEmptyResults() throws {
        let table = try makeTensor([Float](repeating: 1, count: 15), [5, 3], .bf16)
        XCTAssertEqual(try backend.gatherRows(table, indices: []).shape, [0, 3])
        XCTAssertEqual(try backend.gatherRows(try Tensor.zeros([5, 0], dtype: .f32), indices: [4, 0]).shape, [2, 0])
    }

    func testBadIndicesAndLayoutsAreErrors() throws {
        let table = try makeTensor((0..<36).map(Float.init), [9, 4], .f32)
        assertThrowsKinema(try backend.gatherRows(table, indices: [0, 9]), mentioning: ["index 9", "position 1", "0..<9"])
        assertThrowsKinema(try backend.gatherRows(table, indices: [-1]), mentioning: ["index -1", "position 0"])
        assertThrowsKinema(try backend.gatherRows(table, indices: [2, Int.max]), mentioning: ["outside"])
        assertThrowsKinema(try backend.gatherRows(table, indices: [Int.min]), mentioning: ["outside"])
        assertThrowsKinema(try backend.gatherRows(try Tensor.zeros([0, 4]), indices: [0]), mentioning: ["0..<0"])
        assertThrowsKinema(try backend.gatherRows(try Tensor.zeros([9]), indices: [0]), mentioning: ["[V, D]"])
        assertThrowsKinema(try backend.gatherRows(try Tensor.zeros([2, 3, 4]), indices: [0]), mentioning: ["[V, D]"])
        // Rows that are not contiguous: a transposed table, every other column.
        assertThrowsKinema(try backend.gatherRows(table.transposed(0, 1), indices: [0]), mentioning: ["unit last stride"])
        let stepped = try makeTensor((0..<36).map(Float.init), [9, 4], .f32, .stepped)
        assertThrowsKinema(try backend.gatherRows(stepped, indices: [0]), mentioning: ["unit last stride"])
    }
}
