import KinemaCore
import XCTest

// The seeded initial noise: the parallel generator must give exactly the sequential generator's values
// (a seed names one video, whatever the core count), and the values must be standard normal.

final class SplitMix64Tests: XCTestCase {
    func testParallelNormalsEqualTheSequentialOnes() {
        // Counts below, at and above the size where chunks start (16,384 pairs a chunk at least), odd and even.
        for count in [0, 1, 2, 3, 65_535, 65_536, 65_537, 300_001] {
            var sequential = SplitMix64(seed: 1234)
            let expected = sequential.normals(count)
            for threads in [1, 2, 3, 7, 16] {
                let parallel = SplitMix64.normals(seed: 1234, count: count, threads: threads)
                XCTAssertEqual(parallel.count, count)
                XCTAssertTrue(parallel.elementsEqual(expected) { $0.bitPattern == $1.bitPattern }, "count \(count), threads \(threads)")
            }
        }
    }

    func testNormalsAreStandardNormal() {
        let values = SplitMix64.normals(seed: 7, count: 400_000, threads: 4)
        let mean = values.reduce(0.0) { $0 + Double($1) } / Double(values.count)
        let variance = values.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / Double(values.count)
        // Standard errors at n = 400,000: mean 0.0016, variance 0.0022; the bounds are ~6 of them.
        XCTAssertEqual(mean, 0, accuracy: 0.01)
        XCTAssertEqual(variance, 1, accuracy: 0.015)
        XCTAssertTrue(values.allSatisfy(\.isFinite))
    }

    func testTheSequenceIsSplitMix64() {
        // Reference outputs of SplitMix64 for seed 0 (Vigna's splitmix64.c; java.util.SplittableRandom agrees).
        var generator = SplitMix64(seed: 0)
        XCTAssertEqual(generator.next(), 0xE220_A839_7B1D_CDAF)
        XCTAssertEqual(generator.next(), 0x6E78_9E6A_A1B9_65F4)
        XCTAssertEqual(generator.next(), 0x06C4_5D18_8009_454F)
    }
}
