@testable import KinemaCPU
import KinemaCore
import XCTest

// The GEMM engines (every micro-kernel this CPU supports, and BLAS when a library loads) against an f64
// evaluation, on shapes chosen to hit partial tiles, K-block boundaries and odd strides.

final class GemmTests: XCTestCase {
    /// (M, K, N): single elements, vectors, odd sizes, sizes just past tile and block edges.
    static let shapes: [(Int, Int, Int)] = [
        (1, 1, 1), (1, 37, 1), (37, 53, 29), (13, 1, 7), (1, 300, 65), (5, 0, 3),
        (12, 384, 32), (25, 385, 33), (100, 513, 97), (7, 800, 5),
    ]

    enum Layout: CaseIterable { case rowMajor, transposed, padded, strided, broadcastRows }

    /// Random values in a tensor, read through `operand` in the given layout.
    struct Matrix {
        let storage: Tensor
        let operand: GemmOperand
    }

    func matrix(rows: Int, columns: Int, seed: UInt64, dtype: DType = .f32, layout: Layout = .rowMajor, scale: Float = 1) throws -> Matrix {
        switch layout {
        case .rowMajor:
            let t = try randomTensor([rows, columns], dtype: dtype, seed: seed, scale: scale)
            return Matrix(storage: t, operand: try GemmOperand(matrixOf: t))
        case .transposed:
            let t = try randomTensor([columns, rows], dtype: dtype, seed: seed, scale: scale)
            return Matrix(storage: t, operand: try GemmOperand(matrixOf: t.transposed(0, 1)))
        case .padded:
            // Rows 3 elements longer than the matrix, starting one element in: a narrowed view.
            let t = try randomTensor([rows, columns + 3], dtype: dtype, seed: seed, scale: scale)
            return Matrix(storage: t, operand: try GemmOperand(matrixOf: t.narrowed(axis: 1, start: 1, length: columns)))
        case .strided:
            // Every other element of a transposed buffer: neither stride is 1.
            let t = try randomTensor([columns, 2 * rows], dtype: dtype, seed: seed, scale: scale)
            let view = try t.sliced(axis: 1, start: 0, end: 2 * rows, step: 2).transposed(0, 1)
            return Matrix(storage: t, operand: try GemmOperand(matrixOf: view))
        case .broadcastRows:
            // One row repeated (row stride 0), as an expanded tensor is.
            let t = try randomTensor([1, columns], dtype: dtype, seed: seed, scale: scale)
            return Matrix(storage: t, operand: try GemmOperand(matrixOf: t.expanded(to: [rows, columns])))
        }
    }

    /// Runs `run` on a C buffer with two guard columns and checks it against an f64 evaluation.
    func check(
        _ a: GemmOperand, _ b: GemmOperand, update: GemmUpdate = .overwrite, _ label: String,
        run: (UnsafeMutablePointer<Float>, Int) throws -> Void
    ) throws {
        let m = a.rows, n = b.columns, k = a.columns
        let ldc = n + 2
        var c = [Float](repeating: 0.5, count: max(1, m * ldc))
        var expected = [Double](), tolerance = [Double](), actual = [Float]()
        for i in 0..<m {
            for j in 0..<n {
                var sum = update == .accumulate ? 0.5 : 0.0
                var magnitude = abs(sum)
                for p in 0..<k {
                    let x = Double(HostElements.load(a.base, element: a.offset(i, p), dtype: a.dtype))
                    let y = Double(HostElements.load(b.base, element: b.offset(p, j), dtype: b.dtype))
                    sum += x * y
                    magnitude += abs(x * y)
                }
                expected.append(sum)
                tolerance.append(dotTolerance(length: k + 1, magnitude: magnitude))
            }
        }
        try c.withUnsafeMutableBufferPointer { buffer in
            guard let pointer = buffer.baseAddress else { return }
            try run(pointer, ldc)
        }
        for i in 0..<m {
            actual.append(contentsOf: c[(i * ldc)..<(i * ldc + n)])
            XCTAssertEqual(c[i * ldc + n], 0.5, "\(label): wrote past column N")
        }
        assertClose(actual, expected, tolerance: tolerance, label)
    }

    func testReferenceAndEveryKernelOnAwkwardShapes() throws {
        for (index, (m, k, n)) in Self.shapes.enumerated() {
            let a = try matrix(rows: m, columns: k, seed: UInt64(10 + index))
            let b = try matrix(rows: k, columns: n, seed: UInt64(100 + index))
            try check(a.operand, b.operand, "reference \(m)×\(k)×\(n)") { c, ldc in
                CPUGemm.referenceMultiply(a.operand, b.operand, into: c, ldc: ldc, update: .overwrite)
            }
            for kernel in Microkernel.supported {
                for threads in [1, 2] {
                    try check(a.operand, b.operand, "\(kernel.name) \(threads)t \(m)×\(k)×\(n)") { c, ldc in
                        BlockedGemm.multiply(a.operand, b.operand, into: c, ldc: ldc, update: .overwrite, kernel: kernel, threads: threads)
                    }
                }
            }
        }
    }

    func testTinyBlockingCoversEveryLoop() throws {
        // Blocks far smaller than the matrices: several slabs of A, panels of B, K blocks and items per
        // panel, each with a partial last block.
        let tiny = BlockedGemm.Blocking(depth: 40, panelColumns: 50, itemRows: 13, itemColumns: 20, slabFloats: 30 * 101, panelFloats: 60 * 101)
        // The first shape is above the threading threshold.
        for (m, k, n) in [(90, 101, 130), (1, 101, 3), (95, 7, 61)] {
            let a = try matrix(rows: m, columns: k, seed: 30, layout: .transposed)
            let b = try matrix(rows: k, columns: n, seed: 31, dtype: .bf16, layout: .padded)
            for kernel in Microkernel.supported {
                for update in [GemmUpdate.overwrite, .accumulate] {
                    try check(a.operand, b.operand, update: update, "tiny blocking \(kernel.name) \(m)×\(k)×\(n) \(update)") { c, ldc in
                        BlockedGemm.multiply(a.operand, b.operand, into: c, ldc: ldc, update: update, kernel: kernel, threads: 2, blocking: tiny)
                    }
                }
            }
        }
    }

    func testBuiltinLayoutsDtypesAndAccumulate() throws {
        let (m, k, n) = (29, 45, 41)
        for layoutA in Layout.allCases {
            for layoutB in Layout.allCases where layoutB != .broadcastRows {
                let a = try matrix(rows: m, columns: k, seed: 1, layout: layoutA)
                let b = try matrix(rows: k, columns: n, seed: 2, layout: layoutB)
                try check(a.operand, b.operand, "builtin \(layoutA)·\(layoutB)") { c, ldc in
                    try CPUGemm.multiply(a.operand, b.operand, into: c, ldc: ldc, engine: .builtin)
                }
            }
        }
        for (dtypeA, dtypeB) in [(DType.bf16, DType.f32), (.f32, .bf16), (.f16, .bf16), (.f8e4m3, .f32)] {
            for kernel in Microkernel.supported {
                let a = try matrix(rows: m, columns: k, seed: 3, dtype: dtypeA, layout: .transposed)
                let b = try matrix(rows: k, columns: n, seed: 4, dtype: dtypeB, layout: .padded)
                try check(a.operand, b.operand, update: .accumulate, "\(kernel.name) \(dtypeA)·\(dtypeB) accumulate") { c, ldc in
                    BlockedGemm.multiply(a.operand, b.operand, into: c, ldc: ldc, update: .accumulate, kernel: kernel)
                }
            }
        }
    }

    func testLargeMagnitudes() throws {
        // Products near 1e36 summed over 50 terms stay below Float.greatestFiniteMagnitude (3.4e38).
        let a = try matrix(rows: 19, columns: 50, seed: 5, scale: 1e18)
        let b = try matrix(rows: 50, columns: 23, seed: 6, scale: 1e18)
        for engine in availableEngines() {
            try check(a.operand, b.operand, "\(engine) large magnitudes") { c, ldc in
                try CPUGemm.multiply(a.operand, b.operand, into: c, ldc: ldc, engine: engine)
            }
        }
    }

    func testBLASMatchesReference() throws {
        guard let library = BLASLibrary.shared else {
            throw XCTSkip("no BLAS library loaded (\(BLASLibrary.loadReport.summary)); install libopenblas0 to run this test")
        }
        for (index, (m, k, n)) in Self.shapes.enumerated() {
            let a = try matrix(rows: m, columns: k, seed: UInt64(20 + index))
            let b = try matrix(rows: k, columns: n, seed: UInt64(200 + index))
            try check(a.operand, b.operand, "BLAS \(m)×\(k)×\(n)") { c, ldc in
                try CPUGemm.multiply(a.operand, b.operand, into: c, ldc: ldc, engine: .blas)
            }
        }
        // Layouts BLAS reads in place (row-major, transposed, padded) and ones it must convert (strided,
        // broadcast, bf16), with B converted in several column chunks.
        let (m, k, n) = (31, 47, 53)
        for layoutA in Layout.allCases {
            for layoutB in Layout.allCases where layoutB != .broadcastRows {
                for dtype in [DType.f32, .bf16] {
                    let a = try matrix(rows: m, columns: k, seed: 7, layout: layoutA)
                    let b = try matrix(rows: k, columns: n, seed: 8, dtype: dtype, layout: layoutB)
                    for update in [GemmUpdate.overwrite, .accumulate] {
                        try check(a.operand, b.operand, update: update, "BLAS \(layoutA)·\(layoutB) \(dtype) \(update)") { c, ldc in
                            CPUGemm.blasMultiply(library, a.operand, b.operand, into: c, ldc: ldc, update: update, chunkFloats: 16 * k)
                        }
                    }
                }
            }
        }
    }

    func testMismatchedShapesAndDtypesThrow() throws {
        let a = try matrix(rows: 3, columns: 4, seed: 1)
        let b = try matrix(rows: 5, columns: 2, seed: 2)
        var c = [Float](repeating: 0, count: 6)
        XCTAssertThrowsError(try CPUGemm.multiply(a.operand, b.operand, into: &c, ldc: 2)) { error in
            guard case KinemaError.shapeMismatch = error else { return XCTFail("unexpected error \(error)") }
        }
        let ints = try Tensor(integers: [1, 2, 3, 4], shape: [2, 2], dtype: .i32)
        XCTAssertThrowsError(try GemmOperand(matrixOf: ints)) { error in
            guard case KinemaError.dtypeMismatch = error else { return XCTFail("unexpected error \(error)") }
        }
    }

    func testForcedEngineIsVisibleToCallers() {
        CPUGemm.$forcedEngine.withValue(.reference) { XCTAssertEqual(CPUGemm.engine, .reference) }
        XCTAssertEqual(CPUGemm.engine, CPUGemm.defaultEngine)
    }

    func availableEngines() -> [GemmEngine] {
        BLASLibrary.shared == nil ? [.builtin, .reference] : [.builtin, .blas, .reference]
    }
}
