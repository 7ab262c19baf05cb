import Foundation
import KinemaCore

// cuDNN's graph (backend) API convolution, for measurement only (`kinema cudnn-probe`): the VAE runs its
// convolutions through the legacy API (CUDNNConvolution.swift), whose NCDHW kernels reached ≈ 190 TFLOP/s on
// the full-resolution layers (H100, 2026-11-27). The graph API offers other engines, and channels-last
// (NDHWC) layouts are where cuDNN's tensor-core convolutions are native; this times heuristics mode A's first
// plans for one problem in either layout, so the switch can be decided by numbers.

public struct GraphConvolutionTiming {
    /// One entry per plan that finalized: heuristics index, median milliseconds, workspace bytes.
    public var plans: [(engine: Int, milliseconds: Double, workspace: Int)]
    /// The fastest plan's output, as a [N, K, D, H, W] view whatever the layout.
    public var output: Tensor
}

extension CUDABackend {
    /// y = conv3d(x, w) with zero padding `padding` per spatial axis, stride 1, no bias, through the graph API.
    /// x [N, C, D, H, W] and w [K, C, T, R, S] (contiguous NCDHW, compute dtype); with `channelsLast` both are
    /// copied to NDHWC first (not timed) and the output is NDHWC in memory.
    public func timeGraphConvolution(
        x: Tensor, weight w: Tensor, padding: [Int], channelsLast: Bool, plans planCount: Int, iterations: Int
    ) throws -> GraphConvolutionTiming {
        let api = try context.cudnn.get()
        guard x.rank == 5, w.rank == 5, x.shape[1] == w.shape[1], padding.count == 3, x.dtype == w.dtype,
            let dtype = CUDNNCode.dataType(x.dtype)
        else {
            throw KinemaError.shapeMismatch(context: "graph conv3d", expected: "x [N, C, D, H, W], w [K, C, T, R, S] of one float dtype", found: "\(x.shape), \(w.shape)")
        }
        var out = [x.shape[0], w.shape[0], 0, 0, 0]
        for axis in 0..<3 { out[2 + axis] = x.shape[2 + axis] + 2 * padding[axis] - w.shape[2 + axis] + 1 }
        guard out.allSatisfy({ $0 > 0 }) else {
            throw KinemaError.shapeMismatch(context: "graph conv3d", expected: "an output of positive size", found: "\(out)")
        }
        /// Strides for dims [N, C, D, H, W] of a tensor of `shape` stored NCDHW or NDHWC.
        func strides(_ shape: [Int]) -> [Int] {
            let (c, d, h, wd) = (shape[1], shape[2], shape[3], shape[4])
            if channelsLast { return [d * h * wd * c, 1, h * wd * c, wd * c, c] }
            return [c * d * h * wd, d * h * wd, h * wd, wd, 1]
        }
        /// The tensor's values in the chosen layout (a copy for NDHWC).
        func memory(_ t: Tensor) throws -> Tensor {
            try contiguous(channelsLast ? try t.permuted([0, 2, 3, 4, 1]) : t)
        }
        let xMemory = try memory(x)
        let wMemory = try memory(w)
        let yShape = channelsLast ? [out[0], out[2], out[3], out[4], out[1]] : out
        let yMemory = try empty(yShape, x.dtype)
        let addresses = [xMemory, wMemory, yMemory].map { CUDAContext.address($0) }

        let builder = CUDNNGraphBuilder(api)
        let tx = try builder.tensor("x", dims: x.shape, strides: strides(x.shape), dtype: dtype, id: 1, alignment: cudnnAlignment(addresses[0]))
        let tw = try builder.tensor("w", dims: w.shape, strides: strides(w.shape), dtype: dtype, id: 2, alignment: cudnnAlignment(addresses[1]))
        let ty = try builder.tensor("y", dims: out, strides: strides(out), dtype: dtype, id: 3, alignment: cudnnAlignment(addresses[2]))
        try builder.convolutionForward("probe", x: tx.descriptor, w: tw.descriptor, y: ty.descriptor, pre: padding, post: padding, stride: [1, 1, 1])
        var timings: [(engine: Int, milliseconds: Double, workspace: Int)] = []
        var fastest = Double.infinity
        var best: Tensor?
        for plan in try builder.plans(limit: planCount) {
            let workspace = plan.workspace > 0 ? try context.allocator.allocate(plan.workspace) : nil
            let run = {
                try api.execute(
                    plan: plan.plan,
                    bindings: [(1, devicePointer(addresses[0])), (2, devicePointer(addresses[1])), (3, devicePointer(addresses[2]))],
                    workspace: workspace.map { devicePointer(CUDAContext.address($0)) } ?? nil)
            }
            try run()
            var times: [Double] = []
            for _ in 0..<max(1, iterations) { times.append(try context.timedOnGPU { try run() }.seconds) }
            let median = times.sorted()[times.count / 2] * 1e3
            timings.append((plan.engineIndex, median, plan.workspace))
            if median < fastest {
                fastest = median
                // A copy of this plan's output (the next plan overwrites the buffer), as [N, K, D, H, W].
                best = try contiguous(channelsLast ? yMemory.permuted([0, 4, 1, 2, 3]) : yMemory)
            }
            withExtendedLifetime(workspace) {}
        }
        guard let best else { throw KinemaError.unsupported("graph conv3d: no plan ran") }
        return GraphConvolutionTiming(plans: timings, output: best)
    }
}
