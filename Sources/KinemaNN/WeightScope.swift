import Foundation
import KinemaCore

// Construction is loading: a model is built from a `WeightScope`, each layer asking for its tensors by the
// canonical key, once. The shared `WeightStore` records every key handed out, so that after building,
// `finish()` reports missing keys, unused keys and wrong shapes together in one error.

public final class WeightStore {
    public let source: any TensorSource
    public let backend: any Backend
    public let layout: KeyLayout
    public let component: String
    /// canonical key → source key
    private var sourceKey: [String: String] = [:]
    private var consumed = Set<String>()
    private var missing: [String] = []
    private var wrong: [String] = []
    private let ignored: [KeyPattern]
    /// Set for stores that make up weights instead of reading them (benchmarks of real model shapes).
    private var synthesizer: SyntheticWeights?

    /// - Parameters:
    ///   - layouts: candidate layouts, detected from the keys (after stripping a wrapper prefix).
    ///   - wrapperPrefixes: prefixes stripped when every key has them.
    ///   - ignoring: canonical keys allowed to stay unused (e.g. precomputed RoPE tables some files carry).
    public init(
        source: any TensorSource, backend: any Backend, component: String, layouts: [KeyLayout],
        wrapperPrefixes: [String] = [], ignoring: [KeyPattern] = []
    ) throws {
        self.source = source
        self.backend = backend
        self.component = component
        self.ignored = ignoring
        let names = source.names
        let wrapper = commonWrapperPrefix(of: names, candidates: wrapperPrefixes)
        let stripped = names.map { name in wrapper.map { String(name.dropFirst($0.count)) } ?? name }
        guard let layout = KeyLayout.detect(stripped, among: layouts) else {
            throw KinemaError.badFile(
                path: source.origin, location: nil,
                reason: "\(component): key names match none of the known layouts (\(layouts.map(\.name).joined(separator: ", ")))")
        }
        self.layout = layout
        for (original, plain) in zip(names, stripped) {
            let key = layout.canonical(plain)
            if let previous = sourceKey[key] {
                throw KinemaError.badFile(
                    path: source.origin, location: original,
                    reason: "\(component): both '\(previous)' and '\(original)' map to '\(key)'")
            }
            sourceKey[key] = original
        }
    }

    /// A store with no checkpoint that hands out deterministic pseudo-random weights of whatever shape the
    /// model asks for. Only for timing real model shapes without downloading them; never for outputs that
    /// mean anything.
    public init(synthesizingFor component: String, backend: any Backend, seed: UInt64 = 0) {
        self.source = InMemoryTensors([:], origin: "synthetic weights")
        self.backend = backend
        self.component = component
        self.layout = KeyLayout(name: "synthetic", markers: [], rules: [])
        self.ignored = []
        self.synthesizer = SyntheticWeights(seed: seed)
    }

    public var root: WeightScope { WeightScope(store: self, prefix: "") }

    public func contains(_ key: String) -> Bool { synthesizer != nil ? false : sourceKey[key] != nil }

    public func info(_ key: String) -> TensorInfo? {
        sourceKey[key].flatMap { source.info($0) }
    }

    /// Canonical keys present in the checkpoint.
    public var keys: [String] { sourceKey.keys.sorted() }

    /// Fetches `key`, checking its shape, converts it to `dtype` and places it on the backend's device.
    /// A missing key or a wrong shape is recorded for `finish()`, and construction continues with a
    /// zero-cost placeholder (a stride-0 view of one zero) so that every problem is found in one pass.
    /// A placeholder never reaches computation: `build` throws before returning the model.
    func load(_ key: String, shape: [Int]?, dtype: DType?) throws -> Tensor {
        let placeholder = { try Tensor.zeros([1], dtype: dtype ?? .f32).expanded(to: shape ?? [0]) }
        if var synthesizer {
            guard let shape else {
                throw KinemaError.invalidArgument("synthetic weights need the shape of \(key)")
            }
            consumed.insert(key)
            let tensor = try synthesizer.tensor(shape: shape, dtype: dtype ?? .f32)
            self.synthesizer = synthesizer
            return try backend.upload(tensor)
        }
        guard let original = sourceKey[key], let info = source.info(original) else {
            missing.append(key)
            return try placeholder()
        }
        consumed.insert(key)
        if let shape, shape != info.shape {
            wrong.append("\(key): expected shape \(shape), found \(info.shape)")
            return try placeholder()
        }
        if let dtype, dtype.isFloatingPoint, !info.dtype.isFloatingPoint {
            wrong.append("\(key): expected a float tensor, found \(info.dtype.rawValue)")
            return try placeholder()
        }
        var tensor = try backend.upload(try source.tensor(original))
        if let dtype, tensor.dtype != dtype { tensor = try backend.cast(tensor, to: dtype) }
        return tensor
    }

    /// Accounts for `key` without reading it: it must be present (and of `shape`, unless nil), and counts as
    /// used. For weights a model deliberately leaves out of its computation (e.g. the CLIP vision tower's
    /// last block when only the penultimate hidden states are wanted), so that strict accounting still
    /// proves the checkpoint is the model it claims to be, at no memory or load cost.
    func skip(_ key: String, shape: [Int]?) {
        if synthesizer != nil { return }
        guard let original = sourceKey[key], let info = source.info(original) else {
            missing.append(key)
            return
        }
        consumed.insert(key)
        if let shape, shape != info.shape {
            wrong.append("\(key): expected shape \(shape), found \(info.shape)")
        }
    }

    public var hasProblems: Bool { !missing.isEmpty || !wrong.isEmpty }

    /// Throws one error listing every missing, unused and mismatched key, or returns if all is well.
    public func finish() throws {
        let unused = sourceKey.keys.filter { key in
            !consumed.contains(key) && !ignored.contains { $0.matches(key) }
        }.sorted()
        if !missing.isEmpty || !unused.isEmpty || !wrong.isEmpty {
            throw KinemaError.weightAccounting(
                component: "\(component) (\(layout.name) layout, \(source.origin))",
                missing: missing.sorted(), unused: unused, wrong: wrong)
        }
    }

    /// Builds a model and checks the accounting. If construction fails after a weight problem was recorded,
    /// the accounting error (which explains the failure) is thrown instead.
    public func build<Model>(_ body: (WeightScope) throws -> Model) throws -> Model {
        let model: Model
        do {
            model = try body(root)
        } catch {
            if hasProblems { try finish() }
            throw error
        }
        try finish()
        return model
    }
}

public struct WeightScope {
    public let store: WeightStore
    public let prefix: String

    public var backend: any Backend { store.backend }

    public subscript(_ child: String) -> WeightScope {
        WeightScope(store: store, prefix: prefix.isEmpty ? child : prefix + "." + child)
    }

    public func key(_ name: String) -> String { prefix.isEmpty ? name : prefix + "." + name }

    /// The tensor `prefix.name`, checked against `shape` (nil: any) and converted to `dtype` (nil: as stored).
    public func tensor(_ name: String, shape: [Int]? = nil, dtype: DType? = nil) throws -> Tensor {
        try store.load(key(name), shape: shape, dtype: dtype)
    }

    /// Like `tensor` but returns nil when the key is absent (for genuinely optional weights).
    public func optionalTensor(_ name: String, shape: [Int]? = nil, dtype: DType? = nil) throws -> Tensor? {
        guard store.contains(key(name)) else { return nil }
        return try tensor(name, shape: shape, dtype: dtype)
    }

    public func contains(_ name: String) -> Bool { store.contains(key(name)) }

    /// Requires `prefix.name` (of `shape`, unless nil) to be present but does not load it (see
    /// `WeightStore.skip`).
    public func skip(_ name: String, shape: [Int]? = nil) {
        store.skip(key(name), shape: shape)
    }
}

/// Deterministic pseudo-random values in [-0.05, 0.05), never all zeros (for synthetic benchmark weights).
public struct SyntheticWeights {
    var generator: SplitMix64

    public init(seed: UInt64) { generator = SplitMix64(seed: seed &+ 0x9E37_79B9_7F4A_7C15) }

    public mutating func next() -> Float { (generator.unitFloat() - 0.5) * 0.1 }

    /// Large tensors (a umT5-XXL embedding table is 1.05 G values) are filled in parallel chunks, each with
    /// its own generator derived from one draw of the main one, so the values depend only on the seed. Each
    /// chunk is stored straight into the tensor in its dtype (the same rounding as converting the f32 values
    /// afterwards), so a 14B model's weights never exist as one f32 array on the host.
    public mutating func tensor(shape: [Int], dtype: DType) throws -> Tensor {
        let count = shape.reduce(1, *)
        let storedType = dtype.isFloatingPoint ? dtype : .f32
        let chunk = 1 << 20
        if count <= chunk {
            var values = [Float](repeating: 0, count: count)
            for index in 0..<count { values[index] = next() }
            return try Tensor(values, shape: shape, dtype: storedType)
        }
        let tensor = try Tensor.uninitialized(shape, dtype: storedType)
        let base = generator.next()
        let chunks = (count + chunk - 1) / chunk
        let destination = SendablePointer(tensor.hostPointer.assumingMemoryBound(to: UInt8.self))
        let failures = FailureBox()
        DispatchQueue.concurrentPerform(iterations: chunks) { c in
            var local = SyntheticWeights(seed: base &+ UInt64(c) &* 0xD1B5_4A32_D192_ED03)
            let range = c * chunk..<min(count, (c + 1) * chunk)
            var values = [Float](repeating: 0, count: range.count)
            for index in values.indices { values[index] = local.next() }
            do {
                try values.withUnsafeBufferPointer { source in
                    try HostElements.store(
                        source, into: UnsafeMutableRawPointer(destination.pointer + range.lowerBound * storedType.byteSize), dtype: storedType)
                }
            } catch {
                failures.record(error)
            }
        }
        if let error = failures.first { throw error }
        return tensor
    }
}

/// The first error thrown inside a `concurrentPerform` body (which cannot throw itself).
private final class FailureBox: @unchecked Sendable {
    private let lock = NSLock()
    private var error: (any Error)?

    func record(_ error: any Error) { lock.withLock { if self.error == nil { self.error = error } } }
    var first: (any Error)? { lock.withLock { error } }
}
