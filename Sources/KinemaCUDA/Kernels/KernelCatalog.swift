import KinemaCore

// Every NVRTC kernel source Kinema generates, per family and the float dtypes the backend instantiates it with:
// what `KernelBinaries.prewarm` compiles ahead of the first launches, and what KernelCompileTests compiles
// without a GPU. A source missing here still compiles on its first launch.

enum KernelCatalog {
    /// (label, source) for the families over `floats`; `hopper` adds the sm_90a-only kernels (wgmma).
    static func sources(floats: [DType], hopper: Bool) -> [(label: String, source: String)] {
        var all: [(label: String, source: String)] = []
        // (Integer and fp8 casts run on the host: CUDABackend.cast only instantiates float ↔ float.)
        for input in floats {
            for output in floats { all.append(("cast \(input)→\(output)", ElementwiseKernels.cast(from: input, to: output))) }
        }
        for bytes in [1, 2, 4, 8, 16] {
            all.append(("copyRaw \(bytes)", ElementwiseKernels.copyRaw(elementBytes: bytes)))
            all.append(("gatherRows \(bytes)", ElementwiseKernels.gatherRows(elementBytes: bytes)))
        }
        for a in floats {
            all.append(("unary \(a)", ElementwiseKernels.unary(a)))
            all.append(("norms \(a)", RowKernels.norms(a)))
            all.append(("attention \(a)", MatrixKernels.attention(a)))
            all.append(("rmsNormRope \(a)", FusedKernels.rmsNormRope(a)))
            all.append(("channelRMSNorm \(a)", FusedKernels.channelRMSNorm(a)))
            all.append(("biasResidual \(a)", ElementwiseKernels.biasResidual(a)))
            for b in floats {
                all.append(("modulatedLayerNorm \(a)→\(b)", FusedKernels.modulatedLayerNorm(a, out: b)))
                all.append(("gatedResidual \(a), \(b)", FusedKernels.gatedResidual(a, b)))
                all.append(("conv3d \(a), \(b)", MatrixKernels.conv3d(a, b)))
                for out in floats {
                    all.append(("binary \(a), \(b) → \(out)", ElementwiseKernels.binary(a, b, out: out)))
                    all.append(("gemm \(a), \(b) → \(out)", MatrixKernels.gemm(a, b, out: out)))
                }
            }
        }
        all.append(("flash attention", FlashAttentionKernel.source))
        if hopper { all.append(("flash attention (wgmma)", WGMMAAttentionKernel.source)) }
        return all
    }
}
