import Foundation
import KinemaCore

// Building blocks of cuDNN's backend (graph) API: owned descriptors with typed attribute setters, virtual and
// real tensors, pointwise / reduction / matmul operations, and the heuristics → execution plan step. The
// numeric codes are the values of cuDNN 9's enums (cudnn_graph.h); they are part of cuDNN's ABI.

enum CUDNNCode {
    // cudnnBackendDescriptorType_t
    static let pointwiseDescriptor: Int32 = 0
    static let convolutionDescriptor: Int32 = 1
    static let operationConvolutionForwardDescriptor: Int32 = 10
    static let engineConfigDescriptor: Int32 = 3
    static let engineHeuristicsDescriptor: Int32 = 4
    static let executionPlanDescriptor: Int32 = 5
    static let operationPointwiseDescriptor: Int32 = 13
    static let operationGraphDescriptor: Int32 = 15
    static let variantPackDescriptor: Int32 = 16
    static let tensorDescriptor: Int32 = 17
    static let matmulDescriptor: Int32 = 18
    static let operationMatmulDescriptor: Int32 = 19
    static let reductionDescriptor: Int32 = 21
    static let operationReductionDescriptor: Int32 = 22
    static let operationSoftmaxDescriptor: Int32 = 45

    // cudnnBackendAttributeName_t
    static let pointwiseMode: Int32 = 0
    static let pointwiseMathPrecision: Int32 = 1
    static let convolutionComputeType: Int32 = 100
    static let convolutionMode: Int32 = 101
    static let convolutionDilations: Int32 = 102
    static let convolutionFilterStrides: Int32 = 103
    static let convolutionPostPaddings: Int32 = 104
    static let convolutionPrePaddings: Int32 = 105
    static let convolutionSpatialDims: Int32 = 106
    static let operationConvolutionForwardAlpha: Int32 = 700
    static let operationConvolutionForwardBeta: Int32 = 701
    static let operationConvolutionForwardDescriptorAttribute: Int32 = 702
    static let operationConvolutionForwardW: Int32 = 703
    static let operationConvolutionForwardX: Int32 = 704
    static let operationConvolutionForwardY: Int32 = 705
    static let heuristicsMode: Int32 = 200
    static let heuristicsOperationGraph: Int32 = 201
    static let heuristicsResults: Int32 = 202
    static let planHandle: Int32 = 400
    static let planEngineConfig: Int32 = 401
    static let planWorkspaceSize: Int32 = 402
    static let operationPointwiseDescriptorAttribute: Int32 = 750
    static let operationPointwiseX: Int32 = 751
    static let operationPointwiseB: Int32 = 752
    static let operationPointwiseY: Int32 = 753
    static let graphHandle: Int32 = 800
    static let graphOperations: Int32 = 801
    static let tensorByteAlignment: Int32 = 900
    static let tensorDataType: Int32 = 901
    static let tensorDimensions: Int32 = 902
    static let tensorStrides: Int32 = 903
    static let tensorUniqueID: Int32 = 906
    static let tensorIsVirtual: Int32 = 907
    static let tensorIsByValue: Int32 = 908
    static let variantPackUniqueIDs: Int32 = 1000
    static let variantPackDataPointers: Int32 = 1001
    static let variantPackWorkspace: Int32 = 1003
    static let matmulComputeType: Int32 = 1500
    static let operationMatmulA: Int32 = 1520
    static let operationMatmulB: Int32 = 1521
    static let operationMatmulC: Int32 = 1522
    static let operationMatmulDescriptorAttribute: Int32 = 1523
    static let reductionOperator: Int32 = 1600
    static let reductionComputeType: Int32 = 1601
    static let operationReductionX: Int32 = 1610
    static let operationReductionY: Int32 = 1611
    static let operationReductionDescriptorAttribute: Int32 = 1612
    static let operationSoftmaxX: Int32 = 3100
    static let operationSoftmaxY: Int32 = 3101

    // cudnnBackendAttributeType_t
    static let typeHandle: Int32 = 0
    static let typeDataType: Int32 = 1
    static let typeBoolean: Int32 = 2
    static let typeInt64: Int32 = 3
    static let typeFloat: Int32 = 4
    static let typeVoidPointer: Int32 = 6
    static let typeConvolutionMode: Int32 = 7
    static let typeHeuristicsMode: Int32 = 8
    static let typePointwiseMode: Int32 = 14
    static let typeBackendDescriptor: Int32 = 15
    static let typeReductionOperator: Int32 = 18

    // cudnnDataType_t
    static let float: Int32 = 0
    static let half: Int32 = 2
    static let bfloat16: Int32 = 9

    // cudnnPointwiseMode_t
    static let add: Int32 = 0
    static let mul: Int32 = 1
    static let div: Int32 = 6
    static let sub: Int32 = 9
    static let exp: Int32 = 13
    static let log: Int32 = 15

    // cudnnConvolutionMode_t
    static let crossCorrelation: Int32 = 1

    // cudnnReduceTensorOp_t
    static let reduceAdd: Int32 = 0
    static let reduceMax: Int32 = 3

    // cudnnBackendHeurMode_t
    static let heuristicsModeA: Int32 = 3

    static func dataType(_ dtype: DType) -> Int32? {
        switch dtype {
        case .f32: return float
        case .f16: return half
        case .bf16: return bfloat16
        default: return nil
        }
    }
}

/// One backend descriptor, destroyed when released. `name` says what it is in error messages.
final class BackendDescriptor {
    let api: CUDNN
    private(set) var raw: OpaquePointer?
    let name: String

    init(_ api: CUDNN, type: Int32, name: String) throws {
        self.api = api
        self.name = name
        try api.check(api.backendCreate(type, &raw), "cudnnBackendCreateDescriptor(\(name))")
    }

    deinit { if raw != nil { _ = api.backendDestroy(raw) } }

    private func set(_ attribute: Int32, _ type: Int32, _ count: Int, _ values: UnsafeRawPointer, _ what: String) throws {
        try api.check(api.backendSet(raw, attribute, type, Int64(count), values), "SetAttribute(\(name).\(what))")
    }

    func setInt64s(_ attribute: Int32, _ values: [Int64], _ what: String) throws {
        try values.withUnsafeBytes { try set(attribute, CUDNNCode.typeInt64, values.count, $0.baseAddress!, what) }
    }

    /// A 4-byte enum value (data type, pointwise mode, reduction operator, heuristics mode).
    func setEnum(_ attribute: Int32, type: Int32, _ value: Int32, _ what: String) throws {
        var v = value
        try set(attribute, type, 1, &v, what)
    }

    func setFloat(_ attribute: Int32, _ value: Float, _ what: String) throws {
        var v = value
        try set(attribute, CUDNNCode.typeFloat, 1, &v, what)
    }

    func setBool(_ attribute: Int32, _ value: Bool, _ what: String) throws {
        var v = value
        try set(attribute, CUDNNCode.typeBoolean, 1, &v, what)
    }

    func setDescriptors(_ attribute: Int32, _ descriptors: [BackendDescriptor], _ what: String) throws {
        let raws: [OpaquePointer?] = descriptors.map(\.raw)
        try raws.withUnsafeBytes { try set(attribute, CUDNNCode.typeBackendDescriptor, raws.count, $0.baseAddress!, what) }
    }

    func setHandle(_ attribute: Int32, _ what: String) throws {
        var handle = api.handle
        try set(attribute, CUDNNCode.typeHandle, 1, &handle, what)
    }

    func setPointers(_ attribute: Int32, _ pointers: [UnsafeMutableRawPointer?], _ what: String) throws {
        try pointers.withUnsafeBytes { try set(attribute, CUDNNCode.typeVoidPointer, pointers.count, $0.baseAddress!, what) }
    }

    func finalize() throws {
        try api.check(api.backendFinalize(raw), "cudnnBackendFinalize(\(name))")
    }

    func int64(_ attribute: Int32, _ what: String) throws -> Int64 {
        var value: Int64 = 0
        var count: Int64 = 0
        try api.check(api.backendGet(raw, attribute, CUDNNCode.typeInt64, 1, &count, &value), "GetAttribute(\(name).\(what))")
        return value
    }
}

/// Accumulates the descriptors of one operation graph (they must outlive its execution plan) and hands out
/// tensor ids.
final class CUDNNGraphBuilder {
    let api: CUDNN
    private(set) var descriptors: [BackendDescriptor] = []
    private(set) var operations: [BackendDescriptor] = []
    private var nextVirtualID: Int64 = 1000
    /// Whether the last `plans` call stopped on a slow finalize with configs left untried (`stopAfterSlowFinalize`).
    private(set) var plansStoppedEarly = false

    init(_ api: CUDNN) { self.api = api }

    private func make(_ type: Int32, _ name: String) throws -> BackendDescriptor {
        let descriptor = try BackendDescriptor(api, type: type, name: name)
        descriptors.append(descriptor)
        return descriptor
    }

    /// A tensor in the graph: real ones (`id` given) are bound to memory at execution; virtual ones live
    /// only inside fused kernels. `byValue`: a host scalar passed at execution.
    func tensor(
        _ name: String, dims: [Int], strides: [Int], dtype: Int32, id: Int64? = nil, virtual: Bool = false,
        byValue: Bool = false, alignment: Int = 16
    ) throws -> (descriptor: BackendDescriptor, id: Int64) {
        let uid: Int64
        if let id {
            uid = id
        } else {
            uid = nextVirtualID
            nextVirtualID += 1
        }
        let t = try make(CUDNNCode.tensorDescriptor, "tensor \(name)")
        try t.setEnum(CUDNNCode.tensorDataType, type: CUDNNCode.typeDataType, dtype, "DATA_TYPE")
        try t.setInt64s(CUDNNCode.tensorDimensions, dims.map(Int64.init), "DIMENSIONS \(dims)")
        try t.setInt64s(CUDNNCode.tensorStrides, strides.map(Int64.init), "STRIDES \(strides)")
        try t.setInt64s(CUDNNCode.tensorUniqueID, [uid], "UNIQUE_ID")
        try t.setInt64s(CUDNNCode.tensorByteAlignment, [Int64(alignment)], "BYTE_ALIGNMENT")
        if virtual { try t.setBool(CUDNNCode.tensorIsVirtual, true, "IS_VIRTUAL") }
        if byValue { try t.setBool(CUDNNCode.tensorIsByValue, true, "IS_BY_VALUE") }
        try t.finalize()
        return (t, uid)
    }

    /// y = mode(x) or y = mode(x, b), computed in f32.
    func pointwise(_ name: String, mode: Int32, x: BackendDescriptor, b: BackendDescriptor? = nil, y: BackendDescriptor) throws {
        let description = try make(CUDNNCode.pointwiseDescriptor, "pointwise \(name)")
        try description.setEnum(CUDNNCode.pointwiseMode, type: CUDNNCode.typePointwiseMode, mode, "MODE")
        try description.setEnum(CUDNNCode.pointwiseMathPrecision, type: CUDNNCode.typeDataType, CUDNNCode.float, "MATH_PREC")
        try description.finalize()
        let op = try make(CUDNNCode.operationPointwiseDescriptor, "pointwise op \(name)")
        try op.setDescriptors(CUDNNCode.operationPointwiseDescriptorAttribute, [description], "PW_DESCRIPTOR")
        try op.setDescriptors(CUDNNCode.operationPointwiseX, [x], "XDESC")
        if let b { try op.setDescriptors(CUDNNCode.operationPointwiseB, [b], "BDESC") }
        try op.setDescriptors(CUDNNCode.operationPointwiseY, [y], "YDESC")
        try op.finalize()
        operations.append(op)
    }

    /// y = reduce(x) over the axes where y has size 1, in f32.
    func reduction(_ name: String, op reduceOp: Int32, x: BackendDescriptor, y: BackendDescriptor) throws {
        let description = try make(CUDNNCode.reductionDescriptor, "reduction \(name)")
        try description.setEnum(CUDNNCode.reductionComputeType, type: CUDNNCode.typeDataType, CUDNNCode.float, "COMP_TYPE")
        try description.setEnum(CUDNNCode.reductionOperator, type: CUDNNCode.typeReductionOperator, reduceOp, "OPERATOR")
        try description.finalize()
        let op = try make(CUDNNCode.operationReductionDescriptor, "reduction op \(name)")
        try op.setDescriptors(CUDNNCode.operationReductionDescriptorAttribute, [description], "DESC")
        try op.setDescriptors(CUDNNCode.operationReductionX, [x], "XDESC")
        try op.setDescriptors(CUDNNCode.operationReductionY, [y], "YDESC")
        try op.finalize()
        operations.append(op)
    }

    /// c = a · b (batched over the leading axes), f32 accumulation.
    func matmul(_ name: String, a: BackendDescriptor, b: BackendDescriptor, c: BackendDescriptor) throws {
        let description = try make(CUDNNCode.matmulDescriptor, "matmul \(name)")
        try description.setEnum(CUDNNCode.matmulComputeType, type: CUDNNCode.typeDataType, CUDNNCode.float, "COMP_TYPE")
        try description.finalize()
        let op = try make(CUDNNCode.operationMatmulDescriptor, "matmul op \(name)")
        try op.setDescriptors(CUDNNCode.operationMatmulA, [a], "ADESC")
        try op.setDescriptors(CUDNNCode.operationMatmulB, [b], "BDESC")
        try op.setDescriptors(CUDNNCode.operationMatmulC, [c], "CDESC")
        try op.setDescriptors(CUDNNCode.operationMatmulDescriptorAttribute, [description], "DESC")
        try op.finalize()
        operations.append(op)
    }

    /// y = conv(x, w) (cross-correlation, as PyTorch), f32 accumulation; the layouts are whatever the tensors'
    /// strides say (dims always [N, C, spatial…]). `pre`/`post`: zero padding before / after each spatial axis.
    func convolutionForward(
        _ name: String, x: BackendDescriptor, w: BackendDescriptor, y: BackendDescriptor, pre: [Int], post: [Int], stride: [Int]
    ) throws {
        let description = try make(CUDNNCode.convolutionDescriptor, "convolution \(name)")
        try description.setEnum(CUDNNCode.convolutionComputeType, type: CUDNNCode.typeDataType, CUDNNCode.float, "COMP_TYPE")
        try description.setEnum(CUDNNCode.convolutionMode, type: CUDNNCode.typeConvolutionMode, CUDNNCode.crossCorrelation, "CONV_MODE")
        try description.setInt64s(CUDNNCode.convolutionSpatialDims, [Int64(pre.count)], "SPATIAL_DIMS")
        try description.setInt64s(CUDNNCode.convolutionDilations, pre.map { _ in 1 }, "DILATIONS")
        try description.setInt64s(CUDNNCode.convolutionFilterStrides, stride.map(Int64.init), "FILTER_STRIDES \(stride)")
        try description.setInt64s(CUDNNCode.convolutionPrePaddings, pre.map(Int64.init), "PRE_PADDINGS \(pre)")
        try description.setInt64s(CUDNNCode.convolutionPostPaddings, post.map(Int64.init), "POST_PADDINGS \(post)")
        try description.finalize()
        let op = try make(CUDNNCode.operationConvolutionForwardDescriptor, "convolution op \(name)")
        try op.setDescriptors(CUDNNCode.operationConvolutionForwardDescriptorAttribute, [description], "CONV_DESC")
        try op.setDescriptors(CUDNNCode.operationConvolutionForwardX, [x], "X")
        try op.setDescriptors(CUDNNCode.operationConvolutionForwardW, [w], "W")
        try op.setDescriptors(CUDNNCode.operationConvolutionForwardY, [y], "Y")
        try op.setFloat(CUDNNCode.operationConvolutionForwardAlpha, 1, "ALPHA")
        try op.setFloat(CUDNNCode.operationConvolutionForwardBeta, 0, "BETA")
        try op.finalize()
        operations.append(op)
    }

    /// cuDNN ≥ 9.21's single softmax operation (y = softmax over the last axis of x).
    func softmax(_ name: String, x: BackendDescriptor, y: BackendDescriptor) throws {
        let op = try make(CUDNNCode.operationSoftmaxDescriptor, "softmax op \(name)")
        try op.setDescriptors(CUDNNCode.operationSoftmaxX, [x], "XDESC")
        try op.setDescriptors(CUDNNCode.operationSoftmaxY, [y], "YDESC")
        try op.finalize()
        operations.append(op)
    }

    /// Finalizes the operation graph, asks heuristics mode A for engine configs, and returns the first
    /// execution plan that finalizes with its workspace size. The error lists why each config failed.
    func plan() throws -> (plan: BackendDescriptor, workspace: Int, engineIndex: Int) {
        guard let first = try plans(limit: 1).first else { throw KinemaError.unsupported("cuDNN returned no execution plan") }
        return (first.plan, first.workspace, first.engineIndex)
    }

    /// Up to `limit` execution plans, in heuristics mode A's order, that finalize (to time them against
    /// each other); throws when none does.
    /// finalizeSeconds: host wall time of the plan's finalize (a runtime-fusion engine compiles its kernel there).
    /// Plans needing more than `maxWorkspace` bytes are finalized (to learn their size) but neither returned nor
    /// counted towards `limit`. `onlyConfig`: finalize that config of heuristics' list alone (a remembered choice).
    /// `stopAfterSlowFinalize`: once a plan that fits took longer than this to finalize, return the plans built so
    /// far (its kernels were compiled, not found in the driver's cache; see CUDNNChannelsLastConvolution), and set
    /// `plansStoppedEarly` when configs were left untried.
    func plans(limit: Int, maxWorkspace: Int = .max, onlyConfig: Int? = nil, stopAfterSlowFinalize: Double? = nil) throws
        -> [(plan: BackendDescriptor, workspace: Int, engineIndex: Int, finalizeSeconds: Double)]
    {
        let graph = try make(CUDNNCode.operationGraphDescriptor, "operation graph")
        try graph.setHandle(CUDNNCode.graphHandle, "HANDLE")
        try graph.setDescriptors(CUDNNCode.graphOperations, operations, "OPS (\(operations.count))")
        try graph.finalize()
        let heuristics = try make(CUDNNCode.engineHeuristicsDescriptor, "engine heuristics")
        try heuristics.setDescriptors(CUDNNCode.heuristicsOperationGraph, [graph], "OPERATION_GRAPH")
        try heuristics.setEnum(CUDNNCode.heuristicsMode, type: CUDNNCode.typeHeuristicsMode, CUDNNCode.heuristicsModeA, "MODE")
        try heuristics.finalize()
        var available: Int64 = 0
        try api.check(
            api.backendGet(heuristics.raw, CUDNNCode.heuristicsResults, CUDNNCode.typeBackendDescriptor, 0, &available, nil),
            "GetAttribute(engine heuristics.RESULTS count)")
        guard available > 0 else {
            let detail = api.lastErrorText()
            throw KinemaError.unsupported("cuDNN heuristics (mode A) returned no engine config for this graph" + (detail.isEmpty ? "" : ": \(detail)"))
        }
        let configs = try (0..<Int(available)).map { try make(CUDNNCode.engineConfigDescriptor, "engine config \($0)") }
        var raws: [OpaquePointer?] = configs.map(\.raw)
        var returned: Int64 = 0
        try api.check(
            api.backendGet(heuristics.raw, CUDNNCode.heuristicsResults, CUDNNCode.typeBackendDescriptor, available, &returned, &raws),
            "GetAttribute(engine heuristics.RESULTS)")
        var failures: [String] = []
        plansStoppedEarly = false
        var built: [(plan: BackendDescriptor, workspace: Int, engineIndex: Int, finalizeSeconds: Double)] = []
        for (index, config) in configs.prefix(Int(returned)).enumerated() where built.count < limit && (onlyConfig ?? index) == index {
            do {
                let started = DispatchTime.now().uptimeNanoseconds
                let plan = try make(CUDNNCode.executionPlanDescriptor, "execution plan \(index)")
                try plan.setHandle(CUDNNCode.planHandle, "HANDLE")
                try plan.setDescriptors(CUDNNCode.planEngineConfig, [config], "ENGINE_CONFIG")
                try plan.finalize()
                let workspace = Int(try plan.int64(CUDNNCode.planWorkspaceSize, "WORKSPACE_SIZE"))
                guard workspace <= maxWorkspace else {
                    failures.append("config \(index): needs \(workspace >> 20) MiB of workspace, over the \(maxWorkspace >> 20) MiB limit")
                    continue
                }
                let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) * 1e-9
                built.append((plan, workspace, index, seconds))
                if let stopAfterSlowFinalize, seconds > stopAfterSlowFinalize, built.count < limit,
                    index + 1 < Int(returned), onlyConfig == nil
                {
                    plansStoppedEarly = true
                    break
                }
            } catch {
                failures.append("config \(index): \(error)")
            }
        }
        if !built.isEmpty { return built }
        if let onlyConfig, onlyConfig >= Int(returned) {
            throw KinemaError.unsupported("cuDNN heuristics returned \(returned) engine configs, none at index \(onlyConfig)")
        }
        throw KinemaError.unsupported(
            "none of cuDNN's \(returned) engine configs finalized: " + failures.prefix(4).joined(separator: "; "))
    }
}

extension CUDNN {
    /// Runs a finalized plan with `bindings` (tensor id → device or, for by-value tensors, host pointer).
    func execute(plan: BackendDescriptor, bindings: [(Int64, UnsafeMutableRawPointer?)], workspace: UnsafeMutableRawPointer?) throws {
        let pack = try BackendDescriptor(self, type: CUDNNCode.variantPackDescriptor, name: "variant pack")
        try pack.setInt64s(CUDNNCode.variantPackUniqueIDs, bindings.map(\.0), "UNIQUE_IDS")
        try pack.setPointers(CUDNNCode.variantPackDataPointers, bindings.map(\.1), "DATA_POINTERS")
        try pack.setPointers(CUDNNCode.variantPackWorkspace, [workspace], "WORKSPACE")
        try pack.finalize()
        try check(backendExecute(handle, plan.raw, pack.raw), "cudnnBackendExecute")
    }
}

/// The largest power of two ≤ 16 that divides `address` (cuDNN's BYTE_ALIGNMENT of a tensor).
func cudnnAlignment(_ address: CUdeviceptr) -> Int {
    var alignment = 16
    while alignment > 1 && address % CUdeviceptr(alignment) != 0 { alignment /= 2 }
    return alignment
}

func devicePointer(_ address: CUdeviceptr) -> UnsafeMutableRawPointer? {
    UnsafeMutableRawPointer(bitPattern: UInt(address))
}
