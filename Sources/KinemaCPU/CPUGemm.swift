import CKinema
import KinemaCore

// The CPU GEMM entry point used by matmul, linear, attention and conv: C[M, N] (=|+=) A[M, K] · B[K, N], f32
// arithmetic and output, operands of any float dtype and any strides (GemmOperand).
//
// Three engines compute the same thing:
//   .blas       cblas_sgemm from a dlopen'd library (BLASLibrary). Operands that BLAS cannot take as they
//               are (not f32, or neither stride 1) are converted to f32 first — A whole, B in column chunks
//               of at most `blasChunkFloats`, so a huge bf16 weight never needs a full f32 copy.
//   .builtin    the blocked SIMD GEMM (GemmBlocked.swift); reads any dtype/stride while packing.
//   .reference  a naive triple loop accumulated in f64: the slow twin the tests compare against.
// Without a forced engine, BLAS is used when a library loaded and the built-in GEMM otherwise.

public enum GemmEngine: String, Sendable, CaseIterable {
    case blas, builtin, reference
}

/// Whether a GEMM overwrites C or adds to it (C += A·B, used to fuse a pre-filled bias).
public enum GemmUpdate: Sendable {
    case overwrite, accumulate
}

public enum CPUGemm {
    /// Forces the engine of every GEMM started inside `CPUGemm.$forcedEngine.withValue(.builtin) { … }` on
    /// this task or thread (tests and benchmarks); nil means `defaultEngine`.
    @TaskLocal public static var forcedEngine: GemmEngine? = nil

    /// BLAS when a library loaded, else the built-in GEMM.
    public static var defaultEngine: GemmEngine { BLASLibrary.shared == nil ? .builtin : .blas }

    /// The engine a GEMM started now would use.
    public static var engine: GemmEngine { forcedEngine ?? defaultEngine }

    /// The micro-kernel the built-in GEMM and attention use on this CPU (e.g. "avx512 12×32").
    public static var microkernelName: String { Microkernel.best.name }

    /// One line for `kinema doctor` and benchmark output.
    public static var summary: String {
        "CPU GEMM: \(engine.rawValue); \(BLASLibrary.loadReport.summary); built-in kernel \(microkernelName); "
            + "\(Parallel.threads) threads"
    }

    /// Largest f32 conversion buffer the BLAS path allocates for one chunk of B (32 MiB).
    static let blasChunkFloats = 8 << 20

    /// C[M, N] = A[M, K] · B[K, N] (or C += … with `.accumulate`), C row-major with row stride `ldc`.
    /// `engine` overrides `CPUGemm.engine`; `threads: 1` keeps the built-in GEMM on the calling thread (for
    /// callers already running on a worker).
    public static func multiply(
        _ a: GemmOperand, _ b: GemmOperand, into c: UnsafeMutablePointer<Float>, ldc: Int,
        update: GemmUpdate = .overwrite, engine requested: GemmEngine? = nil, threads: Int? = nil
    ) throws {
        guard a.columns == b.rows else {
            throw KinemaError.shapeMismatch(
                context: "GEMM", expected: "A [M, K] · B [K, N] with equal K",
                found: "A [\(a.rows), \(a.columns)] · B [\(b.rows), \(b.columns)]")
        }
        guard b.columns <= ldc || a.rows <= 1 else {
            throw KinemaError.invalidArgument("GEMM: output row stride \(ldc) is smaller than N = \(b.columns)")
        }
        let engine = requested ?? self.engine
        switch engine {
        case .builtin:
            BlockedGemm.multiply(a, b, into: c, ldc: ldc, update: update, threads: threads ?? Parallel.threads)
        case .reference:
            referenceMultiply(a, b, into: c, ldc: ldc, update: update)
        case .blas:
            guard let library = BLASLibrary.shared else {
                throw KinemaError.missingLibrary(
                    name: "a CBLAS library (cblas_sgemm)", searched: BLASLibrary.loadReport.attempts.map(\.candidate))
            }
            blasMultiply(library, a, b, into: c, ldc: ldc, update: update)
        }
    }

    /// Naive i-j-k loop with f64 accumulation; rounding to f32 happens once per element.
    public static func referenceMultiply(
        _ a: GemmOperand, _ b: GemmOperand, into c: UnsafeMutablePointer<Float>, ldc: Int, update: GemmUpdate
    ) {
        for i in 0..<a.rows {
            for j in 0..<b.columns {
                var sum = update == .accumulate ? Double(c[i * ldc + j]) : 0
                for p in 0..<a.columns {
                    let x = HostElements.load(a.base, element: a.offset(i, p), dtype: a.dtype)
                    let y = HostElements.load(b.base, element: b.offset(p, j), dtype: b.dtype)
                    sum += Double(x) * Double(y)
                }
                c[i * ldc + j] = Float(sum)
            }
        }
    }

    // MARK: BLAS

    /// How BLAS can read a matrix in place: row-major with leading dimension `ld`, or transposed.
    private struct BLASLayout {
        var transpose: Int32
        var ld: Int
    }

    private static func blasLayout(_ m: GemmOperand) -> BLASLayout? {
        guard m.dtype == .f32 else { return nil }
        // A stride along an axis of length 1 is never used, so it does not disqualify the matrix.
        if (m.columns <= 1 || m.columnStride == 1) && (m.rows <= 1 || m.rowStride >= max(1, m.columns)) {
            return BLASLayout(transpose: Int32(CKINEMA_CBLAS_NO_TRANS), ld: m.rows <= 1 ? max(1, m.columns) : m.rowStride)
        }
        if (m.rows <= 1 || m.rowStride == 1) && (m.columns <= 1 || m.columnStride >= max(1, m.rows)) {
            return BLASLayout(transpose: Int32(CKINEMA_CBLAS_TRANS), ld: m.columns <= 1 ? max(1, m.rows) : m.columnStride)
        }
        return nil
    }

    /// `chunkFloats` bounds the f32 copy of B per chunk (tests pass a small value to exercise chunking).
    static func blasMultiply(
        _ library: BLASLibrary, _ a: GemmOperand, _ b: GemmOperand, into c: UnsafeMutablePointer<Float>, ldc: Int,
        update: GemmUpdate, chunkFloats: Int = blasChunkFloats
    ) {
        let m = a.rows, n = b.columns, k = a.columns
        guard m > 0, n > 0 else { return }
        // LP64 CBLAS takes 32-bit sizes; beyond that (never at Wan sizes) use the built-in GEMM.
        let limit = Int(Int32.max)
        guard m <= limit, n <= limit, k <= limit, ldc <= limit, m * k <= limit else {
            BlockedGemm.multiply(a, b, into: c, ldc: ldc, update: update)
            return
        }
        if k == 0 {
            // Some BLAS builds return early on K = 0 without applying beta; define the result here.
            if update == .overwrite { for row in 0..<m { (c + row * ldc).initialize(repeating: 0, count: n) } }
            return
        }
        let beta: Float = update == .accumulate ? 1 : 0
        let order = Int32(CKINEMA_CBLAS_ROW_MAJOR)

        // A: in place, or one f32 copy (activations; the large operand in linear is B, the weight).
        var aCopy: UnsafeMutablePointer<Float>?
        defer { aCopy?.deallocate() }
        let aLayout: BLASLayout
        let aPointer: UnsafePointer<Float>
        if let layout = blasLayout(a), layout.ld <= limit {
            aLayout = layout
            aPointer = a.base.assumingMemoryBound(to: Float.self)
        } else {
            let copy = UnsafeMutablePointer<Float>.allocate(capacity: m * k)
            aCopy = copy
            Parallel.forRanges(m, grain: max(1, 65536 / max(k, 1))) { rows in
                StridedFloats.copy(a, rows: rows, columns: 0..<k, into: copy + rows.lowerBound * k, ld: k)
            }
            aLayout = BLASLayout(transpose: Int32(CKINEMA_CBLAS_NO_TRANS), ld: k)
            aPointer = UnsafePointer(copy)
        }

        if let layout = blasLayout(b), layout.ld <= limit {
            library.sgemm(
                order, aLayout.transpose, layout.transpose, Int32(m), Int32(n), Int32(k), 1, aPointer,
                Int32(aLayout.ld), b.base.assumingMemoryBound(to: Float.self), Int32(layout.ld), beta, c, Int32(ldc))
            return
        }

        // B in column chunks converted to f32. A column-contiguous B (a weight [out, in] read as its
        // transpose) is copied as rows of Bᵀ so the conversion reads sequentially.
        let chunkColumns = max(8, min(n, chunkFloats / k) / 8 * 8)
        let chunk = UnsafeMutablePointer<Float>.allocate(capacity: min(n, chunkColumns) * k)
        defer { chunk.deallocate() }
        let asTranspose = abs(b.rowStride) == 1 && abs(b.columnStride) != 1
        for n0 in stride(from: 0, to: n, by: chunkColumns) {
            let width = min(chunkColumns, n - n0)
            if asTranspose {
                let bt = b.transposed  // [N, K]
                Parallel.forRanges(width, grain: max(1, 65536 / k)) { rows in
                    StridedFloats.copy(
                        bt, rows: (n0 + rows.lowerBound)..<(n0 + rows.upperBound), columns: 0..<k,
                        into: chunk + rows.lowerBound * k, ld: k)
                }
            } else {
                Parallel.forRanges(k, grain: max(1, 65536 / width)) { rows in
                    StridedFloats.copy(b, rows: rows, columns: n0..<(n0 + width), into: chunk + rows.lowerBound * width, ld: width)
                }
            }
            library.sgemm(
                order, aLayout.transpose, Int32(asTranspose ? CKINEMA_CBLAS_TRANS : CKINEMA_CBLAS_NO_TRANS),
                Int32(m), Int32(width), Int32(k), 1, aPointer, Int32(aLayout.ld), chunk,
                Int32(asTranspose ? k : width), beta, c + n0, Int32(ldc))
        }
    }
}
