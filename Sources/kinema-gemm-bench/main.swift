import Foundation
import KinemaCPU
import KinemaCore

// Times the CPU GEMM engines (built-in and BLAS) on square and Wan-shaped products, and CPU attention at a
// DiT-like size. Prints GFLOP/s as the median of several runs after one warm-up run.
//
//   swift build -c release --product kinema-gemm-bench
//   .build/release/kinema-gemm-bench                  all of the below
//   .build/release/kinema-gemm-bench gemm             the GEMM table
//   .build/release/kinema-gemm-bench attention        attention B=1 H=12 L=4096 D=128
//   .build/release/kinema-gemm-bench shape M K N [runs]   one GEMM shape, both engines, min/median/max
// KINEMA_THREADS=n and KINEMA_BLAS=<lib|off> apply as everywhere. On a shared machine repeat the run:
// neighbours' load moves single numbers by ±30%.

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

/// Times each engine on C[m, n] = A[m, k]·B[k, n]; returns GFLOP/s (min, median, max) per engine.
func rates(m: Int, k: Int, n: Int, runs: Int, engines: [GemmEngine]) throws -> [(GemmEngine, [Double])] {
    let a = UnsafeMutablePointer<Float>.allocate(capacity: m * k)
    let b = UnsafeMutablePointer<Float>.allocate(capacity: k * n)
    let c = UnsafeMutablePointer<Float>.allocate(capacity: m * n)
    defer { a.deallocate(); b.deallocate(); c.deallocate() }
    fill(a, m * k, seed: 1)
    fill(b, k * n, seed: 2)
    let lhs = try GemmOperand(a, rows: m, columns: k)
    let rhs = try GemmOperand(b, rows: k, columns: n)
    let flops = 2.0 * Double(m) * Double(n) * Double(k)
    return try engines.map { engine in
        try CPUGemm.multiply(lhs, rhs, into: c, ldc: n, engine: engine)  // warm-up
        var samples: [Double] = []
        for _ in 0..<runs {
            samples.append(flops / (try seconds { try CPUGemm.multiply(lhs, rhs, into: c, ldc: n, engine: engine) }) / 1e9)
        }
        return (engine, samples)
    }
}

func availableEngines() -> [GemmEngine] { BLASLibrary.shared == nil ? [.builtin] : [.builtin, .blas] }

func benchGemm() throws {
    let shapes: [(m: Int, k: Int, n: Int, label: String)] = [
        (1024, 1024, 1024, "1024³"),
        (2048, 2048, 2048, "2048³"),
        (1024, 1536, 8960, "Wan FFN up: M=1024 K=1536 N=8960"),
    ]
    let engines = availableEngines()
    print("shape".padding(toLength: 36, withPad: " ", startingAt: 0), engines.map { "\($0.rawValue) GFLOP/s" }.joined(separator: "  "), "  ratio")
    for shape in shapes {
        let runs = shape.m * shape.n * shape.k > 4_000_000_000 ? 5 : 9
        let medians = try rates(m: shape.m, k: shape.k, n: shape.n, runs: runs, engines: engines).map { median($0.1) }
        let ratio = medians.count == 2 ? String(format: "%.2f", medians[0] / medians[1]) : "-"
        print(shape.label.padding(toLength: 36, withPad: " ", startingAt: 0),
              medians.map { String(format: "%8.1f", $0) }.joined(separator: "        "), "     ", ratio)
    }
}

/// linear() with the Wan FFN shape and a bf16 weight: includes widening the weight while packing (built-in)
/// or in column chunks (BLAS).
func benchLinear() throws {
    let (rows, inFeatures, outFeatures) = (1024, 1536, 8960)
    let x = try Tensor.zeros([rows, inFeatures], dtype: .f32)
    fill(x.hostPointer.assumingMemoryBound(to: Float.self), rows * inFeatures, seed: 3)
    var values = [Float](repeating: 0, count: outFeatures * inFeatures)
    values.withUnsafeMutableBufferPointer { buffer in
        if let base = buffer.baseAddress { fill(base, buffer.count, seed: 4) }
    }
    let weight = try Tensor(values, shape: [outFeatures, inFeatures], dtype: .bf16)
    let flops = 2.0 * Double(rows * inFeatures * outFeatures)
    var line = "linear x f32 [1024, 1536] · bf16 weight [8960, 1536]:"
    for engine in availableEngines() {
        let time = try CPUGemm.$forcedEngine.withValue(engine) {
            try timeRuns(5) { _ = try CPUBackend.shared.linear(x, weight: weight, bias: nil) }
        }
        line += String(format: "  %@ %.1f GFLOP/s", engine.rawValue, flops / time / 1e9)
    }
    print(line)
}

func benchShape(_ values: [Int]) throws {
    guard values.count >= 3, values.allSatisfy({ $0 > 0 }) else {
        print("usage: kinema-gemm-bench shape M K N [runs]")
        return
    }
    for (engine, samples) in try rates(m: values[0], k: values[1], n: values[2], runs: values.count > 3 ? values[3] : 7, engines: availableEngines()) {
        print(String(format: "%@ M=%d K=%d N=%d: min %.1f  median %.1f  max %.1f GFLOP/s", engine.rawValue, values[0], values[1], values[2],
                     samples.min() ?? 0, median(samples), samples.max() ?? 0))
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

let arguments = Array(CommandLine.arguments.dropFirst())
print(CPUGemm.summary)
if let configuration = BLASLibrary.shared?.configuration { print("BLAS config: \(configuration)") }
if arguments.first == "shape" {
    try benchShape(arguments.dropFirst().compactMap { Int($0) })
} else {
    if arguments.isEmpty || arguments.contains("gemm") {
        try benchGemm()
        try benchLinear()
    }
    if arguments.isEmpty || arguments.contains("attention") { try benchAttention() }
}
