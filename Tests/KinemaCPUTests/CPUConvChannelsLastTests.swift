@testable import KinemaCPU
import KinemaCore
import XCTest

// conv3dChannelsLast on awkward memory layouts, batches and bf16 against the channels-first conv3d (itself
// checked against a direct Double convolution in ConvTests), with the layout moves and the residual add done
// separately here. The kernels, strides and paddings of the Wan VAE are checked against a direct Double
// convolution in ChannelsLastOpsTests; the shape errors there too.

final class CPUConvChannelsLastTests: XCTestCase {
    let backend = CPUBackend.shared

    struct Case {
        var batch = 1, inChannels = 5, outChannels = 7
        var input = [3, 5, 6]  // T, H, W
        var kernel = [3, 3, 3], stride = [1, 1, 1], padding = [1, 1, 1]
        var dtype = DType.f32
        var bias = true, residual = true
        var layout = Layout.contiguous
    }

    func check(_ c: Case, file: StaticString = #filePath, line: UInt = #line) throws {
        var random = SeededRandom(seed: UInt64(c.inChannels * 31 + c.kernel.reduce(0, +) * 7 + c.stride.reduce(0, +)))
        func values(_ n: Int) -> [Float] { (0..<n).map { _ in random.unitFloat() * 2 - 1 } }
        let xShape = [c.batch] + c.input + [c.inChannels]
        let wShape = [c.outChannels] + c.kernel + [c.inChannels]
        let x = try makeTensor(values(count(of: xShape)), xShape, c.dtype, c.layout)
        let w = try makeTensor(values(count(of: wShape)), wShape, c.dtype)
        let bias = c.bias ? try Tensor(values(c.outChannels), shape: [c.outChannels]) : nil
        let outShape = try ChannelsLastConvolution.validate(x, weight: w, bias: bias, residual: nil, stride: c.stride, padding: c.padding)
        let residual = c.residual ? try makeTensor(values(count(of: outShape)), outShape, c.dtype, c.layout) : nil

        let got = try backend.conv3dChannelsLast(x, weight: w, bias: bias, residual: residual, stride: c.stride, padding: c.padding)
        XCTAssertEqual(got.shape, outShape, file: file, line: line)
        XCTAssertEqual(got.dtype, c.dtype, file: file, line: line)

        // Reference in f32 from the same stored values: channels-first conv, moved back, residual added.
        let x32 = try backend.cast(x, to: .f32), w32 = try backend.cast(w, to: .f32)
        let y = try backend.conv3d(
            try backend.contiguous(try x32.permuted([0, 4, 1, 2, 3])), weight: try backend.contiguous(try w32.permuted([0, 4, 1, 2, 3])),
            bias: bias, stride: c.stride, padding: c.padding)
        var expected = try backend.contiguous(try y.permuted([0, 2, 3, 4, 1]))
        if let residual { expected = try backend.add(expected, try backend.cast(residual, to: .f32)) }

        let (a, e) = (try got.floats(), try expected.floats())
        var error = 0.0, norm = 0.0
        for (u, v) in zip(a, e) {
            error += Double(u - v) * Double(u - v)
            norm += Double(v) * Double(v)
        }
        let relative = (error / max(norm, 1e-30)).squareRoot()
        // f32: the same products summed in another order. bf16: the result rounded once to bf16 (2⁻⁹ relative).
        XCTAssertLessThan(relative, c.dtype == .f32 ? 1e-6 : 4e-3, "\(c)", file: file, line: line)
    }

    func testLayoutsBatchesAndDtypes() throws {
        for layout in [Layout.permuted, .padded, .stepped] {
            try check(Case(batch: 2, layout: layout))
        }
        try check(Case(batch: 2, kernel: [1, 1, 1], padding: [0, 0, 0], layout: .padded))
        try check(Case(dtype: .bf16))
        try check(Case(inChannels: 16, outChannels: 9, kernel: [1, 1, 1], padding: [0, 0, 0], dtype: .bf16, bias: false))
        try check(Case(bias: false, residual: false))
    }

    /// A 1×1×1 convolution of a view whose positions do not merge into one axis takes the im2col path; its
    /// buffer must exist then (it once was sized for the direct path: heap corruption). Both layouts.
    func testPointwiseOnUnmergeableViews() throws {
        try check(Case(batch: 2, kernel: [1, 1, 1], padding: [0, 0, 0], layout: .padded))
        var random = SeededRandom(seed: 5)
        let shape = [2, 4, 3, 5, 6]  // [B, Cin, T, H, W]
        let x = try makeTensor((0..<count(of: shape)).map { _ in random.unitFloat() - 0.5 }, shape, .f32, .padded)
        let w = try Tensor((0..<12).map { _ in random.unitFloat() - 0.5 }, shape: [3, 4, 1, 1, 1])
        let strided = try backend.conv3d(x, weight: w, bias: nil, stride: [1, 1, 1], padding: [0, 0, 0])
        let packed = try backend.conv3d(try backend.contiguous(x), weight: w, bias: nil, stride: [1, 1, 1], padding: [0, 0, 0])
        XCTAssertEqual(try strided.floats(), try packed.floats())
    }
}
