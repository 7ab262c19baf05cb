import CKinema
import KinemaKernelsAVX2
import KinemaKernelsAVX512
import KinemaVectorMath

// Register-tiled GEMM micro-kernels and the run-time choice between them.
//
// A micro-kernel computes one rows×columns tile of C from packed panels (see GemmPacking.swift):
//   C[0..<rows, 0..<columns] = (accumulate ? C : 0) + Ã·B̃ over `depth` steps, where
//   Ã holds `rows` floats per step, `aStride` apart (ã[k·aStride + i] = A[i, k]; aStride = rows when packed,
//   attention passes a transposed score block in place) and B̃ holds `columns` floats per step.
// The wide x86 kernels live in KinemaKernelsAVX2 / KinemaKernelsAVX512, modules compiled for those CPUs; the
// portable kernel below is compiled for baseline x86-64 (SSE2, no FMA) or the host architecture.

/// One micro-kernel: its tile shape and entry point, plus attention's online-softmax step compiled for the
/// same instruction set. Callers pack panels for `rows`×`columns` tiles.
/// (@unchecked: entries are plain stateless functions.)
struct Microkernel: @unchecked Sendable {
    typealias Entry = (
        _ depth: Int, _ a: UnsafePointer<Float>, _ aStride: Int, _ b: UnsafePointer<Float>,
        _ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ rows: Int, _ columns: Int, _ accumulate: Bool
    ) -> Void

    /// OnlineSoftmax.update(scores, keys:, stride:, lanes:, max:, sum:, rescale:) for this instruction set.
    typealias SoftmaxEntry = (
        _ scores: UnsafeMutablePointer<Float>, _ keys: Int, _ stride: Int, _ lanes: Int,
        _ max: UnsafeMutablePointer<Float>, _ sum: UnsafeMutablePointer<Float>, _ rescale: (Int, Float) -> Void
    ) -> Void

    let name: String
    /// Tile height (MR): rows of C per call, floats of A per depth step.
    let rows: Int
    /// Tile width (NR): columns of C per call, floats of B per depth step.
    let columns: Int
    let run: Entry
    let softmax: SoftmaxEntry

    /// The portable 4×8 kernel: 8 SIMD8 accumulators fit the 16 XMM registers of baseline x86-64 (as pairs)
    /// and any NEON/SVE machine. It multiplies and adds separately: without FMA hardware a fused
    /// `addProduct` would become a libm `fmaf` call per lane.
    static let portable = Microkernel(
        name: "portable 4×8", rows: 4, columns: 8, run: PortableMicrokernel.run, softmax: PortableMicrokernel.softmax)

    #if arch(x86_64)
    static let haswell = Microkernel(
        name: "avx2+fma \(AVX2Microkernel.rows)×\(AVX2Microkernel.columns)", rows: AVX2Microkernel.rows,
        columns: AVX2Microkernel.columns, run: AVX2Microkernel.run, softmax: AVX2Microkernel.softmax)
    static let avx512 = Microkernel(
        name: "avx512 \(AVX512Microkernel.rows)×\(AVX512Microkernel.columns)", rows: AVX512Microkernel.rows,
        columns: AVX512Microkernel.columns, run: AVX512Microkernel.run, softmax: AVX512Microkernel.softmax)
    #endif

    /// Kernels this CPU can run, fastest first; the last one is always `portable`.
    static let supported: [Microkernel] = {
        var kernels: [Microkernel] = []
        #if arch(x86_64)
        let features = ckinema_cpu_features()
        if features & UInt32(CKINEMA_CPU_SKYLAKE_AVX512) != 0 { kernels.append(avx512) }
        if features & UInt32(CKINEMA_CPU_HASWELL) != 0 { kernels.append(haswell) }
        #endif
        kernels.append(portable)
        return kernels
    }()

    /// The kernel the built-in GEMM and attention use.
    static let best: Microkernel = supported[0]
}

enum PortableMicrokernel {
    static func softmax(
        _ scores: UnsafeMutablePointer<Float>, _ keys: Int, _ stride: Int, _ lanes: Int, _ max: UnsafeMutablePointer<Float>,
        _ sum: UnsafeMutablePointer<Float>, _ rescale: (Int, Float) -> Void
    ) {
        #if arch(arm64)
        OnlineSoftmax.update(scores, keys: keys, stride: stride, lanes: lanes, max: max, sum: sum, rescale: rescale, FusedMultiplyAdd.self)
        #else
        OnlineSoftmax.update(scores, keys: keys, stride: stride, lanes: lanes, max: max, sum: sum, rescale: rescale, SeparateMultiplyAdd.self)
        #endif
    }

    static func run(
        depth: Int, a: UnsafePointer<Float>, aStride: Int, b: UnsafePointer<Float>, c: UnsafeMutablePointer<Float>,
        ldc: Int, rows: Int, columns: Int, accumulate: Bool
    ) {
        typealias Vector = SIMD8<Float>
        var c0 = Vector(), c1 = Vector(), c2 = Vector(), c3 = Vector()
        var pa = a
        var pb = UnsafeRawPointer(b)
        for _ in 0..<depth {
            let b0 = pb.loadUnaligned(as: Vector.self)
            c0 += Vector(repeating: pa[0]) * b0
            c1 += Vector(repeating: pa[1]) * b0
            c2 += Vector(repeating: pa[2]) * b0
            c3 += Vector(repeating: pa[3]) * b0
            pa += aStride
            pb += 32
        }
        let tile = (c0, c1, c2, c3)
        withUnsafeBytes(of: tile) { raw in
            let values = raw.bindMemory(to: Float.self)
            for i in 0..<min(rows, 4) {
                let target = c + i * ldc
                for j in 0..<min(columns, 8) { target[j] = (accumulate ? target[j] : 0) + values[i * 8 + j] }
            }
        }
    }
}
