// ttfuse Tensix emulator: the compute API (TRISC) with numerics.
//
// The three TRISCs run as one thread that performs each call's unpack, math and pack work in program
// order; the DST protocol (acquire -> commit -> wait -> release) is checked as a state machine, so a
// kernel that breaks it fails here even though no second thread is racing it.
//
// Numerics and where they can differ from silicon:
//  * tiles are 32x32 in four 16x16 faces; unpack reads a CB tile in the CB's data format into srcA/srcB.
//    Float32 operands entering srcA/srcB keep 10 mantissa bits (TF32, round to nearest even), as the
//    unpacker does; Float16_b is exact.
//  * DST holds fp32 when fp32_dest_acc_en, else every value written to DST is rounded to bf16
//    (round to nearest even). Matmul sums a 32-term dot product in fp32 before it meets DST; with a bf16
//    DST that partial is rounded to bf16 and then added (silicon splits K=32 into face passes; how it
//    rounds between them is not public, so the emulator and the goldens use this one model).
//  * math fidelity phases are not modelled: every multiply is exact in fp32 (HiFi4 behaviour). A LoFi
//    kernel is more accurate here than on silicon.
//  * SFPU ops are computed in fp32 libm arithmetic (rsqrt, exp for silu / sigmoid); silicon's polynomial
//    approximations and approx mode differ in the last bits. Denormals are kept (silicon flushes them).
//  * pack rounds to the CB's format (bf16: nearest even). Bfp8_b / Bfp4_b are not modelled yet: a kernel
//    that unpacks or packs them stops with a clear error.
#pragma once

#include "emu/dataflow.hpp"

enum class SrcOrder : uint8_t { Regular = 0, Reverse = 1 };
enum class EltwiseBinaryReuseDestType : uint8_t { NONE = 0, DEST_TO_SRCA = 1, DEST_TO_SRCB = 2 };
enum class RsqrtMode : uint8_t { Default = 0 };

#ifndef DST_ACCUM_MODE
#define DST_ACCUM_MODE false
#endif

namespace emu {

using Tile = float[kTileElems];  // row-major 32x32

enum Fpu : int { FpuNone, FpuMatmul, FpuMul, FpuAdd, FpuSub, FpuMulBcastRows, FpuMulReuseA, FpuMulReuseB,
                 FpuAddReuseA, FpuCopy };
enum Sfpu : int { SfpuNone, SfpuRsqrt, SfpuSilu, SfpuSigmoid, SfpuRelu, SfpuBinopScalar };
inline const char* fpu_name(int f) {
    static const char* n[] = {"none", "matmul_init", "mul_init", "add_init", "sub_init", "mul_bcast_rows_init",
                              "mul_reuse_dest_init<DEST_TO_SRCA>", "mul_reuse_dest_init<DEST_TO_SRCB>",
                              "add_reuse_dest_init<DEST_TO_SRCA>", "copy_tile_init"};
    return n[f];
}
inline const char* sfpu_name(int f) {
    static const char* n[] = {"none", "rsqrt_tile_init", "silu_tile_init", "sigmoid_tile_init", "relu_tile_init",
                              "binop_with_scalar_tile_init"};
    return n[f];
}

struct ComputeState {
    bool started = false;
    uint8_t srca = NoFmt, srcb = NoFmt, pack = NoFmt;
    int fpu = FpuNone, sfpu = SfpuNone;
    bool transpose = false, acc_to_dest = false;
    uint32_t mm_in0 = 0, mm_in1 = 0, mm_ct = 1, mm_rt = 1, mm_kt = 1;  // what matmul(_block)_init configured
    // DST: one section (full sync) or two halves (half sync); math owns one, the packer one
    std::vector<float> dst[2];
    int math_half = -1, pack_half = -1, next_half = 0;
    std::vector<int> committed;
};

inline float bits_f(uint32_t b) { float f; std::memcpy(&f, &b, 4); return f; }
inline uint32_t f_bits(float f) { uint32_t b; std::memcpy(&b, &f, 4); return b; }
inline float round_mantissa(float v, int keep) {   // round to nearest even, keeping `keep` mantissa bits
    if (std::isnan(v) || std::isinf(v)) return v;
    const uint32_t b = f_bits(v), drop = 23 - keep;
    const uint32_t half = 1u << (drop - 1), lsb = (b >> drop) & 1u;
    return bits_f(((b + half - 1 + lsb) >> drop) << drop);
}
inline float bf16(float v) { return round_mantissa(v, 7); }

inline ComputeState& C() { return *T->compute; }

inline uint32_t dst_capacity() {
    const uint32_t full = T->fp32_dest ? 8 : 16;
    return T->full_sync ? full : full / 2;
}

inline float* dst_tile(uint32_t i, const char* what) {
    ComputeState& c = C();
    if (c.math_half < 0) fail("%s: DST is not acquired by math (missing tile_regs_acquire)", what);
    if (i >= dst_capacity())
        fail("%s: DST tile %u but only %u fit (%s, %s)", what, i, dst_capacity(),
             T->fp32_dest ? "fp32 accumulation" : "bf16 DST", T->full_sync ? "full sync" : "half sync");
    return c.dst[c.math_half].data() + size_t(i) * kTileElems;
}

inline float store(float v) { return T->fp32_dest ? v : bf16(v); }

inline void need_started(const char* what) {
    if (!C().started) fail("%s before compute_kernel_hw_startup", what);
}
inline void need_fpu(int want, const char* what) {
    need_started(what);
    if (C().fpu != want)
        fail("%s needs %s first, but the math / unpack engines are configured by %s (missing init)", what,
             fpu_name(want), fpu_name(C().fpu));
}
inline void need_sfpu(int want, const char* what) {
    need_started(what);
    if (C().sfpu != want)
        fail("%s needs %s first, but the SFPU is configured by %s (missing init)", what, sfpu_name(want),
             sfpu_name(C().sfpu));
}

// tile `idx` from the front of CB `id`, as the unpacker loads it into a source register of format `reg`
inline void unpack(int32_t id, uint32_t idx, uint8_t reg, const char* regname, const char* what, float* out) {
    CB& cb = cb_of(id, what);
    const LocalCB& me = T->cb[id];
    if (idx >= me.waited)
        fail("%s reads tile %u of cb %d, but cb_wait_front made only %u tiles safe to read (%u are there now)", what,
             idx, id, me.waited, cb.received - cb.acked);
    if (me.rd + idx >= cb.num_pages) fail("%s reads tile %u of cb %d past the CB end", what, idx, id);
    if (reg != cb.fmt)
        fail("%s: %s is configured for %s but cb %d holds %s (missing reconfig_data_format%s)", what, regname,
             fmt_name(reg), id, fmt_name(cb.fmt), regname[3] == 'A' ? "_srca" : "_srcb");
    const uint8_t* p = reinterpret_cast<const uint8_t*>(uintptr_t(cb.base)) + size_t(me.rd + idx) * cb.page_size;
    for (int r = 0; r < 32; ++r) {
        for (int col = 0; col < 32; ++col) {
            const int e = ((r / 16) * 2 + col / 16) * 256 + (r % 16) * 16 + col % 16;
            float v;
            if (cb.fmt == Float16_b) {
                uint16_t h;
                std::memcpy(&h, p + 2 * e, 2);
                v = bits_f(uint32_t(h) << 16);
            } else if (cb.fmt == Float32) {
                std::memcpy(&v, p + 4 * e, 4);
                v = round_mantissa(v, 10);  // TF32 in srcA / srcB
            } else {
                fail("%s: cb %d data format %s is not modelled by the emulator", what, id, fmt_name(cb.fmt));
            }
            out[r * 32 + col] = v;
        }
    }
}

}  // namespace emu

// ---- start-up and data formats -----------------------------------------------------------------------------
template <SrcOrder order = SrcOrder::Regular>
inline void compute_kernel_hw_startup(uint32_t icb0, uint32_t icb1, uint32_t ocb) {
    std::unique_lock<std::mutex> lk(emu::M->mu);
    emu::ComputeState& c = emu::C();
    const uint8_t f0 = emu::cb_of(icb0, "compute_kernel_hw_startup").fmt, f1 = emu::cb_of(icb1, "compute_kernel_hw_startup").fmt;
    c.srca = order == SrcOrder::Reverse ? f1 : f0;
    c.srcb = order == SrcOrder::Reverse ? f0 : f1;
    c.pack = emu::cb_of(ocb, "compute_kernel_hw_startup").fmt;
    c.started = true;
}
inline void compute_kernel_hw_startup(uint32_t icb0, uint32_t ocb) { compute_kernel_hw_startup(icb0, icb0, ocb); }

template <SrcOrder order = SrcOrder::Regular>
inline void reconfig_data_format(uint32_t icb0, uint32_t icb1) {
    std::unique_lock<std::mutex> lk(emu::M->mu);
    emu::need_started("reconfig_data_format");
    const uint8_t f0 = emu::cb_of(icb0, "reconfig_data_format").fmt, f1 = emu::cb_of(icb1, "reconfig_data_format").fmt;
    emu::C().srca = order == SrcOrder::Reverse ? f1 : f0;
    emu::C().srcb = order == SrcOrder::Reverse ? f0 : f1;
}
template <SrcOrder order = SrcOrder::Regular>
inline void reconfig_data_format(uint32_t, uint32_t icb0, uint32_t, uint32_t icb1) {
    reconfig_data_format<order>(icb0, icb1);
}
inline void reconfig_data_format_srca(uint32_t icb) {
    std::unique_lock<std::mutex> lk(emu::M->mu);
    emu::need_started("reconfig_data_format_srca");
    emu::C().srca = emu::cb_of(icb, "reconfig_data_format_srca").fmt;
}
inline void reconfig_data_format_srca(uint32_t, uint32_t icb) { reconfig_data_format_srca(icb); }
inline void reconfig_data_format_srcb(uint32_t icb) {
    std::unique_lock<std::mutex> lk(emu::M->mu);
    emu::need_started("reconfig_data_format_srcb");
    emu::C().srcb = emu::cb_of(icb, "reconfig_data_format_srcb").fmt;
}
inline void reconfig_data_format_srcb(uint32_t, uint32_t icb) { reconfig_data_format_srcb(icb); }
inline void pack_reconfig_data_format(uint32_t ocb) {
    std::unique_lock<std::mutex> lk(emu::M->mu);
    emu::need_started("pack_reconfig_data_format");
    emu::C().pack = emu::cb_of(ocb, "pack_reconfig_data_format").fmt;
}
inline void pack_reconfig_data_format(uint32_t, uint32_t ocb) { pack_reconfig_data_format(ocb); }

// ---- DST protocol -----------------------------------------------------------------------------------------
inline void tile_regs_acquire() {
    std::unique_lock<std::mutex> lk(emu::M->mu);
    emu::ComputeState& c = emu::C();
    emu::need_started("tile_regs_acquire");
    if (c.math_half >= 0) emu::fail("tile_regs_acquire twice without tile_regs_commit");
    const int halves = emu::T->full_sync ? 1 : 2;
    const int busy = int(c.committed.size()) + (c.pack_half >= 0 ? 1 : 0);
    if (busy >= halves)
        emu::fail("tile_regs_acquire: every DST section is still held by the packer (missing tile_regs_wait / "
                  "tile_regs_release); math would wait forever");
    c.math_half = c.next_half;
    c.next_half = (c.next_half + 1) % halves;
}
// the older single-call API: acquire_dst is math's acquire plus the packer's wait, release_dst math's commit
// plus the packer's release; in program order on one thread the packer then packs from math's section
inline void acquire_dst() {
    tile_regs_acquire();
    std::unique_lock<std::mutex> lk(emu::M->mu);
    emu::ComputeState& c = emu::C();
    if (c.pack_half >= 0) emu::fail("acquire_dst while the packer still holds DST (missing release_dst)");
    c.pack_half = c.math_half;  // both sides hold the same section until release_dst
}
template <bool = DST_ACCUM_MODE>
inline void tile_regs_commit() {
    std::unique_lock<std::mutex> lk(emu::M->mu);
    emu::ComputeState& c = emu::C();
    if (c.math_half < 0) emu::fail("tile_regs_commit without tile_regs_acquire");
    c.committed.push_back(c.math_half);
    c.math_half = -1;
}
inline void tile_regs_wait() {
    std::unique_lock<std::mutex> lk(emu::M->mu);
    emu::ComputeState& c = emu::C();
    if (c.pack_half >= 0) emu::fail("tile_regs_wait twice without tile_regs_release");
    if (c.committed.empty())
        emu::fail("tile_regs_wait: math has committed nothing (missing tile_regs_commit); the packer would wait forever");
    c.pack_half = c.committed.front();
    c.committed.erase(c.committed.begin());
}
template <bool = DST_ACCUM_MODE>
inline void tile_regs_release() {
    std::unique_lock<std::mutex> lk(emu::M->mu);
    emu::ComputeState& c = emu::C();
    if (c.pack_half < 0) emu::fail("tile_regs_release without tile_regs_wait");
    std::fill(c.dst[c.pack_half].begin(), c.dst[c.pack_half].end(), 0.0f);  // the packer clears what it packed
    c.pack_half = -1;
}
template <bool = DST_ACCUM_MODE>
inline void release_dst() {
    {
        std::unique_lock<std::mutex> lk(emu::M->mu);
        emu::ComputeState& c = emu::C();
        if (c.math_half < 0 || c.pack_half != c.math_half) emu::fail("release_dst without acquire_dst");
        c.pack_half = -1;
    }
    tile_regs_commit();
    tile_regs_wait();
    tile_regs_release();
}

template <bool out_of_order = false, bool = DST_ACCUM_MODE>
inline void pack_tile(uint32_t from, uint32_t ocb, uint32_t out_index = 0) {
    std::unique_lock<std::mutex> lk(emu::M->mu);
    emu::ComputeState& c = emu::C();
    if (c.pack_half < 0) emu::fail("pack_tile: the packer does not hold DST (missing tile_regs_wait)");
    if (from >= emu::dst_capacity()) emu::fail("pack_tile: DST tile %u but only %u fit", from, emu::dst_capacity());
    emu::CB& cb = emu::cb_of(ocb, "pack_tile");
    emu::LocalCB& me = emu::T->cb[ocb];
    if (c.pack != cb.fmt)
        emu::fail("pack_tile: the packer is configured for %s but cb %u holds %s (missing pack_reconfig_data_format)",
                  emu::fmt_name(c.pack), ocb, emu::fmt_name(cb.fmt));
    const uint32_t slot = out_of_order ? out_index : me.packed;
    if (slot >= me.reserved || me.wr + slot >= cb.num_pages)
        emu::fail("pack_tile into cb %u slot %u: cb_reserve_back reserved %u pages (missing or short reservation)", ocb,
                  slot, me.reserved);
    if (!out_of_order) me.packed += 1;
    const float* src = c.dst[c.pack_half].data() + size_t(from) * emu::kTileElems;
    uint8_t* p = reinterpret_cast<uint8_t*>(uintptr_t(cb.base)) + size_t(me.wr + slot) * cb.page_size;
    for (int r = 0; r < 32; ++r) {
        for (int col = 0; col < 32; ++col) {
            const int e = ((r / 16) * 2 + col / 16) * 256 + (r % 16) * 16 + col % 16;
            const float v = src[r * 32 + col];
            if (cb.fmt == emu::Float16_b) {
                const uint16_t h = uint16_t(emu::f_bits(emu::bf16(v)) >> 16);
                std::memcpy(p + 2 * e, &h, 2);
            } else if (cb.fmt == emu::Float32) {
                std::memcpy(p + 4 * e, &v, 4);
            } else {
                emu::fail("pack_tile: cb %u data format %s is not modelled by the emulator", ocb, emu::fmt_name(cb.fmt));
            }
        }
    }
}

// ---- matmul -------------------------------------------------------------------------------------------------
namespace emu {
inline void matmul_one(uint32_t in0, uint32_t in1, uint32_t i0, uint32_t i1, uint32_t d, const char* what) {
    ComputeState& c = C();
    static thread_local Tile a, b;
    unpack(in0, i0, c.srcb, "srcB", what, a);   // matmul unpacks in0 into srcB and in1 into srcA
    unpack(in1, i1, c.srca, "srcA", what, b);
    float* out = dst_tile(d, what);
    for (int r = 0; r < 32; ++r) {
        for (int col = 0; col < 32; ++col) {
            float s = 0.0f;
            for (int k = 0; k < 32; ++k) s += a[r * 32 + k] * (c.transpose ? b[col * 32 + k] : b[k * 32 + col]);
            // bf16 DST: the FPU's 16-bit result meets DST's 16-bit value (two roundings)
            out[r * 32 + col] = T->fp32_dest ? out[r * 32 + col] + s : bf16(out[r * 32 + col] + bf16(s));
        }
    }
}
}  // namespace emu

namespace emu {
inline void mm_init(uint32_t in0, uint32_t in1, uint32_t transpose, uint32_t ct, uint32_t rt, uint32_t kt,
                    const char* what) {
    need_started(what);
    cb_of(in0, what), cb_of(in1, what);
    ComputeState& c = C();
    c.fpu = FpuMatmul;
    c.transpose = transpose != 0;
    c.mm_in0 = in0, c.mm_in1 = in1, c.mm_ct = ct, c.mm_rt = rt, c.mm_kt = kt;
}
// the unpacker and math engine run the block shape and operands their init programmed
inline void mm_check(uint32_t in0, uint32_t in1, uint32_t ct, uint32_t rt, uint32_t kt, const char* what) {
    const ComputeState& c = C();
    if (in0 != c.mm_in0 || in1 != c.mm_in1 || ct != c.mm_ct || rt != c.mm_rt || kt != c.mm_kt)
        fail("%s(cb %u, cb %u, ct %u, rt %u, kt %u) but the last matmul init configured (cb %u, cb %u, ct %u, rt %u, "
             "kt %u) (missing init)", what, in0, in1, ct, rt, kt, c.mm_in0, c.mm_in1, c.mm_ct, c.mm_rt, c.mm_kt);
}
}  // namespace emu

inline void matmul_init(uint32_t in0, uint32_t in1, uint32_t transpose = 0) {
    std::unique_lock<std::mutex> lk(emu::M->mu);
    emu::mm_init(in0, in1, transpose, 1, 1, 1, "matmul_init");
}
inline void matmul_tiles(uint32_t in0, uint32_t in1, uint32_t i0, uint32_t i1, uint32_t d) {
    std::unique_lock<std::mutex> lk(emu::M->mu);
    emu::need_fpu(emu::FpuMatmul, "matmul_tiles");
    emu::mm_check(in0, in1, 1, 1, 1, "matmul_tiles");
    emu::matmul_one(in0, in1, i0, i1, d, "matmul_tiles");
}
inline void matmul_block_init(uint32_t in0, uint32_t in1, uint32_t transpose = 0, uint32_t ct = 1, uint32_t rt = 1,
                              uint32_t kt = 1) {
    std::unique_lock<std::mutex> lk(emu::M->mu);
    emu::mm_init(in0, in1, transpose, ct, rt, kt, "matmul_block_init");
}
inline void matmul_block(uint32_t in0, uint32_t in1, uint32_t i0, uint32_t i1, uint32_t d, uint32_t transpose,
                         uint32_t ct, uint32_t rt, uint32_t kt) {
    std::unique_lock<std::mutex> lk(emu::M->mu);
    emu::need_fpu(emu::FpuMatmul, "matmul_block");
    if ((transpose != 0) != emu::C().transpose) emu::fail("matmul_block: transpose differs from matmul_block_init's");
    emu::mm_check(in0, in1, ct, rt, kt, "matmul_block");
    for (uint32_t r = 0; r < rt; ++r)
        for (uint32_t c = 0; c < ct; ++c) emu::matmul_one(in0, in1, i0 + r * kt, i1 + c, d + r * ct + c, "matmul_block");
}

// ---- element-wise binary ------------------------------------------------------------------------------------
namespace emu {
inline void binary(int fpu, uint32_t in0, uint32_t in1, uint32_t i0, uint32_t i1, uint32_t d, const char* what) {
    need_fpu(fpu, what);
    static thread_local Tile a, b;
    unpack(in0, i0, C().srca, "srcA", what, a);
    unpack(in1, i1, C().srcb, "srcB", what, b);
    float* out = dst_tile(d, what);
    for (int e = 0; e < kTileElems; ++e) {
        const float bv = fpu == FpuMulBcastRows ? b[e % 32] : b[e];
        float v = fpu == FpuAdd ? a[e] + bv : fpu == FpuSub ? a[e] - bv : a[e] * bv;
        if (C().acc_to_dest) v += out[e];
        out[e] = store(v);
    }
}
inline void binary_init(int fpu, uint32_t in0, uint32_t in1, bool acc, const char* what) {
    need_started(what);
    cb_of(in0, what), cb_of(in1, what);
    C().fpu = fpu;
    C().acc_to_dest = acc;
}
}  // namespace emu

inline void mul_init(uint32_t a, uint32_t b, bool acc_to_dest = true) {
    std::unique_lock<std::mutex> lk(emu::M->mu);
    emu::binary_init(emu::FpuMul, a, b, acc_to_dest, "mul_init");
}
inline void add_init(uint32_t a, uint32_t b, bool acc_to_dest = false) {
    std::unique_lock<std::mutex> lk(emu::M->mu);
    emu::binary_init(emu::FpuAdd, a, b, acc_to_dest, "add_init");
}
inline void sub_init(uint32_t a, uint32_t b, bool acc_to_dest = false) {
    std::unique_lock<std::mutex> lk(emu::M->mu);
    emu::binary_init(emu::FpuSub, a, b, acc_to_dest, "sub_init");
}
inline void mul_bcast_rows_init(uint32_t a, uint32_t b) {
    std::unique_lock<std::mutex> lk(emu::M->mu);
    emu::binary_init(emu::FpuMulBcastRows, a, b, false, "mul_bcast_rows_init");
}
template <bool = DST_ACCUM_MODE>
inline void mul_tiles(uint32_t a, uint32_t b, uint32_t ia, uint32_t ib, uint32_t d) {
    std::unique_lock<std::mutex> lk(emu::M->mu);
    emu::binary(emu::FpuMul, a, b, ia, ib, d, "mul_tiles");
}
template <bool = DST_ACCUM_MODE>
inline void add_tiles(uint32_t a, uint32_t b, uint32_t ia, uint32_t ib, uint32_t d) {
    std::unique_lock<std::mutex> lk(emu::M->mu);
    emu::binary(emu::FpuAdd, a, b, ia, ib, d, "add_tiles");
}
template <bool = DST_ACCUM_MODE>
inline void sub_tiles(uint32_t a, uint32_t b, uint32_t ia, uint32_t ib, uint32_t d) {
    std::unique_lock<std::mutex> lk(emu::M->mu);
    emu::binary(emu::FpuSub, a, b, ia, ib, d, "sub_tiles");
}
template <bool = DST_ACCUM_MODE>
inline void mul_tiles_bcast_rows(uint32_t a, uint32_t b, uint32_t ia, uint32_t ib, uint32_t d, uint32_t row = 0) {
    std::unique_lock<std::mutex> lk(emu::M->mu);
    if (row != 0) emu::fail("mul_tiles_bcast_rows: bcast_row_idx %u is not modelled", row);
    emu::binary(emu::FpuMulBcastRows, a, b, ia, ib, d, "mul_tiles_bcast_rows");
}

template <EltwiseBinaryReuseDestType reuse>
inline void mul_reuse_dest_init(uint32_t icb) {
    std::unique_lock<std::mutex> lk(emu::M->mu);
    emu::need_started("mul_reuse_dest_init");
    emu::cb_of(icb, "mul_reuse_dest_init");
    static_assert(reuse != EltwiseBinaryReuseDestType::NONE, "mul_reuse_dest_init needs DEST_TO_SRCA or DEST_TO_SRCB");
    emu::C().fpu = reuse == EltwiseBinaryReuseDestType::DEST_TO_SRCA ? emu::FpuMulReuseA : emu::FpuMulReuseB;
    emu::C().acc_to_dest = false;
}
template <EltwiseBinaryReuseDestType reuse, bool = DST_ACCUM_MODE>
inline void mul_reuse_dest_tiles(uint32_t icb, uint32_t itile, uint32_t d) {
    std::unique_lock<std::mutex> lk(emu::M->mu);
    const bool to_a = reuse == EltwiseBinaryReuseDestType::DEST_TO_SRCA;
    emu::need_fpu(to_a ? emu::FpuMulReuseA : emu::FpuMulReuseB, "mul_reuse_dest_tiles");
    static thread_local emu::Tile b;
    // the CB tile goes to the source register DST does not feed
    emu::unpack(icb, itile, to_a ? emu::C().srcb : emu::C().srca, to_a ? "srcB" : "srcA", "mul_reuse_dest_tiles", b);
    float* out = emu::dst_tile(d, "mul_reuse_dest_tiles");
    for (int e = 0; e < emu::kTileElems; ++e) out[e] = emu::store(emu::round_mantissa(out[e], 10) * b[e]);
}

// ---- copy -------------------------------------------------------------------------------------------------
inline void copy_tile_init(uint32_t icb) {
    std::unique_lock<std::mutex> lk(emu::M->mu);
    emu::need_started("copy_tile_init");
    emu::cb_of(icb, "copy_tile_init");
    emu::C().fpu = emu::FpuCopy;
}
inline void copy_tile(uint32_t icb, uint32_t itile, uint32_t d) {
    std::unique_lock<std::mutex> lk(emu::M->mu);
    emu::need_fpu(emu::FpuCopy, "copy_tile");
    static thread_local emu::Tile a;
    emu::unpack(icb, itile, emu::C().srca, "srcA", "copy_tile", a);
    float* out = emu::dst_tile(d, "copy_tile");
    for (int e = 0; e < emu::kTileElems; ++e) out[e] = emu::store(a[e]);
}

// ---- SFPU ---------------------------------------------------------------------------------------------------
namespace emu {
template <class F>
inline void sfpu(int want, uint32_t d, const char* what, F f) {
    need_sfpu(want, what);
    float* t = dst_tile(d, what);
    for (int e = 0; e < kTileElems; ++e) t[e] = store(f(t[e]));
}
inline void sfpu_init(int which, const char* what) {
    need_started(what);
    C().sfpu = which;
}
}  // namespace emu

#define EMU_SFPU_INIT(NAME, KIND)                        \
    inline void NAME() {                                 \
        std::unique_lock<std::mutex> lk(emu::M->mu);     \
        emu::sfpu_init(emu::KIND, #NAME);                \
    }
EMU_SFPU_INIT(rsqrt_tile_init, SfpuRsqrt)
EMU_SFPU_INIT(silu_tile_init, SfpuSilu)
EMU_SFPU_INIT(sigmoid_tile_init, SfpuSigmoid)
EMU_SFPU_INIT(relu_tile_init, SfpuRelu)
EMU_SFPU_INIT(binop_with_scalar_tile_init, SfpuBinopScalar)
#undef EMU_SFPU_INIT

template <RsqrtMode = RsqrtMode::Default, bool = DST_ACCUM_MODE>
inline void rsqrt_tile(uint32_t d) {
    std::unique_lock<std::mutex> lk(emu::M->mu);
    emu::sfpu(emu::SfpuRsqrt, d, "rsqrt_tile", [](float x) { return 1.0f / std::sqrt(x); });
}
inline void silu_tile(uint32_t d) {
    std::unique_lock<std::mutex> lk(emu::M->mu);
    emu::sfpu(emu::SfpuSilu, d, "silu_tile", [](float x) { return x / (1.0f + std::exp(-x)); });
}
inline void sigmoid_tile(uint32_t d) {
    std::unique_lock<std::mutex> lk(emu::M->mu);
    emu::sfpu(emu::SfpuSigmoid, d, "sigmoid_tile", [](float x) { return 1.0f / (1.0f + std::exp(-x)); });
}
inline void relu_tile(uint32_t d) {
    std::unique_lock<std::mutex> lk(emu::M->mu);
    emu::sfpu(emu::SfpuRelu, d, "relu_tile", [](float x) { return x > 0.0f ? x : 0.0f; });
}
template <bool = DST_ACCUM_MODE>
inline void mul_unary_tile(uint32_t d, uint32_t bits) {
    std::unique_lock<std::mutex> lk(emu::M->mu);
    const float s = emu::bits_f(bits);
    emu::sfpu(emu::SfpuBinopScalar, d, "mul_unary_tile", [s](float x) { return x * s; });
}
template <bool = DST_ACCUM_MODE>
inline void add_unary_tile(uint32_t d, uint32_t bits) {
    std::unique_lock<std::mutex> lk(emu::M->mu);
    const float s = emu::bits_f(bits);
    emu::sfpu(emu::SfpuBinopScalar, d, "add_unary_tile", [s](float x) { return x + s; });
}
