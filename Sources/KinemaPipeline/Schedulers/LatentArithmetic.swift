import KinemaCore

/// The samplers' per-step elementwise arithmetic as backend ops, so latents and sampler history stay on
/// the backend's device (a Wan 1.3B 480p latent is 2.1 M floats: 8.4 MB each way per step if it crossed
/// the bus).
///
/// Every method is one backend op on float32 tensors with one rounding per element — the same single
/// float32 rounding a host loop's `a - b` or `s * a` performs (Swift never contracts `s * a - t * b` into
/// an FMA). A sampler written as these calls, in its formula's evaluation order, therefore reproduces the
/// host loops bit for bit on the CPU backend; CUDA's elementwise kernels are IEEE (no fast-math), and an
/// `affine` contracted to fma(x, s, −0) is still the single rounding of x·s.
struct LatentArithmetic {
    let backend: any Backend

    /// s·x, rounded once. The shift is −0, not +0: x·s + (−0) equals x·s for every product, signed zeros
    /// included, whereas x·s + (+0) would turn a −0 product into +0.
    func scaled(_ x: Tensor, by s: Float) throws -> Tensor {
        try backend.affine(x, scale: s, shift: -0.0)
    }

    /// a + b.
    func sum(_ a: Tensor, _ b: Tensor) throws -> Tensor { try backend.add(a, b) }

    /// a − b.
    func difference(_ a: Tensor, _ b: Tensor) throws -> Tensor { try backend.sub(a, b) }

    /// x / s as a true division (x·(1/s) rounds differently): s travels as a one-element device tensor
    /// that broadcasts over x.
    func divided(_ x: Tensor, by s: Float) throws -> Tensor {
        try backend.div(x, try backend.upload(try Tensor([s], shape: [1])))
    }

    /// s·x − t·y as the host evaluates `s * x[k] - t * y[k]`: two products, then the difference.
    func scaledDifference(_ s: Float, _ x: Tensor, _ t: Float, _ y: Tensor) throws -> Tensor {
        try difference(try scaled(x, by: s), try scaled(y, by: t))
    }

    /// The flow x0 prediction x − σ·v (diffusers' convert_model_output for flow_prediction).
    func x0Prediction(sample x: Tensor, velocity v: Tensor, sigma: Float) throws -> Tensor {
        try difference(x, try scaled(v, by: sigma))
    }
}
