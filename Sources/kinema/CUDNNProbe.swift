import ArgumentParser
import Foundation
import KinemaPipeline

struct CUDNNProbeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cudnn-probe",
        abstract: "Compare cuDNN with Kinema's kernels on the GPU: fused attention and VAE convolutions at Wan shapes.",
        discussion: "One line per problem: plan build, median GPU time, TFLOP/s and the difference between the two outputs.")

    @Option(help: "CUDA device ordinal.") var device = 0
    @Option(help: "Timed runs per problem (the median is reported).") var iterations = 5
    @Flag(help: "Only the Hopper wgmma attention lines (sm_90), no cuDNN problems.") var wgmmaOnly = false

    func run() throws {
        try runReportingErrors {
            try CUDNNProbe.run(ordinal: device, iterations: iterations, wgmmaOnly: wgmmaOnly) { line in
                FileHandle.standardOutput.write(Data((line + "\n").utf8))
            }
        }
    }
}
