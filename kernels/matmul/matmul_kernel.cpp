// SPDX-License-Identifier: Apache-2.0
//
// Decode matmul unified kernel: Mcast (in0 from its core to the weight cores) + Matmul (per weight shard).
// One source for every RISC and every core role; roles come in as named compile-time args
// (see micro_ops/matmul/op.py): is_mm_core selects whether this core owns a weight shard.

#include "unified/matmul.hpp"

KERNEL_ENTRY {
    using Mcast = ttfuse::ops::Mcast;
    using Matmul = ttfuse::ops::Matmul;
    constexpr bool is_mm_core = get_named_compile_time_arg_val("is_mm_core") != 0;

#if defined(COMPILE_FOR_NCRISC)
    using McastCT = Mcast::ReaderCTArgs<
        get_named_compile_time_arg_val("mc_src_cb"),
        get_named_compile_time_arg_val("mc_push_src") != 0,
        get_named_compile_time_arg_val("mc_dst_cb"),
        get_named_compile_time_arg_val("mc_num_blocks"),
        get_named_compile_time_arg_val("mc_block_tiles"),
        get_named_compile_time_arg_val("mc_sender_x"),
        get_named_compile_time_arg_val("mc_sender_y"),
        get_named_compile_time_arg_val("mc_ready_sem"),
        get_named_compile_time_arg_val("mc_valid_sem"),
        get_named_compile_time_arg_val("mc_is_receiver") != 0>;
    using MatmulCT = Matmul::ReaderCTArgs<
        get_named_compile_time_arg_val("mm_in1_cb"),
        get_named_compile_time_arg_val("mm_in1_tiles")>;
    if constexpr (is_mm_core) {
        Matmul::Op<MatmulCT> matmul;
        matmul();  // weight shard first: it does not depend on the multicast
    }
    Mcast::Op<McastCT> mcast;
    mcast();
#elif defined(COMPILE_FOR_BRISC)
    using McastCT = Mcast::WriterCTArgs<
        get_named_compile_time_arg_val("mc_src_cb"),
        get_named_compile_time_arg_val("mc_dst_cb"),
        get_named_compile_time_arg_val("mc_num_blocks"),
        get_named_compile_time_arg_val("mc_block_tiles"),
        get_named_compile_time_arg_val("mc_slots"),
        get_named_compile_time_arg_val("mc_pop_src") != 0,
        get_named_compile_time_arg_val("mc_tile_bytes"),
        get_named_compile_time_arg_val("mc_start_x"),
        get_named_compile_time_arg_val("mc_start_y"),
        get_named_compile_time_arg_val("mc_end_x"),
        get_named_compile_time_arg_val("mc_end_y"),
        get_named_compile_time_arg_val("mc_num_dests"),
        get_named_compile_time_arg_val("mc_ready_sem"),
        get_named_compile_time_arg_val("mc_valid_sem"),
        get_named_compile_time_arg_val("mc_valid_src_sem"),
        get_named_compile_time_arg_val("mc_is_sender") != 0>;
    using MatmulCT = Matmul::WriterCTArgs<
        get_named_compile_time_arg_val("mm_out_cb"),
        get_named_compile_time_arg_val("mm_out_tiles")>;
    Mcast::Op<McastCT> mcast;
    mcast();
    if constexpr (is_mm_core) {
        Matmul::Op<MatmulCT> matmul;
        matmul();
    }
#elif defined(COMPILE_FOR_TRISC)
    using MatmulCT = Matmul::ComputeCTArgs<
        get_named_compile_time_arg_val("mm_in0_cb"),
        get_named_compile_time_arg_val("mm_in1_cb"),
        get_named_compile_time_arg_val("mm_out_cb"),
        get_named_compile_time_arg_val("mm_kt"),
        get_named_compile_time_arg_val("mm_nt"),
        get_named_compile_time_arg_val("mm_subblock"),
        get_named_compile_time_arg_val("mm_act"),
        true>;
    if constexpr (is_mm_core) {
        Matmul::Op<MatmulCT> matmul;
        matmul();
    }
#endif
}
