import Foundation
import KinemaCPU
import KinemaCore

// Times the CPU GEMM engines (built-in and BLAS) on square and Wan-shaped products, and CPU attention at a
// DiT-like size. Prints GFLOP/s as the median of several runs after one warm-up run.
//
//   swift build -c release --product kinema-gemm-bench && .build/release/kinema-gemm-bench [gemm] [attention]
//   KINEMA_THREADS=n and KINEMA_BLAS=<lib|off> apply as everywhere.

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
}

func seconds(_ body: () throws -> Void) rethrows -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    try body()
    return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
}

/// Deterministic values in [-1, 1) (never time on zeros).
func fill(_ pointer: UnsafeMutablePointer<Float>, _ count: Int, seed: UInt64) {
    var state = seed &* 6364136223846793005 &+ 1442695040888963407
    for index in 0..<count {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        pointer[index] = Float(Int64(bitPattern: state >> 11) % 2_000_000) / 1_000_000 - 1
    }
}

func timeRuns(_ runs: Int, _ body: () throws -> Void) rethrows -> Double {
    try body()  // warm-up: page faults, thread pools, BLAS initialization
    var times: [Double] = []
    for _ in 0..<runs { times.append(try seconds(body)) }
    return median(times)
}

func benchGemm() throws {
    let shapes: [(m: Int, k: Int, n: Int, label: String)] = [
        (1024, 1024, 1024, "1024³"),
        (2048, 2048, 2048, "2048³"),
        (1024, 1536, 8960, "Wan FFN up: M=1024 K=1536 N=8960"),
    ]
    var engines: [GemmEngine] = [.builtin]
    if BLASLibrary.shared != nil { engines.append(.blas) }
    print("shape".padding(toLength: 36, withPad: " ", startingAt: 0), engines.map { "\($0.rawValue) GFLOP/s" }.joined(separator: "  "), "  ratio")
    for shape in shapes {
        let a = UnsafeMutablePointer<Float>.allocate(capacity: shape.m * shape.k)
        let b = UnsafeMutablePointer<Float>.allocate(capacity: shape.k * shape.n)
        let c = UnsafeMutablePointer<Float>.allocate(capacity: shape.m * shape.n)
        defer { a.deallocate(); b.deallocate(); c.deallocate() }
        fill(a, shape.m * shape.k, seed: 1)
        fill(b, shape.k * shape.n, seed: 2)
        let lhs = try GemmOperand(a, rows: shape.m, columns: shape.k)
        let rhs = try GemmOperand(b, rows: shape.k, columns: shape.n)
        let flops = 2.0 * Double(shape.m) * Double(shape.n) * Double(shape.k)
        let runs = flops > 2e10 ? 3 : 5
        var rates: [Double] = []
        for engine in engines {
            let time = try timeRuns(runs) { try CPUGemm.multiply(lhs, rhs, into: c, ldc: shape.n, engine: engine) }
            rates.append(flops / time / 1e9)
        }
        let ratio = rates.count == 2 ? String(format: "%.2f", rates[0] / rates[1]) : "-"
        print(shape.label.padding(toLength: 36, withPad: " ", startingAt: 0),
              rates.map { String(format: "%8.1f", $0) }.joined(separator: "        "), "     ", ratio)
    }
}

func benchAttention() throws {
    let (batch, heads, length, dim) = (1, 12, 4096, 128)
    let shape = [batch, heads, length, dim]
    let count = shape.reduce(1, *)
    var tensors: [Tensor] = []
    for seed in 1...3 {
        let t = try Tensor.zeros(shape, dtype: .f32)
        fill(t.hostPointer.assumingMemoryBound(to: Float.self), count, seed: UInt64(seed))
        tensors.append(t)
    }
    let backend = CPUBackend.shared
    let scale = 1 / Float(dim).squareRoot()
    let time = try timeRuns(3) {
        _ = try backend.attention(query: tensors[0], key: tensors[1], value: tensors[2], scale: scale)
    }
    let flops = 4.0 * Double(batch * heads) * Double(length) * Double(length) * Double(dim)
    print(String(format: "attention B=%d H=%d L=%d D=%d f32: %.3f s, %.1f GFLOP/s (QKᵀ and PV)", batch, heads, length, dim, time, flops / time / 1e9))
}

if let spec = ProcessInfo.processInfo.environment["TUNE"] {  // TEMP: m,k,n,runs,engine
    let parts = spec.split(separator: ",").map(String.init)
    let (m, k, n, runs) = (Int(parts[0])!, Int(parts[1])!, Int(parts[2])!, Int(parts[3])!)
    let engine = GemmEngine(rawValue: parts[4])!
    let a = UnsafeMutablePointer<Float>.allocate(capacity: m * k); fill(a, m * k, seed: 1)
    let b = UnsafeMutablePointer<Float>.allocate(capacity: k * n); fill(b, k * n, seed: 2)
    let c = UnsafeMutablePointer<Float>.allocate(capacity: m * n)
    let lhs = try GemmOperand(a, rows: m, columns: k), rhs = try GemmOperand(b, rows: k, columns: n)
    var rates: [Double] = []
    for _ in 0..<runs { rates.append(2.0 * Double(m * n * k) / (try seconds { try CPUGemm.multiply(lhs, rhs, into: c, ldc: n, engine: engine) }) / 1e9) }
    print(String(format: "max %.1f median %.1f", rates.max()!, median(rates)))
    exit(0)
}
let arguments = Set(CommandLine.arguments.dropFirst())
print(CPUGemm.summary)
if let configuration = BLASLibrary.shared?.configuration { print("BLAS config: \(configuration)") }
if arguments.isEmpty || arguments.contains("gemm") { try benchGemm() }
if arguments.isEmpty || arguments.contains("attention") { try benchAttention() }
