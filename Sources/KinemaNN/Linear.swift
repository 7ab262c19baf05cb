import KinemaCore

/// y = x·Wᵀ + b. W [out, in] is stored in the compute dtype (or a quantized storage in later work);
/// the bias is kept in f32 since it is added in the f32 epilogue anyway.
public struct Linear {
    public let weight: Tensor  // [out, in]
    public let bias: Tensor?  // [out]
    public let backend: any Backend
    /// Output widths of the projections a stacked Linear holds, in order ([outFeatures] for a plain one).
    public let partWidths: [Int]

    public var inFeatures: Int { weight.shape[1] }
    public var outFeatures: Int { weight.shape[0] }

    /// Loads `weight` [out, in] and, unless `bias` is false, `bias` [out].
    public init(_ w: WeightScope, inFeatures: Int, outFeatures: Int, bias: Bool = true, dtype: DType) throws {
        weight = try w.tensor("weight", shape: [outFeatures, inFeatures], dtype: dtype)
        self.bias = bias ? try w.tensor("bias", shape: [outFeatures], dtype: .f32) : nil
        backend = w.backend
        partWidths = [outFeatures]
    }

    /// Several projections of the same input as one: the weights [out_i, in] stacked along the output axis
    /// (and the biases likewise), so one GEMM computes them all; its output's columns are the parts in order.
    /// The parts must agree on input width, bias presence and dtypes.
    public init(stacking parts: [Linear]) throws {
        guard let first = parts.first else { throw KinemaError.invalidArgument("Linear(stacking:) of no projections") }
        guard parts.allSatisfy({ $0.inFeatures == first.inFeatures && ($0.bias == nil) == (first.bias == nil) && $0.weight.dtype == first.weight.dtype })
        else {
            throw KinemaError.shapeMismatch(
                context: "Linear(stacking:)", expected: "projections of one input width with matching biases",
                found: parts.map { "\($0.weight.shape)" }.joined(separator: ", "))
        }
        backend = first.backend
        let device = first.backend.device
        let concatenable = parts.allSatisfy { $0.weight.device == device && ($0.bias?.device ?? device) == device }
        func stacked(_ tensors: [Tensor]) throws -> Tensor {
            if tensors.count == 1 { return tensors[0] }
            guard concatenable else {
                // A missing or misshapen key left a host placeholder: keep loading with one of the stacked
                // shape so the weight store can report every problem at the end.
                let rows = tensors.reduce(0) { $0 + $1.shape[0] }
                return try Tensor.zeros([1], dtype: tensors[0].dtype).expanded(to: [rows] + tensors[0].shape.dropFirst())
            }
            return try first.backend.concat(tensors, axis: 0)
        }
        weight = try stacked(parts.map(\.weight))
        bias = try first.bias.map { _ in try stacked(parts.compactMap(\.bias)) }
        partWidths = parts.flatMap(\.partWidths)
    }

    /// x [..., in] → [..., out] in x's dtype.
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try callAsFunction(x, activation: .none)
    }

    /// x [..., in] → activation(x·Wᵀ + b) [..., out], the activation fused into the GEMM epilogue.
    public func callAsFunction(_ x: Tensor, activation: LinearActivation) throws -> Tensor {
        guard partWidths.count > 1, backend.device == .cpu else {
            return try backend.linear(x, weight: weight, bias: bias, activation: activation)
        }
        // The CPU reference keeps one GEMM per stacked part: BLAS picks its kernels by matrix size, so one
        // wide GEMM would round the same sums in another order than the separate projections the goldens
        // were made with (seen as 1.25e-5 vs the 1e-5 f32 tolerance on the tiny pipeline fixture). The
        // output is the same [..., out] tensor, so the model code is the same on every backend.
        var start = 0
        var outputs: [Tensor] = []
        for width in partWidths {
            let partWeight = try weight.narrowed(axis: 0, start: start, length: width)
            let partBias = try bias?.narrowed(axis: 0, start: start, length: width)
            outputs.append(try backend.linear(x, weight: partWeight, bias: partBias, activation: activation))
            start += width
        }
        return try backend.concat(outputs, axis: x.rank - 1)
    }
}
