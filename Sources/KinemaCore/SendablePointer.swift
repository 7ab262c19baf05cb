// A raw pointer handed to closures that run concurrently (DispatchQueue.concurrentPerform) and write disjoint
// parts of one buffer. The caller keeps the buffer alive and guarantees the parts do not overlap.
public struct SendablePointer<Element>: @unchecked Sendable {
    public let pointer: UnsafeMutablePointer<Element>
    public init(_ pointer: UnsafeMutablePointer<Element>) { self.pointer = pointer }
}
