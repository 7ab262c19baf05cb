import Foundation

// The cuDNN plan chosen for a convolution problem, remembered across processes beside the kernel cache.
//
// Choosing a plan for a new problem finalizes heuristics' first few plans and times them: ≈ 150 ms a problem,
// 4.6 s for the 30 problems of a 480p VAE decode on an H100 (docs/PERF.md, sixth session), of which ≈ 3.5 s
// finalizes and times plans that lose. A process that finds the choice remembered finalizes the winner
// only. The record is the heuristics' config index and whether the bias / residual graph was the one that
// ran, and the workspace limit it was chosen under; the key holds everything the choice depends on (Kinema
// and cuDNN versions, driver, device, compute capability and SM count, how many candidates were timed, the
// graph lowering's version, the whole problem with pointer alignments), so a changed library or card reads as
// a miss and the choice is made again. A choice made under a smaller workspace limit than the current one is
// made again too (a plan that did not fit then may now).

struct CUDNNPlanMemory {
    struct Choice: Equatable {
        /// Bias and residual inside the cuDNN graph (false: the convolution-only graph).
        var fused: Bool
        /// Index of the plan's engine config in heuristics mode A's list.
        var config: Int
        /// Workspace bytes plans were allowed when this one was chosen.
        var workspaceLimit: Int
        /// false: chosen without timing every candidate, because a finalize compiled kernels (see CUDNNChannelsLastConvolution).
        var timed: Bool

        var text: String { "fused \(fused ? 1 : 0) config \(config) limit \(workspaceLimit)" + (timed ? "" : " untimed") }

        /// Parses `text`; nil for anything else (a foreign or damaged record is a miss, never an error).
        init?(text: String) {
            let parts = text.split(separator: " ")
            guard parts.count == 6 || (parts.count == 7 && parts[6] == "untimed"), parts[0] == "fused", parts[2] == "config",
                parts[4] == "limit", let fused = Int(parts[1]), fused == 0 || fused == 1,
                let config = Int(parts[3]), config >= 0, config < 10_000,
                let limit = Int(parts[5]), limit >= 0
            else { return nil }
            self.init(fused: fused == 1, config: config, workspaceLimit: limit, timed: parts.count == 6)
        }

        init(fused: Bool, config: Int, workspaceLimit: Int, timed: Bool = true) {
            self.fused = fused
            self.config = config
            self.workspaceLimit = workspaceLimit
            self.timed = timed
        }
    }

    let store: KeyedFileCache
    /// What heuristics' order depends on besides the problem: library versions and the card.
    let environment: String

    init(folder: String?, environment: String) {
        store = KeyedFileCache(folder: folder, suffix: ".cudnn-plan")
        self.environment = environment
    }

    private func key(_ problem: String) -> String { "cudnn plan choice\n" + environment + "\n" + problem }

    func recall(_ problem: String) -> Choice? {
        store.read(key: key(problem)).flatMap { String(bytes: $0, encoding: .utf8) }.flatMap(Choice.init(text:))
    }

    func remember(_ problem: String, _ choice: Choice) {
        store.write(key: key(problem), payload: Array(choice.text.utf8))
    }
}
