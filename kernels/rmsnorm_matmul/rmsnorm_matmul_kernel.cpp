// SPDX-License-Identifier: Apache-2.0
//
// Fused RMSNorm -> Matmul (seed 002's composition): RMSNorm::Op on the norm core packs the normalized rows
// into act_cb, Mcast::Op sends act_cb to the weight cores, Matmul::Op multiplies it by each core's weight
// shard. With DUAL_MATMUL defined, a second Matmul::Op (second weight, second output, own activation)
// reuses the same multicast activation: FF1 and FF3 of an MLP from one norm.
//
// With STREAM_ACT defined the activation is not resident: the norm core packs it into a ring, the sender
// multicasts it block by block into the weight cores' rings and MatmulStreamed consumes it block by block
// (the norm core is then never a weight core).
//
// Roles are named compile-time args (micro_ops/rmsnorm_matmul/op.py): is_norm_core, is_mm_core.
// Every descriptor carries every name; args of a role a core does not play are never used.

#include "unified/rmsnorm.hpp"
#include "unified/matmul.hpp"

KERNEL_ENTRY {
    using RMSNorm = ttfuse::ops::RMSNorm;
    using Mcast = ttfuse::ops::Mcast;
    using Matmul = ttfuse::ops::Matmul;
    using MatmulStreamed = ttfuse::ops::MatmulStreamed;
    constexpr bool is_norm_core = get_named_compile_time_arg_val("is_norm_core") != 0;
    constexpr bool is_mm_core = get_named_compile_time_arg_val("is_mm_core") != 0;

#if defined(COMPILE_FOR_NCRISC)
    using NormCT = RMSNorm::ReaderCTArgs<
        get_named_compile_time_arg_val("rms_x_cb"),
        get_named_compile_time_arg_val("rms_gamma_rm_cb"),
        get_named_compile_time_arg_val("rms_gamma_cb"),
        get_named_compile_time_arg_val("rms_const_cb"),
        get_named_compile_time_arg_val("rms_num_tiles"),
        get_named_compile_time_arg_val("rms_push_x") != 0>;
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
        matmul();
#if defined(DUAL_MATMUL)
        using Matmul2CT = Matmul::ReaderCTArgs<
            get_named_compile_time_arg_val("mm2_in1_cb"),
            get_named_compile_time_arg_val("mm2_in1_tiles")>;
        Matmul::Op<Matmul2CT> matmul2;
        matmul2();
#endif
    }
    if constexpr (is_norm_core) {
        RMSNorm::Op<NormCT> rmsnorm;
        rmsnorm();
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
    // the norm's own writer has nothing to do here: its output is consumed by the multicast sender
    Mcast::Op<McastCT> mcast;
    mcast();
    if constexpr (is_mm_core) {
        Matmul::Op<MatmulCT> matmul;
        matmul();
#if defined(DUAL_MATMUL)
        using Matmul2CT = Matmul::WriterCTArgs<
            get_named_compile_time_arg_val("mm2_out_cb"),
            get_named_compile_time_arg_val("mm2_out_tiles")>;
        Matmul::Op<Matmul2CT> matmul2;
        matmul2();
#endif
    }

#elif defined(COMPILE_FOR_TRISC)
    using NormCT = RMSNorm::ComputeCTArgs<
        get_named_compile_time_arg_val("rms_x_cb"),
        get_named_compile_time_arg_val("rms_gamma_cb"),
        get_named_compile_time_arg_val("rms_const_cb"),
        get_named_compile_time_arg_val("rms_gram_cb"),
        get_named_compile_time_arg_val("rms_diag_cb"),
        get_named_compile_time_arg_val("rms_rinv_cb"),
        get_named_compile_time_arg_val("rms_out_cb"),
        get_named_compile_time_arg_val("rms_num_tiles"),
        get_named_compile_time_arg_val("rms_block"),
        get_named_compile_time_arg_val("rms_inv_width_bits"),
        get_named_compile_time_arg_val("rms_eps_bits"),
        true>;
#if defined(STREAM_ACT)
    // the activation streams through a ring: one MatmulStreamed op accumulates every output (both weights)
#if defined(DUAL_MATMUL)
    using MatmulCT = MatmulStreamed::ComputeCTArgs<
        get_named_compile_time_arg_val("mm_in0_cb"),
        get_named_compile_time_arg_val("mm_kt"),
        get_named_compile_time_arg_val("ms_in0_block"),
        get_named_compile_time_arg_val("mm_in1_cb"),
        get_named_compile_time_arg_val("mm_out_cb"),
        get_named_compile_time_arg_val("mm_nt"),
        get_named_compile_time_arg_val("mm_act"),
        2,
        get_named_compile_time_arg_val("mm2_in1_cb"),
        get_named_compile_time_arg_val("mm2_out_cb"),
        get_named_compile_time_arg_val("mm2_nt"),
        get_named_compile_time_arg_val("mm2_act"),
        !is_norm_core>;
#else
    using MatmulCT = MatmulStreamed::ComputeCTArgs<
        get_named_compile_time_arg_val("mm_in0_cb"),
        get_named_compile_time_arg_val("mm_kt"),
        get_named_compile_time_arg_val("ms_in0_block"),
        get_named_compile_time_arg_val("mm_in1_cb"),
        get_named_compile_time_arg_val("mm_out_cb"),
        get_named_compile_time_arg_val("mm_nt"),
        get_named_compile_time_arg_val("mm_act"),
        1, 0, 0, 0, 0,  // no second weight
        !is_norm_core>;
#endif
    if constexpr (is_norm_core) {
        RMSNorm::Op<NormCT> rmsnorm;
        rmsnorm();
    }
    if constexpr (is_mm_core) {
        MatmulStreamed::Op<MatmulCT> matmul;
        matmul();
    }
#else
    using MatmulCT = Matmul::ComputeCTArgs<
        get_named_compile_time_arg_val("mm_in0_cb"),
        get_named_compile_time_arg_val("mm_in1_cb"),
        get_named_compile_time_arg_val("mm_out_cb"),
        get_named_compile_time_arg_val("mm_kt"),
        get_named_compile_time_arg_val("mm_nt"),
        get_named_compile_time_arg_val("mm_subblock"),
        get_named_compile_time_arg_val("mm_act"),
        !is_norm_core>;  // the norm did the one-time hardware start-up on its core
    if constexpr (is_norm_core) {
        RMSNorm::Op<NormCT> rmsnorm;
        rmsnorm();
    }
    if constexpr (is_mm_core) {
        Matmul::Op<MatmulCT> matmul;
        matmul();
#if defined(DUAL_MATMUL)
        using Matmul2CT = Matmul::ComputeCTArgs<
            get_named_compile_time_arg_val("mm2_in0_cb"),
            get_named_compile_time_arg_val("mm2_in1_cb"),
            get_named_compile_time_arg_val("mm2_out_cb"),
            get_named_compile_time_arg_val("mm2_kt"),
            get_named_compile_time_arg_val("mm2_nt"),
            get_named_compile_time_arg_val("mm2_subblock"),
            get_named_compile_time_arg_val("mm2_act"),
            false>;
        Matmul::Op<Matmul2CT> matmul2;
        matmul2();
#endif
    }
#endif  // STREAM_ACT
#endif
}
