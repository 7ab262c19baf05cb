// Every numerical tolerance the tests use, in one place. Changing one needs a reason in the commit message.

public enum Tolerances {
    /// Model golden tests, f32 path against the PyTorch f32 reference (relative L2 over the whole tensor).
    public static let goldenF32RelL2 = 1e-5
    /// Model golden tests, bf16 path against the PyTorch f32 reference.
    public static let goldenBF16RelL2 = 1e-2
}

extension Tolerances {
    /// Single ops against torch, f32 in and out (differences come from summation order only).
    public static let opF32RelL2 = 2e-6
    /// Single ops against torch in bf16 (both round the output to bf16; one-ulp differences are 2⁻⁸ relative).
    public static let opBF16RelL2 = 5e-3
}
