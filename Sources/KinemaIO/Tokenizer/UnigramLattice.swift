// Unigram segmentation: the best-scoring split of a normalized UTF-8 string into vocabulary pieces.
// Matches the "optimized" Viterbi of both sentencepiece (src/unigram_model.cc EncodeOptimized) and
// tokenizers (models/unigram/model.rs encode_optimized): one forward pass over byte positions that
// visits only character starts; at each start every vocabulary piece that is a prefix of the rest
// competes; if no piece covers exactly the next character, an unknown node spanning that character is
// scored `unkScore`.
//
// Numerical hazard: sentencepiece sums f32 scores, tokenizers f64; the sum order is the same (left to
// right along the path), so each caller instantiates the lattice with its library's type and ties break
// identically (strictly-greater replaces, so the shorter / earlier candidate wins a tie).

/// Byte trie over vocabulary pieces (ids at terminal nodes). Later duplicates of a piece overwrite
/// earlier ones, as a HashMap insert in tokenizers does.
struct PieceTrie: Sendable {
    private var children: [Int: Int32] = [:]
    private var terminal: [Int32] = [-1]

    /// `byteCapacity`: total UTF-8 bytes of the pieces to come (an upper bound on the node count), so a
    /// 256k-piece vocabulary is built without rehashing.
    init(byteCapacity: Int = 0) {
        children.reserveCapacity(byteCapacity)
        terminal.reserveCapacity(byteCapacity + 1)
    }

    mutating func insert(_ text: String, id: Int) {
        var node = 0
        for byte in text.utf8 {
            let key = node << 8 | Int(byte)
            if let child = children[key] {
                node = Int(child)
            } else {
                let child = terminal.count
                terminal.append(-1)
                children[key] = Int32(child)
                node = child
            }
        }
        if node != 0 { terminal[node] = Int32(id) }
    }

    /// Calls `body(length, id)` for every piece that is a prefix of `bytes[start..<end]`, shortest first.
    func forEachPrefix(_ bytes: UnsafeBufferPointer<UInt8>, from start: Int, to end: Int, _ body: (Int, Int) -> Void) {
        var node = 0
        var i = start
        while i < end {
            guard let child = children[node << 8 | Int(bytes[i])] else { return }
            node = Int(child)
            i += 1
            let id = terminal[node]
            if id >= 0 { body(i - start, Int(id)) }
        }
    }
}

/// One segment of the best path: bytes `start..<end` of the normalized string, and its piece id
/// (`nil` for an unknown node).
struct LatticeSegment: Equatable, Sendable {
    var start: Int
    var end: Int
    var id: Int?
}

enum UnigramLattice {
    /// Length in bytes of the UTF-8 character starting with `lead` (sentencepiece OneCharLen: decided by
    /// the lead byte alone, so a stray continuation byte counts as a one-byte character).
    static func charLength(_ lead: UInt8) -> Int {
        switch lead >> 4 {
        case 0xC, 0xD: return 2
        case 0xE: return 3
        case 0xF: return 4
        default: return 1
        }
    }

    /// Best path over `bytes`. `score(id)` returns the piece's score, or nil for pieces that must be
    /// skipped (sentencepiece's UNUSED pieces).
    static func viterbi<S: BinaryFloatingPoint>(_ bytes: UnsafeBufferPointer<UInt8>, trie: PieceTrie, unkScore: S,
                                               score: (Int) -> S?) -> [LatticeSegment] {
        let size = bytes.count
        guard size > 0 else { return [] }
        // best[k]: best path ending at byte k. `from < 0` means unreached.
        var bestScore = [S](repeating: 0, count: size + 1)
        var from = [Int](repeating: -1, count: size + 1)
        var ids = [Int](repeating: -1, count: size + 1)
        var start = 0
        while start < size {
            let here = bestScore[start]
            let charLen = min(charLength(bytes[start]), size - start)
            var coversChar = false
            trie.forEachPrefix(bytes, from: start, to: size) { length, id in
                guard let s = score(id) else { return }
                let end = start + length
                let candidate = s + here
                if from[end] < 0 || candidate > bestScore[end] {
                    bestScore[end] = candidate
                    from[end] = start
                    ids[end] = id
                }
                if length == charLen { coversChar = true }
            }
            if !coversChar {
                let end = start + charLen
                let candidate = unkScore + here
                if from[end] < 0 || candidate > bestScore[end] {
                    bestScore[end] = candidate
                    from[end] = start
                    ids[end] = -1
                }
            }
            start += charLen
        }
        var segments: [LatticeSegment] = []
        var end = size
        // Every character start is reached (an unknown node always spans the next character), so the
        // walk back from `size` terminates at 0.
        while end > 0 {
            let s = from[end]
            guard s >= 0, s < end else { break }
            segments.append(LatticeSegment(start: s, end: end, id: ids[end] >= 0 ? ids[end] : nil))
            end = s
        }
        return segments.reversed()
    }
}
