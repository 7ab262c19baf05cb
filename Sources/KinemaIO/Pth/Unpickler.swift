import Foundation
import KinemaCore

// A restricted pickle reader for `torch.save` state dicts. It builds plain values (dicts, lists, tuples,
// numbers, strings) and recognises the handful of callables torch uses to describe tensors; it never
// imports or calls anything. A GLOBAL / STACK_GLOBAL naming anything outside the allow-list below is
// refused at the opcode (so `os.system`, `builtins.eval`, `subprocess.Popen`, … stop the load with an
// error naming them), and the object-building opcodes that only arbitrary classes need (INST, OBJ,
// NEWOBJ, NEWOBJ_EX, text PERSID) are refused outright.
//
// Resource limits keep a hostile file from exhausting memory: the value stack, the MARK nesting, the
// memo index and every string length are bounded, all reads are bounds-checked against the pickle.

/// The callables and constants a torch checkpoint may name.
enum PickleGlobal: Equatable, Sendable {
    case rebuildTensorV2  // torch._utils._rebuild_tensor_v2
    case rebuildTensorV3  // torch._utils._rebuild_tensor_v3: untyped storage + explicit dtype (torch 2.x float8 etc.)
    case rebuildTensor  // torch._utils._rebuild_tensor (older torch)
    case rebuildParameter  // torch._utils._rebuild_parameter
    case orderedDict  // collections.OrderedDict
    /// torch.<Type>Storage: the storage class named by a persistent id; gives the tensor's dtype
    /// (nil: torch.storage.UntypedStorage, whose element count is in bytes).
    case storageType(DType?)
    /// torch.float32 and friends (the dtype argument of _rebuild_tensor_v3).
    case dtype(DType)
    /// A torch storage type or dtype Kinema has no DType for (float64, int16, complex, …): named so the
    /// error can say which, refused when a tensor uses it.
    case unsupportedTorchType(String)

    static func resolve(module: String, name: String) -> PickleGlobal? {
        switch (module, name) {
        case ("torch._utils", "_rebuild_tensor_v2"): return .rebuildTensorV2
        case ("torch._utils", "_rebuild_tensor_v3"): return .rebuildTensorV3
        case ("torch._utils", "_rebuild_tensor"): return .rebuildTensor
        case ("torch._utils", "_rebuild_parameter"): return .rebuildParameter
        case ("collections", "OrderedDict"): return .orderedDict
        case ("torch.storage", "UntypedStorage"): return .storageType(nil)
        case ("torch", _):
            if let dtype = storageTypes[name] { return .storageType(dtype) }
            if let dtype = dtypes[name] { return .dtype(dtype) }
            if unsupportedNames.contains(name) { return .unsupportedTorchType("torch.\(name)") }
            return nil
        default: return nil
        }
    }

    private static let storageTypes: [String: DType] = [
        "FloatStorage": .f32, "HalfStorage": .f16, "BFloat16Storage": .bf16,
        "Float8_e4m3fnStorage": .f8e4m3, "Float8_e5m2Storage": .f8e5m2,
        "ByteStorage": .u8, "CharStorage": .i8, "IntStorage": .i32, "LongStorage": .i64, "BoolStorage": .bool,
    ]
    private static let dtypes: [String: DType] = [
        "float32": .f32, "float16": .f16, "bfloat16": .bf16, "float8_e4m3fn": .f8e4m3, "float8_e5m2": .f8e5m2,
        "uint8": .u8, "int8": .i8, "int32": .i32, "int64": .i64, "bool": .bool,
    ]
    private static let unsupportedNames: Set<String> = [
        "DoubleStorage", "ShortStorage", "ComplexFloatStorage", "ComplexDoubleStorage", "QInt8Storage", "QUInt8Storage",
        "float64", "int16", "uint16", "uint32", "uint64", "complex64", "complex128", "float8_e4m3fnuz", "float8_e5m2fnuz",
    ]
}

/// A storage named by a persistent id: ('storage', <StorageClass>, key, location, numel).
struct PickleStorage: Equatable, Sendable {
    let key: String
    /// nil for an UntypedStorage.
    let dtype: DType?
    /// Elements of `dtype`, or bytes when untyped.
    let numel: Int

    var byteCount: (value: Int, overflow: Bool) {
        dtype.map { numel.multipliedReportingOverflow(by: $0.byteSize) } ?? (numel, false)
    }
}

/// A tensor described by `_rebuild_tensor_v2/v3(storage, offset, size, stride, …)`; offset and strides
/// count elements of `dtype`.
struct PickleTensor: Equatable, Sendable {
    let storage: PickleStorage
    let dtype: DType
    let offset: Int
    let shape: [Int]
    let strides: [Int]

    /// How many `dtype` elements the storage holds.
    var storageElements: Int {
        storage.dtype == nil ? storage.numel / dtype.byteSize : storage.numel
    }
}

/// Lists and dicts are mutated after creation (APPEND/SETITEM follow EMPTY_LIST/EMPTY_DICT and their
/// memo entry), so they are references, as in Python.
final class PickleList { var items: [PickleValue] = [] }
final class PickleDict { var entries: [(key: PickleValue, value: PickleValue)] = [] }

enum PickleValue {
    case none
    case bool(Bool)
    case int(Int)
    case float(Double)
    case string(String)
    case bytes(Int)  // only the length is kept: checkpoints carry no tensor data in pickled bytes
    /// Items and nesting depth (1 + the deepest tuple inside; lists and dicts count 0, see `Unpickler.release`).
    case tuple([PickleValue], depth: Int)
    case list(PickleList)
    case dict(PickleDict)
    case global(PickleGlobal)
    case storage(PickleStorage)
    case tensor(PickleTensor)

    var kind: String {
        switch self {
        case .none: return "None"
        case .bool: return "bool"
        case .int: return "int"
        case .float: return "float"
        case .string: return "str"
        case .bytes: return "bytes"
        case .tuple: return "tuple"
        case .list: return "list"
        case .dict: return "dict"
        case .global: return "global"
        case .storage: return "storage"
        case .tensor: return "tensor"
        }
    }
}

struct Unpickler {
    static let maxStack = 10_000
    static let maxMarkDepth = 1_000
    static let maxMemoIndex = 1 << 22
    static let maxStringBytes = 1 << 20
    static let maxTupleItems = 1 << 16
    static let maxTupleDepth = 64
    /// Lists and dicts a pickle may create (a checkpoint makes about one per tensor).
    static let maxContainers = 1 << 22

    let bytes: UnsafeRawBufferPointer
    let path: String
    let location: String
    private var position = 0
    private var stack: [PickleValue] = []
    private var marks: [Int] = []
    private var memo: [Int: PickleValue] = [:]
    /// Every list and dict created, so `release()` can empty them iteratively (see there).
    private var lists: [PickleList] = []
    private var dicts: [PickleDict] = []

    init(bytes: UnsafeRawBufferPointer, path: String, location: String) {
        self.bytes = bytes
        self.path = path
        self.location = location
    }

    private func failure(_ reason: String, at offset: Int? = nil) -> KinemaError {
        KinemaError.badFile(path: path, location: "\(location) byte \(offset ?? position)", reason: reason)
    }

    // MARK: reading

    private mutating func take(_ count: Int, _ what: String) throws -> UnsafeRawBufferPointer {
        guard count >= 0, count <= bytes.count - position else {
            throw failure("pickle ended inside \(what) (needs \(count) bytes, \(bytes.count - position) left)")
        }
        defer { position += count }
        return UnsafeRawBufferPointer(rebasing: bytes[position..<(position + count)])
    }

    private mutating func byte(_ what: String) throws -> Int { Int(try take(1, what)[0]) }

    private mutating func uint(_ count: Int, _ what: String) throws -> Int {
        let raw = try take(count, what)
        var value: UInt64 = 0
        for index in stride(from: count - 1, through: 0, by: -1) { value = value << 8 | UInt64(raw[index]) }
        guard let result = Int(exactly: value) else { throw failure("\(what) \(value) out of range") }
        return result
    }

    private mutating func int32() throws -> Int {
        Int(Int32(truncatingIfNeeded: UInt32(try uint(4, "BININT"))))
    }

    /// A line ending in "\n" (GLOBAL / INST operands), at most 256 bytes.
    private mutating func line(_ what: String) throws -> String {
        let start = position
        while position < bytes.count, bytes[position] != 0x0A {
            position += 1
            guard position - start <= 256 else { throw failure("\(what) line longer than 256 bytes", at: start) }
        }
        guard position < bytes.count else { throw failure("pickle ended inside \(what)", at: start) }
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<position]), as: UTF8.self)
        position += 1
        return text
    }

    private mutating func string(length: Int, _ what: String) throws -> String {
        guard length <= Unpickler.maxStringBytes else {
            throw failure("\(what): string length \(length) exceeds the \(Unpickler.maxStringBytes)-byte limit")
        }
        return String(decoding: try take(length, what), as: UTF8.self)
    }

    // MARK: stack

    private mutating func push(_ value: PickleValue) throws {
        guard stack.count < Unpickler.maxStack else {
            throw failure("pickle stack depth limit (\(Unpickler.maxStack) values) exceeded")
        }
        stack.append(value)
    }

    private mutating func pop(_ what: String) throws -> PickleValue {
        guard let value = stack.popLast(), stack.count >= (marks.last ?? 0) else {
            throw failure("\(what): stack underflow")
        }
        return value
    }

    private mutating func popToMark(_ what: String) throws -> [PickleValue] {
        guard let mark = marks.popLast(), mark <= stack.count else { throw failure("\(what) without MARK") }
        let items = Array(stack[mark...])
        stack.removeSubrange(mark...)
        return items
    }

    private mutating func memoize(_ index: Int) throws {
        guard index >= 0, index < Unpickler.maxMemoIndex else {
            throw failure("memo index \(index) exceeds the limit of \(Unpickler.maxMemoIndex)")
        }
        guard let top = stack.last else { throw failure("memo store with an empty stack") }
        memo[index] = top
    }

    private mutating func recall(_ index: Int) throws {
        guard let value = memo[index] else { throw failure("memo index \(index) was never stored") }
        try push(value)
    }

    // MARK: building

    private mutating func newList() throws -> PickleValue {
        guard lists.count + dicts.count < Unpickler.maxContainers else { throw failure("more than \(Unpickler.maxContainers) lists and dicts") }
        let list = PickleList()
        lists.append(list)
        return .list(list)
    }

    private mutating func newDict() throws -> PickleDict {
        guard lists.count + dicts.count < Unpickler.maxContainers else { throw failure("more than \(Unpickler.maxContainers) lists and dicts") }
        let dict = PickleDict()
        dicts.append(dict)
        return dict
    }

    private func tuple(_ items: [PickleValue]) throws -> PickleValue {
        var depth = 1
        for case .tuple(_, let inner) in items { depth = max(depth, inner + 1) }
        guard depth <= Unpickler.maxTupleDepth else { throw failure("tuples nested deeper than \(Unpickler.maxTupleDepth) (nesting depth limit)") }
        return .tuple(items, depth: depth)
    }

    /// Empties every list and dict this pickle created, then forgets them. Memo tricks can nest lists and
    /// dicts a million levels deep in a few bytes each; letting ARC free such a chain would recurse once
    /// per level and overflow the thread's stack. While the registry still holds every container, emptying
    /// one releases nothing else, so each is freed with no contents. Call after the result has been used.
    mutating func release() {
        stack.removeAll()
        memo.removeAll()
        for list in lists { list.items.removeAll() }
        for dict in dicts { dict.entries.removeAll() }
        lists.removeAll()
        dicts.removeAll()
    }

    private func setItems(_ items: [PickleValue], into target: PickleValue, _ opcode: String) throws {
        guard case .dict(let dict) = target else { throw failure("\(opcode) on a \(target.kind), not a dict") }
        guard items.count % 2 == 0 else { throw failure("\(opcode) with an odd number of items") }
        for pair in stride(from: 0, to: items.count, by: 2) {
            dict.entries.append((items[pair], items[pair + 1]))
        }
    }

    private func append(_ items: [PickleValue], to target: PickleValue, _ opcode: String) throws {
        guard case .list(let list) = target else { throw failure("\(opcode) on a \(target.kind), not a list") }
        list.items += items
    }

    private func integer(_ value: PickleValue, _ what: String) throws -> Int {
        guard case .int(let number) = value else { throw failure("\(what): expected an int, found \(value.kind)") }
        return number
    }

    private func integers(_ value: PickleValue, _ what: String) throws -> [Int] {
        guard case .tuple(let items, _) = value else { throw failure("\(what): expected a tuple, found \(value.kind)") }
        return try items.map { try integer($0, what) }
    }

    /// REDUCE: the only calls allowed are the tensor rebuilders and OrderedDict.
    private mutating func call(_ callable: PickleValue, _ arguments: PickleValue) throws -> PickleValue {
        guard case .global(let function) = callable, case .tuple(let args, _) = arguments else {
            throw failure("REDUCE of a \(callable.kind) with \(arguments.kind) arguments is not allowed")
        }
        switch function {
        case .rebuildTensorV2, .rebuildTensor, .rebuildTensorV3:
            // v2: (storage, storage_offset, size, stride[, requires_grad, backward_hooks[, metadata]])
            // v3: (untyped storage, storage_offset, size, stride, requires_grad, backward_hooks, dtype[, metadata])
            let (minimum, maximum) = function == .rebuildTensor ? (4, 4) : function == .rebuildTensorV2 ? (6, 7) : (7, 8)
            guard args.count >= minimum, args.count <= maximum, case .storage(let storage) = args[0] else {
                throw failure("tensor rebuild call with unexpected arguments (\(args.map(\.kind)))")
            }
            let dtype: DType
            if function == .rebuildTensorV3 {
                switch args[6] {
                case .global(.dtype(let named)): dtype = named
                case .global(.unsupportedTorchType(let name)): throw KinemaError.unsupported("\(path): tensor dtype \(name)")
                default: throw failure("_rebuild_tensor_v3 dtype argument is a \(args[6].kind)")
                }
                if let typed = storage.dtype, typed != dtype {
                    throw failure("tensor of dtype \(dtype.rawValue) over a \(typed.rawValue) storage")
                }
            } else {
                guard let typed = storage.dtype else { throw failure("_rebuild_tensor_v2 over an untyped storage") }
                dtype = typed
            }
            return .tensor(PickleTensor(
                storage: storage, dtype: dtype, offset: try integer(args[1], "tensor storage offset"),
                shape: try integers(args[2], "tensor size"), strides: try integers(args[3], "tensor stride")))
        case .rebuildParameter:
            guard args.count == 3, case .tensor = args[0] else {
                throw failure("_rebuild_parameter with unexpected arguments (\(args.map(\.kind)))")
            }
            return args[0]
        case .orderedDict:
            let dict = try newDict()
            if let pairs = args.first {
                guard args.count == 1, case .list(let list) = pairs else {
                    throw failure("OrderedDict(...) with unexpected arguments")
                }
                for item in list.items {
                    guard case .tuple(let pair, _) = item, pair.count == 2 else { throw failure("OrderedDict item is not a pair") }
                    dict.entries.append((pair[0], pair[1]))
                }
            }
            return .dict(dict)
        case .storageType, .dtype, .unsupportedTorchType:
            throw failure("calling \(function) is not allowed")
        }
    }

    // MARK: the loop

    /// Reads one pickle up to STOP and returns its value. `persistentLoad` resolves BINPERSID ids.
    mutating func load() throws -> PickleValue {
        while true {
            let at = position
            let opcode = try byte("opcode")
            switch opcode {
            case 0x80:  // PROTO
                let version = try byte("PROTO")
                guard version <= 5 else { throw failure("pickle protocol \(version) is not supported", at: at) }
            case 0x95: _ = try take(8, "FRAME")  // frame length: framing does not change the opcode stream
            case 0x2E:  // STOP
                guard stack.count == 1, marks.isEmpty else {
                    throw failure("STOP with \(stack.count) values on the stack (expected exactly 1)", at: at)
                }
                return stack[0]
            case 0x7D: try push(.dict(try newDict()))  // EMPTY_DICT
            case 0x5D: try push(try newList())  // EMPTY_LIST
            case 0x29: try push(try tuple([]))  // EMPTY_TUPLE
            case 0x28:  // MARK
                guard marks.count < Unpickler.maxMarkDepth else {
                    throw failure("MARK nesting depth limit (\(Unpickler.maxMarkDepth)) exceeded", at: at)
                }
                marks.append(stack.count)
            case 0x71: try memoize(try byte("BINPUT"))
            case 0x72: try memoize(try uint(4, "LONG_BINPUT"))
            case 0x94: try memoize(memo.count)  // MEMOIZE
            case 0x68: try recall(try byte("BINGET"))
            case 0x6A: try recall(try uint(4, "LONG_BINGET"))
            case 0x4A: try push(.int(try int32()))  // BININT
            case 0x4B: try push(.int(try byte("BININT1")))
            case 0x4D: try push(.int(try uint(2, "BININT2")))
            case 0x8A:  // LONG1: little-endian two's complement, at most 8 bytes used here
                let count = try byte("LONG1")
                guard count <= 8 else { throw failure("LONG1 of \(count) bytes is out of range", at: at) }
                let raw = try take(count, "LONG1")
                var value: UInt64 = 0
                for index in stride(from: count - 1, through: 0, by: -1) { value = value << 8 | UInt64(raw[index]) }
                if count > 0, count < 8, raw[count - 1] & 0x80 != 0 { value |= ~0 << UInt64(count * 8) }
                try push(.int(Int(Int64(bitPattern: value))))
            case 0x58: try push(.string(try string(length: try uint(4, "BINUNICODE"), "BINUNICODE")))
            case 0x8C: try push(.string(try string(length: try byte("SHORT_BINUNICODE"), "SHORT_BINUNICODE")))
            case 0x8D: try push(.string(try string(length: try uint(8, "BINUNICODE8"), "BINUNICODE8")))
            case 0x54:  // BINSTRING (protocol 1/2 str)
                let length = try uint(4, "BINSTRING")
                try push(.string(try string(length: length, "BINSTRING")))
            case 0x55: try push(.string(try string(length: try byte("SHORT_BINSTRING"), "SHORT_BINSTRING")))
            case 0x43, 0x42:  // SHORT_BINBYTES, BINBYTES
                let length = opcode == 0x43 ? try byte("SHORT_BINBYTES") : try uint(4, "BINBYTES")
                guard length <= Unpickler.maxStringBytes else {
                    throw failure("bytes string length \(length) exceeds the \(Unpickler.maxStringBytes)-byte limit", at: at)
                }
                _ = try take(length, "BINBYTES")
                try push(.bytes(length))
            case 0x47:  // BINFLOAT: big-endian double
                let raw = try take(8, "BINFLOAT")
                var bits: UInt64 = 0
                for index in 0..<8 { bits = bits << 8 | UInt64(raw[index]) }
                try push(.float(Double(bitPattern: bits)))
            case 0x88: try push(.bool(true))  // NEWTRUE
            case 0x89: try push(.bool(false))  // NEWFALSE
            case 0x4E: try push(.none)  // NONE
            case 0x85, 0x86, 0x87:  // TUPLE1/2/3
                let count = opcode - 0x84
                var items: [PickleValue] = []
                for _ in 0..<count { items.insert(try pop("TUPLE\(count)"), at: 0) }
                try push(try tuple(items))
            case 0x74:  // TUPLE
                let items = try popToMark("TUPLE")
                guard items.count <= Unpickler.maxTupleItems else { throw failure("tuple of \(items.count) items", at: at) }
                try push(try tuple(items))
            case 0x73:  // SETITEM
                let value = try pop("SETITEM")
                let key = try pop("SETITEM")
                guard let target = stack.last else { throw failure("SETITEM without a dict", at: at) }
                try setItems([key, value], into: target, "SETITEM")
            case 0x75:  // SETITEMS
                let items = try popToMark("SETITEMS")
                guard let target = stack.last else { throw failure("SETITEMS without a dict", at: at) }
                try setItems(items, into: target, "SETITEMS")
            case 0x61:  // APPEND
                let value = try pop("APPEND")
                guard let target = stack.last else { throw failure("APPEND without a list", at: at) }
                try append([value], to: target, "APPEND")
            case 0x65:  // APPENDS
                let items = try popToMark("APPENDS")
                guard let target = stack.last else { throw failure("APPENDS without a list", at: at) }
                try append(items, to: target, "APPENDS")
            case 0x30: _ = try pop("POP")
            case 0x31: _ = try popToMark("POP_MARK")
            case 0x32:  // DUP
                guard let top = stack.last else { throw failure("DUP on an empty stack", at: at) }
                try push(top)
            case 0x63:  // GLOBAL "module\nname\n"
                let module = try line("GLOBAL module")
                let name = try line("GLOBAL name")
                try push(.global(try allowed(module: module, name: name, at: at)))
            case 0x93:  // STACK_GLOBAL
                let nameValue = try pop("STACK_GLOBAL")
                let moduleValue = try pop("STACK_GLOBAL")
                guard case .string(let name) = nameValue, case .string(let module) = moduleValue else {
                    throw failure("STACK_GLOBAL operands are not strings", at: at)
                }
                try push(.global(try allowed(module: module, name: name, at: at)))
            case 0x52:  // REDUCE
                let arguments = try pop("REDUCE")
                let callable = try pop("REDUCE")
                try push(try call(callable, arguments))
            case 0x62:  // BUILD: torch only sets empty or None state on the objects it rebuilds
                let state = try pop("BUILD")
                guard stack.last != nil else { throw failure("BUILD without an object", at: at) }
                switch state {
                case .none: break
                case .dict(let dict) where dict.entries.isEmpty: break
                case .tuple(let items, _) where items.allSatisfy({ if case .none = $0 { return true }; if case .dict(let d) = $0 { return d.entries.isEmpty }; return false }): break
                default: throw failure("BUILD with a non-empty \(state.kind) state is not allowed", at: at)
                }
            case 0x51:  // BINPERSID
                try push(try persistentLoad(try pop("BINPERSID"), at: at))
            case 0x69, 0x6F, 0x81, 0x92, 0x50:
                let names: [Int: String] = [0x69: "INST", 0x6F: "OBJ", 0x81: "NEWOBJ", 0x92: "NEWOBJ_EX", 0x50: "PERSID"]
                throw failure(
                    "pickle opcode \(names[opcode] ?? "?") (0x\(String(opcode, radix: 16))) builds arbitrary objects and is not allowed in a tensor checkpoint",
                    at: at)
            default:
                throw failure("unknown or unsupported pickle opcode 0x\(String(opcode, radix: 16))", at: at)
            }
        }
    }

    private func allowed(module: String, name: String, at: Int) throws -> PickleGlobal {
        guard let global = PickleGlobal.resolve(module: module, name: name) else {
            throw failure(
                "refusing global '\(module).\(name)': a tensor checkpoint may only name torch's tensor-rebuilding functions, "
                    + "storage types and collections.OrderedDict (nothing in this file was executed)", at: at)
        }
        return global
    }

    /// ('storage', <torch.XStorage>, key, location, numel) → a storage reference.
    private func persistentLoad(_ id: PickleValue, at: Int) throws -> PickleValue {
        guard case .tuple(let parts, _) = id, parts.count == 5, case .string("storage") = parts[0] else {
            throw failure("persistent id is not a ('storage', type, key, location, numel) tuple", at: at)
        }
        let dtype: DType?
        switch parts[1] {
        case .global(.storageType(let named)): dtype = named
        case .global(.unsupportedTorchType(let name)): throw KinemaError.unsupported("\(path): storage type \(name)")
        default: throw failure("persistent id names a \(parts[1].kind), not a torch storage type", at: at)
        }
        guard case .string(let key) = parts[2] else { throw failure("storage key is not a string", at: at) }
        let numel = try integer(parts[4], "storage element count")
        guard numel >= 0 else { throw failure("storage \(key) has a negative element count \(numel)", at: at) }
        return .storage(PickleStorage(key: key, dtype: dtype, numel: numel))
    }
}
