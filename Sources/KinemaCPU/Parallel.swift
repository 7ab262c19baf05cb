import Dispatch
import KinemaCore

// Splits index ranges over worker threads. Work items should be coarse (≥ ~50 µs each); small loops run
// inline to avoid dispatch overhead.

enum Parallel {
    static let threads = RuntimeOptions.current.threads

    /// Runs `body(range)` over disjoint chunks covering 0..<count, in parallel when worthwhile.
    /// `grain` is the smallest chunk worth a thread of its own.
    static func forRanges(_ count: Int, grain: Int = 1, _ body: (Range<Int>) -> Void) {
        guard count > 0 else { return }
        let maxChunks = min(threads, (count + max(grain, 1) - 1) / max(grain, 1))
        if maxChunks <= 1 {
            body(0..<count)
            return
        }
        let chunks = maxChunks
        withoutActuallyEscaping(body) { body in
            DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
                let start = count * chunk / chunks
                let end = count * (chunk + 1) / chunks
                if start < end { body(start..<end) }
            }
        }
    }

    /// Runs `body(index)` for every index in 0..<count, spreading indices over threads.
    static func forEach(_ count: Int, _ body: (Int) -> Void) {
        forRanges(count) { range in
            for index in range { body(index) }
        }
    }
}
