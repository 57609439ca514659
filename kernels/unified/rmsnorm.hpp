// SPDX-License-Identifier: Apache-2.0
//
// RMSNorm micro-op for decode rows, unified-kernel style (seed 002): one header compiled for every RISC,
// per-RISC compile-time-args structs, an Op class whose body is selected with COMPILE_FOR_*.
//
//   y[r, :] = x[r, :] * gamma * rsqrt(mean(x[r, :]^2) + eps)      r < 32 (one tile row), width = Wt tiles
//
// Layout contract (set up by micro_ops/rmsnorm/op.py):
//   x_cb      Wt tiles (32 x width), already in L1 (sharded tensor) or produced by an earlier op
//   gamma_rm  the gamma row, row-major bf16, `width` elements, L1 shard on this core
//   gamma_cb  ring of gamma tiles; only row 0 of each tile is written (consumed with a row broadcast)
//   const_cb  2 tiles: [identity, all-ones] (bf16), generated here
//   gram/diag/rinv_cb  one tile each (fp32 when fp32_dest_acc_en, else bf16)
//   out_cb    Wt tiles of output
//
// Sum of squares without a full x^2 intermediate: for each 32x32 tile X_i of the row block,
// G += X_i @ X_i^T (matmul with the in1 tile transposed), so G[r, r] = sum_c x[r, c]^2 accumulates in DST
// across all Wt tiles. D = G * I keeps the diagonal; D @ ones puts sum(x[r, :]^2) in every column of row r,
// so the reciprocal RMS comes out as a full tile and the final scaling can use dest-reuse (no column
// broadcast). L1 cost: a handful of tiles instead of a Wt-tile squares buffer (7168 wide: 448 KB saved).

#pragma once

#include <cstdint>

#include "unified/kernel_op_api.hpp"

#if defined(COMPILE_FOR_TRISC)
#include "api/compute/compute_kernel_hw_startup.h"
#include "api/compute/cb_api.h"
#include "api/compute/reg_api.h"
#include "api/compute/pack.h"
#include "api/compute/reconfig_data_format.h"
#include "api/compute/matmul.h"
#include "api/compute/eltwise_binary.h"
#include "api/compute/bcast.h"
#include "api/compute/eltwise_unary/binop_with_scalar.h"
#include "api/compute/eltwise_unary/rsqrt.h"
#endif

namespace ttfuse::ops {

struct RMSNorm {
    // bf16 1.0 as stored in L1, two per 32-bit word
    static constexpr uint32_t kBf16One = 0x3F80u;
    static constexpr uint32_t kBf16OnePair = 0x3F803F80u;
    // bf16 32x32 tile: 4 faces of 16x16, row-major inside a face, faces ordered TL, TR, BL, BR
    static constexpr uint32_t kTileWords = 512;  // 2048 B / 4
    static constexpr uint32_t kFace1RowWord = ttfuse::kFaceElements / 2;  // face 1 (row 0, cols 16..31) in words

    // NCRISC: announce the input (when it is a tensor shard), build the constant tiles and the gamma tiles
    template <
        uint32_t XCB,
        uint32_t GammaRmCB,
        uint32_t GammaCB,
        uint32_t ConstCB,
        uint32_t NumTiles,
        bool PushX,
        uint32_t ValidRows>      // rows of x that are data; the rest of each tile is padding
    struct ReaderCTArgs {
        static constexpr uint32_t valid_rows = ValidRows;
        static constexpr uint32_t x_cb = XCB;
        static constexpr uint32_t gamma_rm_cb = GammaRmCB;
        static constexpr uint32_t gamma_cb = GammaCB;
        static constexpr uint32_t const_cb = ConstCB;
        static constexpr uint32_t num_tiles = NumTiles;
        static constexpr bool push_x = PushX;
    };

    // BRISC: the output is a sharded tensor written in place by the packer; wait for it so the program
    // does not finish early. WaitOut = false when a later op in the same kernel consumes the output.
    template <uint32_t OutCB, uint32_t NumTiles, bool WaitOut>
    struct WriterCTArgs {
        static constexpr uint32_t out_cb = OutCB;
        static constexpr uint32_t num_tiles = NumTiles;
        static constexpr bool wait_out = WaitOut;
    };

    template <
        uint32_t XCB,
        uint32_t GammaCB,
        uint32_t ConstCB,
        uint32_t GramCB,
        uint32_t DiagCB,
        uint32_t RinvCB,
        uint32_t OutCB,
        uint32_t NumTiles,
        uint32_t Block,          // tiles per DST batch in the scaling pass (<= DST capacity)
        uint32_t InvWidthBits,   // fp32 bits of 1/width
        uint32_t EpsBits,        // fp32 bits of epsilon
        bool HwStartup>          // true when this is the first compute op of the kernel
    struct ComputeCTArgs {
        static constexpr uint32_t x_cb = XCB;
        static constexpr uint32_t gamma_cb = GammaCB;
        static constexpr uint32_t const_cb = ConstCB;
        static constexpr uint32_t gram_cb = GramCB;
        static constexpr uint32_t diag_cb = DiagCB;
        static constexpr uint32_t rinv_cb = RinvCB;
        static constexpr uint32_t out_cb = OutCB;
        static constexpr uint32_t num_tiles = NumTiles;
        static constexpr uint32_t block = Block;
        static constexpr uint32_t inv_width_bits = InvWidthBits;
        static constexpr uint32_t eps_bits = EpsBits;
        static constexpr bool hw_startup = HwStartup;
    };

#if defined(COMPILE_FOR_NCRISC)
    // The Gram matrix mixes rows (G[r, c] = x_r . x_c), so an inf or NaN a producer left in a padding row
    // would reach every row through the masked sum. Padding is not part of the tensor's value: zero it in
    // place (bf16 tiles at base, rows valid_rows..31 of each) before the compute side sees the tiles.
    static void zero_padding_rows(uint32_t base, uint32_t num_tiles, uint32_t valid_rows) {
        for (uint32_t j = 0; j < num_tiles; ++j) {
            volatile tt_l1_ptr uint32_t* tile = reinterpret_cast<volatile tt_l1_ptr uint32_t*>(base + j * kTileWords * 4);
            for (uint32_t r = valid_rows; r < ttfuse::kTileHeight; ++r) {
                const uint32_t word = ttfuse::tile_element_index(r, 0) / 2;  // left face; the right one is 128 words on
                for (uint32_t w = 0; w < 8; ++w) {
                    tile[word + w] = 0;
                    tile[word + ttfuse::kFaceElements / 2 + w] = 0;
                }
            }
        }
    }
#endif

    template <typename CTArgs>
    class Op {
    public:
        void operator()() { impl(); }

    private:
        void impl() {
#if defined(COMPILE_FOR_NCRISC)
            constexpr uint32_t Wt = CTArgs::num_tiles;
            if constexpr (CTArgs::push_x) {
                // x is a sharded tensor already resident in the CB's L1: clear its padding rows, publish it
                cb_reserve_back(CTArgs::x_cb, Wt);
                if constexpr (CTArgs::valid_rows < ttfuse::kTileHeight) {
                    zero_padding_rows(get_write_ptr(CTArgs::x_cb), Wt, CTArgs::valid_rows);
                }
                cb_push_back(CTArgs::x_cb, Wt);
            }

            // constants: tile 0 = identity (diagonal mask), tile 1 = all ones (row-sum broadcast)
            cb_reserve_back(CTArgs::const_cb, 2);
            {
                const uint32_t base = get_write_ptr(CTArgs::const_cb);
                volatile tt_l1_ptr uint32_t* ident = reinterpret_cast<volatile tt_l1_ptr uint32_t*>(base);
                for (uint32_t i = 0; i < kTileWords; ++i) {
                    ident[i] = 0;
                }
                volatile tt_l1_ptr uint16_t* ident16 = reinterpret_cast<volatile tt_l1_ptr uint16_t*>(base);
                for (uint32_t r = 0; r < ttfuse::kTileHeight; ++r) {
                    ident16[ttfuse::tile_element_index(r, r)] = kBf16One;
                }
                volatile tt_l1_ptr uint32_t* ones = ident + kTileWords;
                for (uint32_t i = 0; i < kTileWords; ++i) {
                    ones[i] = kBf16OnePair;
                }
            }
            cb_push_back(CTArgs::const_cb, 2);

            // gamma tiles: elements [32j, 32j+16) go to face 0 row 0, [32j+16, 32j+32) to face 1 row 0.
            // The compute side multiplies with a row broadcast, so the other rows are never read.
            const uint32_t gamma_base = get_read_ptr(CTArgs::gamma_rm_cb);
            for (uint32_t j = 0; j < Wt; ++j) {
                cb_reserve_back(CTArgs::gamma_cb, 1);
                volatile tt_l1_ptr uint32_t* dst =
                    reinterpret_cast<volatile tt_l1_ptr uint32_t*>(get_write_ptr(CTArgs::gamma_cb));
                volatile tt_l1_ptr uint32_t* src =
                    reinterpret_cast<volatile tt_l1_ptr uint32_t*>(gamma_base + j * 64);
                for (uint32_t w = 0; w < 8; ++w) {
                    dst[w] = src[w];
                    dst[kFace1RowWord + w] = src[8 + w];
                }
                cb_push_back(CTArgs::gamma_cb, 1);
            }
#endif

#if defined(COMPILE_FOR_BRISC)
            if constexpr (CTArgs::wait_out) {
                cb_wait_front(CTArgs::out_cb, CTArgs::num_tiles);
            }
#endif

#if defined(COMPILE_FOR_TRISC)
            constexpr uint32_t Wt = CTArgs::num_tiles;
            constexpr uint32_t x_cb = CTArgs::x_cb;
            constexpr uint32_t const_cb = CTArgs::const_cb;
            constexpr uint32_t gram_cb = CTArgs::gram_cb;
            constexpr uint32_t diag_cb = CTArgs::diag_cb;
            constexpr uint32_t rinv_cb = CTArgs::rinv_cb;
            constexpr uint32_t gamma_cb = CTArgs::gamma_cb;
            constexpr uint32_t out_cb = CTArgs::out_cb;
            constexpr uint32_t kIdentity = 0;
            constexpr uint32_t kOnes = 1;

            if constexpr (CTArgs::hw_startup) {
                compute_kernel_hw_startup<SrcOrder::Reverse>(x_cb, x_cb, gram_cb);
            }

            // 1) G = sum_i X_i @ X_i^T, accumulated in DST (fp32 when fp32_dest_acc_en)
            reconfig_data_format<SrcOrder::Reverse>(x_cb, x_cb);
            pack_reconfig_data_format(gram_cb);
            matmul_init(x_cb, x_cb, 1 /* transpose the in1 tile */);
            cb_wait_front(x_cb, Wt);
            tile_regs_acquire();
            for (uint32_t i = 0; i < Wt; ++i) {
                matmul_tiles(x_cb, x_cb, i, i, 0);
            }
            tile_regs_commit();
            cb_reserve_back(gram_cb, 1);
            tile_regs_wait();
            pack_tile(0, gram_cb);
            tile_regs_release();
            cb_push_back(gram_cb, 1);

            // 2) D = G * I: keep the per-row sums of squares on the diagonal
            cb_wait_front(const_cb, 2);
            cb_wait_front(gram_cb, 1);
            reconfig_data_format(gram_cb, const_cb);
            pack_reconfig_data_format(diag_cb);
            mul_init(gram_cb, const_cb, false);
            tile_regs_acquire();
            mul_tiles(gram_cb, const_cb, 0, kIdentity, 0);
            tile_regs_commit();
            cb_reserve_back(diag_cb, 1);
            tile_regs_wait();
            pack_tile(0, diag_cb);
            tile_regs_release();
            cb_push_back(diag_cb, 1);
            cb_pop_front(gram_cb, 1);

            // 3) R = rsqrt((D @ ones) / width + eps): every column of row r holds row r's 1/rms
            cb_wait_front(diag_cb, 1);
            reconfig_data_format<SrcOrder::Reverse>(diag_cb, const_cb);
            pack_reconfig_data_format(rinv_cb);
            matmul_init(diag_cb, const_cb, 0);
            tile_regs_acquire();
            matmul_tiles(diag_cb, const_cb, 0, kOnes, 0);
            binop_with_scalar_tile_init();
            mul_unary_tile(0, CTArgs::inv_width_bits);
            add_unary_tile(0, CTArgs::eps_bits);
            rsqrt_tile_init();
            rsqrt_tile(0);
            tile_regs_commit();
            cb_reserve_back(rinv_cb, 1);
            tile_regs_wait();
            pack_tile(0, rinv_cb);
            tile_regs_release();
            cb_push_back(rinv_cb, 1);
            cb_pop_front(diag_cb, 1);

            // 4) y = (x * gamma_row) * R, Block tiles per DST batch
            cb_wait_front(rinv_cb, 1);
            for (uint32_t start = 0; start < Wt; start += CTArgs::block) {
                const uint32_t nb = (Wt - start) < CTArgs::block ? (Wt - start) : CTArgs::block;
                cb_wait_front(gamma_cb, nb);
                reconfig_data_format(x_cb, gamma_cb);
                pack_reconfig_data_format(out_cb);
                mul_bcast_rows_init(x_cb, gamma_cb);
                tile_regs_acquire();
                for (uint32_t t = 0; t < nb; ++t) {
                    mul_tiles_bcast_rows(x_cb, gamma_cb, start + t, t, t);
                }
                reconfig_data_format_srcb(rinv_cb);
                mul_reuse_dest_init<EltwiseBinaryReuseDestType::DEST_TO_SRCA>(rinv_cb);
                for (uint32_t t = 0; t < nb; ++t) {
                    mul_reuse_dest_tiles<EltwiseBinaryReuseDestType::DEST_TO_SRCA>(rinv_cb, 0, t);
                }
                tile_regs_commit();
                cb_reserve_back(out_cb, nb);
                tile_regs_wait();
                for (uint32_t t = 0; t < nb; ++t) {
                    pack_tile(t, out_cb);
                }
                tile_regs_release();
                cb_push_back(out_cb, nb);
                cb_pop_front(gamma_cb, nb);
            }
            cb_pop_front(rinv_cb, 1);
            cb_pop_front(const_cb, 2);
            // x_cb is not popped: in fused kernels other RISCs may still be waiting on it
#endif
        }
    };
};

// s = x + residual (elementwise, bf16 out), the pre-norm residual add of a decoder layer. Its output CB is
// usually the input of a following RMSNorm::Op in the same kernel (ResidualRMSNorm).
struct ResidualAdd {
    // NCRISC: both inputs are sharded tensors already in L1 (padding rows past ValidRows get cleared, so the
    // sum a following RMSNorm reads has zero padding)
    template <uint32_t XCB, uint32_t ResCB, uint32_t NumTiles, uint32_t ValidRows>
    struct ReaderCTArgs {
        static constexpr uint32_t valid_rows = ValidRows;
        static constexpr uint32_t x_cb = XCB;
        static constexpr uint32_t res_cb = ResCB;
        static constexpr uint32_t num_tiles = NumTiles;
    };

    // BRISC: the sum is an output tensor too; wait for all of it
    template <uint32_t SumCB, uint32_t NumTiles>
    struct WriterCTArgs {
        static constexpr uint32_t sum_cb = SumCB;
        static constexpr uint32_t num_tiles = NumTiles;
    };

    template <uint32_t XCB, uint32_t ResCB, uint32_t SumCB, uint32_t NumTiles, uint32_t Block, bool HwStartup>
    struct ComputeCTArgs {
        static constexpr uint32_t x_cb = XCB;
        static constexpr uint32_t res_cb = ResCB;
        static constexpr uint32_t sum_cb = SumCB;
        static constexpr uint32_t num_tiles = NumTiles;
        static constexpr uint32_t block = Block;
        static constexpr bool hw_startup = HwStartup;
    };

    template <typename CTArgs>
    class Op {
    public:
        void operator()() { impl(); }

    private:
        void impl() {
#if defined(COMPILE_FOR_NCRISC)
            cb_reserve_back(CTArgs::x_cb, CTArgs::num_tiles);
            cb_reserve_back(CTArgs::res_cb, CTArgs::num_tiles);
            if constexpr (CTArgs::valid_rows < ttfuse::kTileHeight) {
                RMSNorm::zero_padding_rows(get_write_ptr(CTArgs::x_cb), CTArgs::num_tiles, CTArgs::valid_rows);
                RMSNorm::zero_padding_rows(get_write_ptr(CTArgs::res_cb), CTArgs::num_tiles, CTArgs::valid_rows);
            }
            cb_push_back(CTArgs::x_cb, CTArgs::num_tiles);
            cb_push_back(CTArgs::res_cb, CTArgs::num_tiles);
#endif

#if defined(COMPILE_FOR_BRISC)
            cb_wait_front(CTArgs::sum_cb, CTArgs::num_tiles);
#endif

#if defined(COMPILE_FOR_TRISC)
            constexpr uint32_t Wt = CTArgs::num_tiles;
            if constexpr (CTArgs::hw_startup) {
                compute_kernel_hw_startup(CTArgs::x_cb, CTArgs::res_cb, CTArgs::sum_cb);
            }
            reconfig_data_format(CTArgs::x_cb, CTArgs::res_cb);
            pack_reconfig_data_format(CTArgs::sum_cb);
            add_init(CTArgs::x_cb, CTArgs::res_cb);
            cb_wait_front(CTArgs::x_cb, Wt);
            cb_wait_front(CTArgs::res_cb, Wt);
            for (uint32_t start = 0; start < Wt; start += CTArgs::block) {
                const uint32_t nb = (Wt - start) < CTArgs::block ? (Wt - start) : CTArgs::block;
                tile_regs_acquire();
                for (uint32_t t = 0; t < nb; ++t) {
                    add_tiles(CTArgs::x_cb, CTArgs::res_cb, start + t, start + t, t);
                }
                tile_regs_commit();
                cb_reserve_back(CTArgs::sum_cb, nb);
                tile_regs_wait();
                for (uint32_t t = 0; t < nb; ++t) {
                    pack_tile(t, CTArgs::sum_cb);
                }
                tile_regs_release();
                cb_push_back(CTArgs::sum_cb, nb);
            }
#endif
        }
    };
};

}  // namespace ttfuse::ops

// Per-RISC CTArgs of RMSNorm and ResidualAdd from named compile-time args with a prefix (see TTFUSE_NAMED).
#define TTFUSE_RMSNORM_READER_CT(P)                                                                         \
    ::ttfuse::ops::RMSNorm::ReaderCTArgs<                                                                   \
        TTFUSE_NAMED(P, "x_cb"), TTFUSE_NAMED(P, "gamma_rm_cb"), TTFUSE_NAMED(P, "gamma_cb"),              \
        TTFUSE_NAMED(P, "const_cb"), TTFUSE_NAMED(P, "num_tiles"), TTFUSE_NAMED(P, "push_x") != 0,         \
        TTFUSE_NAMED(P, "valid_rows")>
// WAIT_OUT: whether the writer waits for the packed output (false when a later op consumes it on-core)
#define TTFUSE_RMSNORM_WRITER_CT(P, WAIT_OUT) \
    ::ttfuse::ops::RMSNorm::WriterCTArgs<TTFUSE_NAMED(P, "out_cb"), TTFUSE_NAMED(P, "num_tiles"), (WAIT_OUT)>
#define TTFUSE_RMSNORM_COMPUTE_CT(P, HW_STARTUP)                                                            \
    ::ttfuse::ops::RMSNorm::ComputeCTArgs<                                                                  \
        TTFUSE_NAMED(P, "x_cb"), TTFUSE_NAMED(P, "gamma_cb"), TTFUSE_NAMED(P, "const_cb"),                 \
        TTFUSE_NAMED(P, "gram_cb"), TTFUSE_NAMED(P, "diag_cb"), TTFUSE_NAMED(P, "rinv_cb"),                \
        TTFUSE_NAMED(P, "out_cb"), TTFUSE_NAMED(P, "num_tiles"), TTFUSE_NAMED(P, "block"),                 \
        TTFUSE_NAMED(P, "inv_width_bits"), TTFUSE_NAMED(P, "eps_bits"), (HW_STARTUP)>
