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
    if constexpr (is_mm_core) {
        Matmul::Op<TTFUSE_MATMUL_READER_CT("mm_")> matmul;
        matmul();
#if defined(DUAL_MATMUL)
        Matmul::Op<TTFUSE_MATMUL_READER_CT("mm2_")> matmul2;
        matmul2();
#endif
    }
    if constexpr (is_norm_core) {
        RMSNorm::Op<TTFUSE_RMSNORM_READER_CT("rms_")> rmsnorm;
        rmsnorm();
    }
    Mcast::Op<TTFUSE_MCAST_READER_CT("mc_")> mcast;
    mcast();

#elif defined(COMPILE_FOR_BRISC)
    // the norm's own writer has nothing to do here: its output is consumed by the multicast sender
    Mcast::Op<TTFUSE_MCAST_WRITER_CT("mc_")> mcast;
    mcast();
    if constexpr (is_mm_core) {
        Matmul::Op<TTFUSE_MATMUL_WRITER_CT("mm_")> matmul;
        matmul();
#if defined(DUAL_MATMUL)
        Matmul::Op<TTFUSE_MATMUL_WRITER_CT("mm2_")> matmul2;
        matmul2();
#endif
    }

#elif defined(COMPILE_FOR_TRISC)
    if constexpr (is_norm_core) {
        RMSNorm::Op<TTFUSE_RMSNORM_COMPUTE_CT("rms_", true)> rmsnorm;
        rmsnorm();
    }
#if defined(STREAM_ACT)
    // the activation streams through a ring: one MatmulStreamed op accumulates every output (both weights)
#if defined(DUAL_MATMUL)
#define TTFUSE_MM2(NAME) TTFUSE_NAMED("mm2_", NAME)
    constexpr uint32_t num_weights = 2;
#else
#define TTFUSE_MM2(NAME) 0  // no second weight: its args are never read
    constexpr uint32_t num_weights = 1;
#endif
    using MatmulCT = MatmulStreamed::ComputeCTArgs<
        TTFUSE_NAMED("mm_", "in0_cb"), TTFUSE_NAMED("mm_", "kt"), TTFUSE_NAMED("ms_", "in0_block"),
        TTFUSE_NAMED("mm_", "in1_cb"), TTFUSE_NAMED("mm_", "out_cb"), TTFUSE_NAMED("mm_", "nt"),
        TTFUSE_NAMED("mm_", "act"), num_weights,
        TTFUSE_MM2("in1_cb"), TTFUSE_MM2("out_cb"), TTFUSE_MM2("nt"), TTFUSE_MM2("act"),
        !is_norm_core>;
#undef TTFUSE_MM2
    if constexpr (is_mm_core) {
        MatmulStreamed::Op<MatmulCT> matmul;
        matmul();
    }
#else
    if constexpr (is_mm_core) {
        // the norm did the one-time compute start-up when it shares the core
        Matmul::Op<TTFUSE_MATMUL_COMPUTE_CT("mm_", !is_norm_core)> matmul;
        matmul();
#if defined(DUAL_MATMUL)
        Matmul::Op<TTFUSE_MATMUL_COMPUTE_CT("mm2_", false)> matmul2;
        matmul2();
#endif
    }
#endif  // STREAM_ACT
#endif
}
