// SPDX-License-Identifier: Apache-2.0
//
// Decode matmul micro-ops, unified-kernel style (seed 002):
//
//   Matmul : out[1 x Nt] = act[1 x Kt] @ w[Kt x Nt] on one core (its weight shard), optional SFPU activation
//            (silu / sigmoid / relu) applied in DST before packing.
//   Mcast  : one sender core multicasts Kt activation tiles to a rectangle of matmul cores (the receivers),
//            handshake with two semaphores: receivers count themselves in on the sender's `ready` semaphore,
//            the sender writes the tiles, then multicasts VALID into every receiver's `valid` semaphore.
//
// Tile layout of the weight shard (a WIDTH_SHARDED TILE tensor): row-major tiles, tile (k, n) at k*Nt + n.

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
#include "api/compute/eltwise_unary/relu.h"
#endif

namespace ttfuse::ops {

// Activation codes shared with micro_ops/matmul/op.py
enum class Activation : uint32_t { None = 0, Silu = 1, Sigmoid = 2, Relu = 3 };

struct Matmul {
    // NCRISC: the weight shard is already in L1; publish it
    template <uint32_t In1CB, uint32_t In1Tiles>
    struct ReaderCTArgs {
        static constexpr uint32_t in1_cb = In1CB;
        static constexpr uint32_t in1_tiles = In1Tiles;
    };

    // BRISC: the output shard is written in place by the packer; wait so the program ends after it
    template <uint32_t OutCB, uint32_t OutTiles>
    struct WriterCTArgs {
        static constexpr uint32_t out_cb = OutCB;
        static constexpr uint32_t out_tiles = OutTiles;
    };

    template <
        uint32_t In0CB,
        uint32_t In1CB,
        uint32_t OutCB,
        uint32_t Kt,
        uint32_t Nt,
        uint32_t Subblock,      // output tiles per DST batch, divides Nt, <= DST capacity
        uint32_t Act,           // Activation
        bool HwStartup>         // first compute op of the kernel
    struct ComputeCTArgs {
        static constexpr uint32_t in0_cb = In0CB;
        static constexpr uint32_t in1_cb = In1CB;
        static constexpr uint32_t out_cb = OutCB;
        static constexpr uint32_t kt = Kt;
        static constexpr uint32_t nt = Nt;
        static constexpr uint32_t subblock = Subblock;
        static constexpr Activation act = static_cast<Activation>(Act);
        static constexpr bool hw_startup = HwStartup;
        static_assert(Nt % Subblock == 0, "Subblock must divide Nt");
    };

    template <typename CTArgs>
    class Op {
    public:
        void operator()() { impl(); }

    private:
        void impl() {
#if defined(COMPILE_FOR_NCRISC)
            cb_reserve_back(CTArgs::in1_cb, CTArgs::in1_tiles);
            cb_push_back(CTArgs::in1_cb, CTArgs::in1_tiles);
#endif

#if defined(COMPILE_FOR_BRISC)
            cb_wait_front(CTArgs::out_cb, CTArgs::out_tiles);
#endif

#if defined(COMPILE_FOR_TRISC)
            constexpr uint32_t in0 = CTArgs::in0_cb;
            constexpr uint32_t in1 = CTArgs::in1_cb;
            constexpr uint32_t out = CTArgs::out_cb;
            constexpr uint32_t Kt = CTArgs::kt;
            constexpr uint32_t Nt = CTArgs::nt;
            constexpr uint32_t SB = CTArgs::subblock;

            if constexpr (CTArgs::hw_startup) {
                compute_kernel_hw_startup<SrcOrder::Reverse>(in0, in1, out);
            }
            reconfig_data_format<SrcOrder::Reverse>(in0, in1);
            pack_reconfig_data_format(out);

            cb_wait_front(in0, Kt);
            cb_wait_front(in1, Kt * Nt);
            for (uint32_t n0 = 0; n0 < Nt; n0 += SB) {
                // re-init each subblock: an activation in between reprograms the math thread
                matmul_block_init(in0, in1, 0, SB /* ct_dim */, 1 /* rt_dim */, Kt /* kt_dim */);
                tile_regs_acquire();
                for (uint32_t k = 0; k < Kt; ++k) {
                    // act tile k times weight tiles (k, n0 .. n0+SB-1), accumulated in DST[0 .. SB-1]
                    matmul_block(in0, in1, k, k * Nt + n0, 0, 0, SB, 1, Kt);
                }
                if constexpr (CTArgs::act == Activation::Silu) {
                    silu_tile_init();
                    for (uint32_t j = 0; j < SB; ++j) {
                        silu_tile(j);
                    }
                } else if constexpr (CTArgs::act == Activation::Sigmoid) {
                    sigmoid_tile_init();
                    for (uint32_t j = 0; j < SB; ++j) {
                        sigmoid_tile(j);
                    }
                } else if constexpr (CTArgs::act == Activation::Relu) {
                    relu_tile_init();
                    for (uint32_t j = 0; j < SB; ++j) {
                        relu_tile(j);
                    }
                }
                tile_regs_commit();
                cb_reserve_back(out, SB);
                tile_regs_wait();
                for (uint32_t j = 0; j < SB; ++j) {
                    pack_tile(j, out);
                }
                tile_regs_release();
                cb_push_back(out, SB);
            }
            // in0 / in1 are not popped: other RISCs (the multicast sender) may still be reading in0
#endif
        }
    };
};

// Matmul against one or two resident weight shards with the activation STREAMED through a ring: in0 arrives
// in blocks of In0Block tiles (popped after use), so no core needs the whole activation in L1. Every output
// tile accumulates in DST across the whole K loop, hence Nt (+ Nt2) must fit one DST half. The data-movement
// sides are Matmul's (publish the weight shard, wait for the output), once per weight.
struct MatmulStreamed {
    template <
        uint32_t In0CB,
        uint32_t Kt,
        uint32_t In0Block,      // tiles per in0 block; divides Kt
        uint32_t In1CB,
        uint32_t OutCB,
        uint32_t Nt,
        uint32_t Act,
        uint32_t NumOut,        // 1, or 2 with the second weight below
        uint32_t In1bCB,
        uint32_t OutbCB,
        uint32_t Ntb,
        uint32_t Actb,
        bool HwStartup>
    struct ComputeCTArgs {
        static constexpr uint32_t in0_cb = In0CB;
        static constexpr uint32_t kt = Kt;
        static constexpr uint32_t in0_block = In0Block;
        static constexpr uint32_t in1_cb = In1CB;
        static constexpr uint32_t out_cb = OutCB;
        static constexpr uint32_t nt = Nt;
        static constexpr Activation act = static_cast<Activation>(Act);
        static constexpr uint32_t num_out = NumOut;
        static constexpr uint32_t in1b_cb = In1bCB;
        static constexpr uint32_t outb_cb = OutbCB;
        static constexpr uint32_t ntb = NumOut == 2 ? Ntb : 0;
        static constexpr Activation actb = static_cast<Activation>(Actb);
        static constexpr bool hw_startup = HwStartup;
        static_assert(Kt % In0Block == 0, "In0Block must divide Kt");
        static_assert(NumOut == 1 || NumOut == 2, "one or two weights");
    };

    template <typename CTArgs>
    class Op {
    public:
        void operator()() { impl(); }

    private:
#if defined(COMPILE_FOR_TRISC)
        template <Activation A>
        static void activate(uint32_t first, uint32_t count) {
            if constexpr (A == Activation::Silu) {
                silu_tile_init();
                for (uint32_t j = 0; j < count; ++j) {
                    silu_tile(first + j);
                }
            } else if constexpr (A == Activation::Sigmoid) {
                sigmoid_tile_init();
                for (uint32_t j = 0; j < count; ++j) {
                    sigmoid_tile(first + j);
                }
            } else if constexpr (A == Activation::Relu) {
                relu_tile_init();
                for (uint32_t j = 0; j < count; ++j) {
                    relu_tile(first + j);
                }
            }
        }
#endif

        void impl() {
#if defined(COMPILE_FOR_TRISC)
            constexpr uint32_t in0 = CTArgs::in0_cb;
            constexpr uint32_t KB = CTArgs::in0_block;
            constexpr uint32_t Nt = CTArgs::nt;
            constexpr uint32_t Ntb = CTArgs::ntb;
            if constexpr (CTArgs::hw_startup) {
                compute_kernel_hw_startup<SrcOrder::Reverse>(in0, CTArgs::in1_cb, CTArgs::out_cb);
            }
            reconfig_data_format<SrcOrder::Reverse>(in0, CTArgs::in1_cb);
            cb_wait_front(CTArgs::in1_cb, CTArgs::kt * Nt);
            if constexpr (CTArgs::num_out == 2) {
                cb_wait_front(CTArgs::in1b_cb, CTArgs::kt * Ntb);
            }
            tile_regs_acquire();
            for (uint32_t b = 0; b < CTArgs::kt / KB; ++b) {
                cb_wait_front(in0, KB);
                // DST[0, Nt) accumulates act @ w; DST[Nt, Nt + Ntb) act @ w2 (re-init: ct_dim / in1 differ)
                matmul_block_init(in0, CTArgs::in1_cb, 0, Nt, 1, KB);
                for (uint32_t kk = 0; kk < KB; ++kk) {
                    matmul_block(in0, CTArgs::in1_cb, kk, (b * KB + kk) * Nt, 0, 0, Nt, 1, KB);
                }
                if constexpr (CTArgs::num_out == 2) {
                    matmul_block_init(in0, CTArgs::in1b_cb, 0, Ntb, 1, KB);
                    for (uint32_t kk = 0; kk < KB; ++kk) {
                        matmul_block(in0, CTArgs::in1b_cb, kk, (b * KB + kk) * Ntb, Nt, 0, Ntb, 1, KB);
                    }
                }
                cb_pop_front(in0, KB);  // frees the ring slot for the next multicast block
            }
            activate<CTArgs::act>(0, Nt);
            if constexpr (CTArgs::num_out == 2) {
                activate<CTArgs::actb>(Nt, Ntb);
            }
            tile_regs_commit();
            cb_reserve_back(CTArgs::out_cb, Nt);
            if constexpr (CTArgs::num_out == 2) {
                cb_reserve_back(CTArgs::outb_cb, Ntb);
            }
            tile_regs_wait();
            pack_reconfig_data_format(CTArgs::out_cb);
            for (uint32_t j = 0; j < Nt; ++j) {
                pack_tile(j, CTArgs::out_cb);
            }
            if constexpr (CTArgs::num_out == 2) {
                pack_reconfig_data_format(CTArgs::outb_cb);
                for (uint32_t j = 0; j < Ntb; ++j) {
                    pack_tile(Nt + j, CTArgs::outb_cb);
                }
            }
            tile_regs_release();
            cb_push_back(CTArgs::out_cb, Nt);
            if constexpr (CTArgs::num_out == 2) {
                cb_push_back(CTArgs::outb_cb, Ntb);
            }
#endif
        }
    };
};

struct Mcast {
    static constexpr uint32_t kInvalid = 0;
    static constexpr uint32_t kValid = 1;

    // NCRISC. On the sender core with PushSrc: publish the source tiles (a sharded tensor already in L1).
    // On a receiver core, per block: make room in dst_cb, count in at the sender, wait for VALID, publish.
    // NumBlocks > 1 streams the activation through a dst_cb ring (the consumer pops each block).
    template <
        uint32_t SrcCB,
        bool PushSrc,
        uint32_t DstCB,
        uint32_t NumBlocks,
        uint32_t BlockTiles,
        uint32_t SenderNocX,
        uint32_t SenderNocY,
        uint32_t ReadySem,
        uint32_t ValidSem,
        bool IsReceiver>
    struct ReaderCTArgs {
        static constexpr uint32_t src_cb = SrcCB;
        static constexpr bool push_src = PushSrc;
        static constexpr uint32_t dst_cb = DstCB;
        static constexpr uint32_t num_blocks = NumBlocks;
        static constexpr uint32_t block_tiles = BlockTiles;
        static constexpr uint32_t sender_x = SenderNocX;
        static constexpr uint32_t sender_y = SenderNocY;
        static constexpr uint32_t ready_sem = ReadySem;
        static constexpr uint32_t valid_sem = ValidSem;
        static constexpr bool is_receiver = IsReceiver;
        static_assert(!PushSrc || NumBlocks == 1, "a tensor-backed source is published whole");
    };

    // BRISC on the sender core, per block: wait for the block in src_cb, wait for every receiver, write it to
    // dst_cb's slot (b % Slots) on the rectangle [start, end] (NOC coordinates), flip the receivers' `valid`
    // semaphores; with PopSrc free the source slot once the NOC has read it.
    template <
        uint32_t SrcCB,
        uint32_t DstCB,
        uint32_t NumBlocks,
        uint32_t BlockTiles,
        uint32_t Slots,         // dst_cb capacity in blocks (1 when the activation is resident)
        bool PopSrc,
        uint32_t TileBytes,
        uint32_t StartX,
        uint32_t StartY,
        uint32_t EndX,
        uint32_t EndY,
        uint32_t NumDests,      // receivers in the rectangle, never the sender itself; 0 = nothing to send
        uint32_t ReadySem,
        uint32_t ValidSem,
        uint32_t ValidSrcSem,   // sender-local word holding VALID, the source of the semaphore multicast
        bool IsSender>
    struct WriterCTArgs {
        static constexpr uint32_t src_cb = SrcCB;
        static constexpr uint32_t dst_cb = DstCB;
        static constexpr uint32_t num_blocks = NumBlocks;
        static constexpr uint32_t block_tiles = BlockTiles;
        static constexpr uint32_t slots = Slots;
        static constexpr bool pop_src = PopSrc;
        static constexpr uint32_t tile_bytes = TileBytes;
        static constexpr uint32_t start_x = StartX;
        static constexpr uint32_t start_y = StartY;
        static constexpr uint32_t end_x = EndX;
        static constexpr uint32_t end_y = EndY;
        static constexpr uint32_t num_dests = NumDests;
        static constexpr uint32_t ready_sem = ReadySem;
        static constexpr uint32_t valid_sem = ValidSem;
        static constexpr uint32_t valid_src_sem = ValidSrcSem;
        static constexpr bool is_sender = IsSender;
        static_assert(Slots >= 1, "dst_cb holds at least one block");
    };

    struct ComputeCTArgs {};

    template <typename CTArgs>
    class Op {
    public:
        void operator()() { impl(); }

    private:
        void impl() {
#if defined(COMPILE_FOR_NCRISC)
            if constexpr (CTArgs::push_src) {
                cb_reserve_back(CTArgs::src_cb, CTArgs::block_tiles);
                cb_push_back(CTArgs::src_cb, CTArgs::block_tiles);
            }
            if constexpr (CTArgs::is_receiver) {
                volatile tt_l1_ptr uint32_t* valid =
                    reinterpret_cast<volatile tt_l1_ptr uint32_t*>(get_semaphore(CTArgs::valid_sem));
                const uint64_t ready_addr =
                    get_noc_addr(CTArgs::sender_x, CTArgs::sender_y, get_semaphore(CTArgs::ready_sem));
                for (uint32_t b = 0; b < CTArgs::num_blocks; ++b) {
                    cb_reserve_back(CTArgs::dst_cb, CTArgs::block_tiles);
                    noc_semaphore_set(valid, kInvalid);
                    noc_semaphore_inc(ready_addr, 1);
                    noc_semaphore_wait(valid, kValid);
                    cb_push_back(CTArgs::dst_cb, CTArgs::block_tiles);
                }
                noc_async_atomic_barrier();
            }
#endif

#if defined(COMPILE_FOR_BRISC)
            if constexpr (CTArgs::is_sender && CTArgs::num_dests > 0) {
                // NOC 1 addresses the rectangle from the opposite corner
                const uint32_t sx = noc_index == 0 ? CTArgs::start_x : CTArgs::end_x;
                const uint32_t sy = noc_index == 0 ? CTArgs::start_y : CTArgs::end_y;
                const uint32_t ex = noc_index == 0 ? CTArgs::end_x : CTArgs::start_x;
                const uint32_t ey = noc_index == 0 ? CTArgs::end_y : CTArgs::start_y;
                volatile tt_l1_ptr uint32_t* ready =
                    reinterpret_cast<volatile tt_l1_ptr uint32_t*>(get_semaphore(CTArgs::ready_sem));
                const uint32_t valid_src = get_semaphore(CTArgs::valid_src_sem);
                *reinterpret_cast<volatile tt_l1_ptr uint32_t*>(valid_src) = kValid;
                const uint64_t flag_mcast =
                    get_noc_multicast_addr(sx, sy, ex, ey, get_semaphore(CTArgs::valid_sem));
                // dst_cb has one address on every core of the program; this core never advances its copy of
                // the write pointer, so it is the CB base. Receivers fill the ring in block order.
                const uint32_t dst_base = get_write_ptr(CTArgs::dst_cb);
                constexpr uint32_t bytes = CTArgs::block_tiles * CTArgs::tile_bytes;

                for (uint32_t b = 0; b < CTArgs::num_blocks; ++b) {
                    cb_wait_front(CTArgs::src_cb, CTArgs::block_tiles);
                    const uint32_t src = get_read_ptr(CTArgs::src_cb);
                    const uint32_t dst = dst_base + (b % CTArgs::slots) * bytes;
                    noc_semaphore_wait(ready, CTArgs::num_dests);
                    noc_semaphore_set(ready, 0);
                    // non-loopback: a sender inside the rectangle is skipped (it already holds the data)
                    noc_async_write_multicast(src, get_noc_multicast_addr(sx, sy, ex, ey, dst), bytes,
                                              CTArgs::num_dests, true);
                    // same NOC, same VC: the flag lands after the data
                    noc_semaphore_set_multicast(valid_src, flag_mcast, CTArgs::num_dests);
                    if constexpr (CTArgs::pop_src) {
                        noc_async_write_barrier();  // the NOC has read the slot: the producer may refill it
                        cb_pop_front(CTArgs::src_cb, CTArgs::block_tiles);
                    }
                }
                noc_async_write_barrier();
            }
#endif
        }
    };
};

}  // namespace ttfuse::ops

// Per-RISC CTArgs of Mcast and Matmul from named compile-time args with a prefix (see TTFUSE_NAMED);
// the descriptor side writes the same names (micro_ops/matmul, micro_ops/rmsnorm_matmul).
#define TTFUSE_MCAST_READER_CT(P)                                                                           \
    ::ttfuse::ops::Mcast::ReaderCTArgs<                                                                     \
        TTFUSE_NAMED(P, "src_cb"), TTFUSE_NAMED(P, "push_src") != 0, TTFUSE_NAMED(P, "dst_cb"),            \
        TTFUSE_NAMED(P, "num_blocks"), TTFUSE_NAMED(P, "block_tiles"), TTFUSE_NAMED(P, "sender_x"),        \
        TTFUSE_NAMED(P, "sender_y"), TTFUSE_NAMED(P, "ready_sem"), TTFUSE_NAMED(P, "valid_sem"),           \
        TTFUSE_NAMED(P, "is_receiver") != 0>
#define TTFUSE_MCAST_WRITER_CT(P)                                                                           \
    ::ttfuse::ops::Mcast::WriterCTArgs<                                                                     \
        TTFUSE_NAMED(P, "src_cb"), TTFUSE_NAMED(P, "dst_cb"), TTFUSE_NAMED(P, "num_blocks"),               \
        TTFUSE_NAMED(P, "block_tiles"), TTFUSE_NAMED(P, "slots"), TTFUSE_NAMED(P, "pop_src") != 0,         \
        TTFUSE_NAMED(P, "tile_bytes"), TTFUSE_NAMED(P, "start_x"), TTFUSE_NAMED(P, "start_y"),             \
        TTFUSE_NAMED(P, "end_x"), TTFUSE_NAMED(P, "end_y"), TTFUSE_NAMED(P, "num_dests"),                  \
        TTFUSE_NAMED(P, "ready_sem"), TTFUSE_NAMED(P, "valid_sem"), TTFUSE_NAMED(P, "valid_src_sem"),      \
        TTFUSE_NAMED(P, "is_sender") != 0>
#define TTFUSE_MATMUL_READER_CT(P) \
    ::ttfuse::ops::Matmul::ReaderCTArgs<TTFUSE_NAMED(P, "in1_cb"), TTFUSE_NAMED(P, "in1_tiles")>
#define TTFUSE_MATMUL_WRITER_CT(P) \
    ::ttfuse::ops::Matmul::WriterCTArgs<TTFUSE_NAMED(P, "out_cb"), TTFUSE_NAMED(P, "out_tiles")>
// HW_STARTUP: whether this op does the one-time compute start-up (false when an earlier op on the core did)
#define TTFUSE_MATMUL_COMPUTE_CT(P, HW_STARTUP)                                                             \
    ::ttfuse::ops::Matmul::ComputeCTArgs<                                                                   \
        TTFUSE_NAMED(P, "in0_cb"), TTFUSE_NAMED(P, "in1_cb"), TTFUSE_NAMED(P, "out_cb"), TTFUSE_NAMED(P, "kt"), \
        TTFUSE_NAMED(P, "nt"), TTFUSE_NAMED(P, "subblock"), TTFUSE_NAMED(P, "act"), (HW_STARTUP)>
