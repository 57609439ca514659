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
    if constexpr (is_mm_core) {
        Matmul::Op<TTFUSE_MATMUL_READER_CT("mm_")> matmul;
        matmul();  // weight shard first: it does not depend on the multicast
    }
    Mcast::Op<TTFUSE_MCAST_READER_CT("mc_")> mcast;
    mcast();
#elif defined(COMPILE_FOR_BRISC)
    Mcast::Op<TTFUSE_MCAST_WRITER_CT("mc_")> mcast;
    mcast();
    if constexpr (is_mm_core) {
        Matmul::Op<TTFUSE_MATMUL_WRITER_CT("mm_")> matmul;
        matmul();
    }
#elif defined(COMPILE_FOR_TRISC)
    if constexpr (is_mm_core) {
        Matmul::Op<TTFUSE_MATMUL_COMPUTE_CT("mm_", true)> matmul;
        matmul();
    }
#endif
}
