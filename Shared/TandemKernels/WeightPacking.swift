/// Row-interleaved ("packed") layouts of Q4_K, Q6_K, Q5_0 and Q8_0 weights for `MatMul`.
///
/// Why: in ggml's layout every 32-bit lane of an AVX2 dot product holds partial sums of *one*
/// row along its columns, so each `maddubs` needs its own `madd` (scale and widen) and every row
/// ends with a horizontal sum. This CPU runs both on the same two multiply pipes, so half of
/// their work went to widening rather than products. Packing 8 rows so that each
/// 32-bit lane is a different row, holding 4 consecutive columns, lets a 32-byte weight vector
/// meet a broadcast of 4 activation bytes: up to 8 `maddubs` results of one sub-block add up in
/// int16 before a single `madd` applies the 8 rows' scales, and results come out as 8 adjacent
/// rows with no horizontal sum. Same idea as llama.cpp's CPU "repack" buffers.
///
/// Packing happens once at load time; the packed copy has the same size as the original
/// (Q4_K: +2.8 %), so a loaded model does not grow. A group of 8 rows holds, per block of
/// columns (256 for K-quants, 32 otherwise), `groupBlockBytes(type)` bytes:
///
/// - Q4_K (1184): `d[8]`, `dmin[8]` (f16); `scale[s][r]` (u8, 8 sub-blocks of 32);
///   `(min[2j][r], min[2j+1][r])` (u8 pairs, j < 4); then per sub-block `s` four 32-byte
///   chunks `c`: byte `4r+i` = column `32s+4c+i` in the low nibble, `32s+16+4c+i` in the high.
/// - Q6_K (1680): `d[8]` (f16); `scale[s][r]` (i8, 16 sub-blocks of 16); low nibbles per pair of
///   sub-blocks `p`: chunk `c` byte `4r+i` = column `32p+4c+i` low, `32p+16+4c+i` high; then
///   per sub-block `s` 32 bytes of high bit pairs: byte `4r+i`, bits `2c..2c+1` = column `16s+4c+i`.
/// - Q5_0 (176): `d[8]` (f16); 32 bytes of fifth bits: byte `4r+i` bit `v` = column `4v+i`;
///   four nibble chunks `c`: byte `4r+i` = column `4c+i` low, `16+4c+i` high.
/// - Q8_0 (272): `d[8]` (f16); eight 32-byte vectors `v`: byte `4r+i` = column `4v+i`.
///
/// Column values are stored as ggml quantizes them (Q4_K 0...15, Q6_K 0...63, Q5_0 0...31,
/// Q8_0 signed), so packed and unpacked kernels compute the same integer dot products.
public enum WeightPacking {
    /// Rows per packed group.
    public static let groupRows = 8

    /// Whether the engine should pack a `type` matrix with `rows` rows: the layout exists for it
    /// and this build's kernels read packed copies. The portable kernels (`MatMulKernels`) read
    /// ggml's layout, so in a portable build nothing is packed (packing would only cost load time).
    public static func canPack(_ type: GGMLType, rows: Int) -> Bool {
        MatMulKernels.selected == .x86AVX2 && hasLayout(type, rows: rows)
    }

    /// Whether the packed layout exists for a `type` matrix with `rows` rows (whatever the kernels).
    public static func hasLayout(_ type: GGMLType, rows: Int) -> Bool {
        rows > 0 && rows % groupRows == 0 && groupBlockBytes(type) > 0
    }

    /// Bytes of one block of columns for one group of 8 rows (0 for unpackable types).
    public static func groupBlockBytes(_ type: GGMLType) -> Int {
        switch type {
        case .q4_K: return 1184
        case .q6_K: return 1680
        case .q5_0: return 176
        case .q8_0: return 272
        default: return 0
        }
    }

    /// Bytes of the packed copy of `w`.
    public static func packedByteCount(_ w: WeightMatrix) -> Int {
        (w.rows / groupRows) * (w.cols / w.type.blockSize) * groupBlockBytes(w.type)
    }

    /// Writes the packed copy of `w` (which must satisfy `canPack`) to `dst`
    /// (`packedByteCount(w)` bytes). Groups `groups` only, so large matrices can be packed by
    /// several threads.
    public static func pack(_ w: WeightMatrix, into dst: UnsafeMutableRawPointer, groups: Range<Int>? = nil) {
        precondition(hasLayout(w.type, rows: w.rows), "WeightPacking: cannot pack \(w.type.name) with \(w.rows) rows")
        let nb = w.cols / w.type.blockSize
        let gb = groupBlockBytes(w.type)
        let groupCount = w.rows / groupRows
        let range = groups ?? 0..<groupCount
        // Unpacked integer columns of the 8 rows of one block, reused across blocks.
        let q = UnsafeMutablePointer<Int16>.allocate(capacity: groupRows * 256)
        defer { q.deallocate() }
        for g in range {
            for b in 0..<nb {
                let out = dst + (g * nb + b) * gb
                let src = { (r: Int) in w.row(g * groupRows + r) + b * w.type.bytesPerBlock }
                switch w.type {
                case .q4_K: packQ4K(src, q, out)
                case .q6_K: packQ6K(src, q, out)
                case .q5_0: packQ5_0(src, q, out)
                case .q8_0: packQ8_0(src, out)
                default: preconditionFailure("unreachable")
                }
            }
        }
    }

    @inline(__always)
    static func u8(_ p: UnsafeRawPointer, _ i: Int) -> UInt8 { p.load(fromByteOffset: i, as: UInt8.self) }

    @inline(__always)
    static func copyHalf(_ src: UnsafeRawPointer, _ dst: UnsafeMutableRawPointer) {
        dst.storeBytes(of: src.loadUnaligned(as: UInt16.self), as: UInt16.self)
    }

    /// Packs `q[r * 256 + column]` nibble pairs: chunk `c` of `count / 32` 32-column runs.
    @inline(__always)
    static func packNibbles(_ q: UnsafePointer<Int16>, stride: Int, base: Int, _ out: UnsafeMutableRawPointer) {
        for c in 0..<4 {
            for r in 0..<8 {
                for i in 0..<4 {
                    let lo = UInt8(truncatingIfNeeded: q[r * stride + base + 4 * c + i]) & 0x0F
                    let hi = UInt8(truncatingIfNeeded: q[r * stride + base + 16 + 4 * c + i]) & 0x0F
                    out.storeBytes(of: lo | (hi << 4), toByteOffset: 32 * c + 4 * r + i, as: UInt8.self)
                }
            }
        }
    }

    static func packQ4K(_ src: (Int) -> UnsafeRawPointer, _ q: UnsafeMutablePointer<Int16>,
                        _ out: UnsafeMutableRawPointer) {
        for r in 0..<8 {
            let blk = src(r)
            copyHalf(blk, out + 2 * r)
            copyHalf(blk + 2, out + 16 + 2 * r)
            for s in 0..<8 {
                let (sc, mn) = scaleMinK4(blk + 4, s)
                out.storeBytes(of: sc, toByteOffset: 32 + 8 * s + r, as: UInt8.self)
                out.storeBytes(of: mn, toByteOffset: 96 + 16 * (s / 2) + 2 * r + (s & 1), as: UInt8.self)
            }
            for j in 0..<4 {
                for l in 0..<32 {
                    let byte = u8(blk, 16 + 32 * j + l)
                    q[r * 256 + 64 * j + l] = Int16(byte & 0x0F)
                    q[r * 256 + 64 * j + 32 + l] = Int16(byte >> 4)
                }
            }
        }
        for s in 0..<8 { packNibbles(q, stride: 256, base: 32 * s, out + 160 + 128 * s) }
    }

    /// Scale and min of sub-block `s` of a Q4_K/Q5_K block (ggml's `get_scale_min_k4`).
    @inline(__always)
    static func scaleMinK4(_ scales: UnsafeRawPointer, _ s: Int) -> (UInt8, UInt8) {
        if s < 4 {
            return (u8(scales, s) & 63, u8(scales, s + 4) & 63)
        }
        let sc = (u8(scales, s + 4) & 0x0F) | ((u8(scales, s - 4) >> 6) << 4)
        let mn = (u8(scales, s + 4) >> 4) | ((u8(scales, s) >> 6) << 4)
        return (sc, mn)
    }

    static func packQ6K(_ src: (Int) -> UnsafeRawPointer, _ q: UnsafeMutablePointer<Int16>,
                        _ out: UnsafeMutableRawPointer) {
        for r in 0..<8 {
            let blk = src(r)
            copyHalf(blk + 208, out + 2 * r)
            for s in 0..<16 {
                out.storeBytes(of: u8(blk, 192 + s), toByteOffset: 16 + 8 * s + r, as: UInt8.self)
            }
            for n in 0..<2 {
                for l in 0..<32 {
                    let ql0 = u8(blk, 64 * n + l), ql1 = u8(blk, 64 * n + 32 + l), qh = u8(blk, 128 + 32 * n + l)
                    let base = r * 256 + 128 * n + l
                    q[base] = Int16((ql0 & 0x0F) | ((qh & 3) << 4))
                    q[base + 32] = Int16((ql1 & 0x0F) | (((qh >> 2) & 3) << 4))
                    q[base + 64] = Int16((ql0 >> 4) | (((qh >> 4) & 3) << 4))
                    q[base + 96] = Int16((ql1 >> 4) | (((qh >> 6) & 3) << 4))
                }
            }
        }
        for p in 0..<8 { packNibbles(q, stride: 256, base: 32 * p, out + 144 + 128 * p) }
        for s in 0..<16 {
            for r in 0..<8 {
                for i in 0..<4 {
                    var bits: UInt8 = 0
                    for c in 0..<4 {
                        bits |= (UInt8(truncatingIfNeeded: q[r * 256 + 16 * s + 4 * c + i] >> 4) & 3) << (2 * c)
                    }
                    out.storeBytes(of: bits, toByteOffset: 1168 + 32 * s + 4 * r + i, as: UInt8.self)
                }
            }
        }
    }

    static func packQ5_0(_ src: (Int) -> UnsafeRawPointer, _ q: UnsafeMutablePointer<Int16>,
                         _ out: UnsafeMutableRawPointer) {
        for r in 0..<8 {
            let blk = src(r)
            copyHalf(blk, out + 2 * r)
            let qh = blk.loadUnaligned(fromByteOffset: 2, as: UInt32.self)
            for j in 0..<16 {
                let byte = u8(blk, 6 + j)
                q[r * 32 + j] = Int16(byte & 0x0F) | Int16((qh >> UInt32(j)) & 1) << 4
                q[r * 32 + j + 16] = Int16(byte >> 4) | Int16((qh >> UInt32(j + 16)) & 1) << 4
            }
        }
        for r in 0..<8 {
            for i in 0..<4 {
                var bits: UInt8 = 0
                for v in 0..<8 { bits |= UInt8(truncatingIfNeeded: (q[r * 32 + 4 * v + i] >> 4) & 1) << v }
                out.storeBytes(of: bits, toByteOffset: 16 + 4 * r + i, as: UInt8.self)
            }
        }
        packNibbles(q, stride: 32, base: 0, out + 48)
    }

    static func packQ8_0(_ src: (Int) -> UnsafeRawPointer, _ out: UnsafeMutableRawPointer) {
        for r in 0..<8 {
            let blk = src(r)
            copyHalf(blk, out + 2 * r)
            for v in 0..<8 {
                for i in 0..<4 {
                    out.storeBytes(of: u8(blk, 2 + 4 * v + i), toByteOffset: 16 + 32 * v + 4 * r + i, as: UInt8.self)
                }
            }
        }
    }
}
