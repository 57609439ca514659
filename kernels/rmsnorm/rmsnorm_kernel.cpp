// SPDX-License-Identifier: Apache-2.0
//
// RMSNorm unified kernel: one source for NCRISC (reader), BRISC (writer) and the three TRISCs.
// Each RISC reads its own named compile-time args, unprefixed (see micro_ops/rmsnorm/op.py).

#include "unified/rmsnorm.hpp"

KERNEL_ENTRY {
    using RMSNorm = ttfuse::ops::RMSNorm;

#if defined(COMPILE_FOR_NCRISC)
    using CTArgs = TTFUSE_RMSNORM_READER_CT("");
#elif defined(COMPILE_FOR_BRISC)
    using CTArgs = TTFUSE_RMSNORM_WRITER_CT("", true);
#elif defined(COMPILE_FOR_TRISC)
    using CTArgs = TTFUSE_RMSNORM_COMPUTE_CT("", true);
#endif

    RMSNorm::Op<CTArgs> rmsnorm;
    rmsnorm();
}
