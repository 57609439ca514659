// SPDX-License-Identifier: Apache-2.0
//
// RMSNorm unified kernel: one source for NCRISC (reader), BRISC (writer) and the three TRISCs.
// Each RISC reads its own named compile-time args (see micro_ops/rmsnorm/op.py).

#include "unified/rmsnorm.hpp"

KERNEL_ENTRY {
    using RMSNorm = ttfuse::ops::RMSNorm;

#if defined(COMPILE_FOR_NCRISC)
    using CTArgs = RMSNorm::ReaderCTArgs<
        get_named_compile_time_arg_val("x_cb"),
        get_named_compile_time_arg_val("gamma_rm_cb"),
        get_named_compile_time_arg_val("gamma_cb"),
        get_named_compile_time_arg_val("const_cb"),
        get_named_compile_time_arg_val("num_tiles"),
        get_named_compile_time_arg_val("push_x") != 0>;
#elif defined(COMPILE_FOR_BRISC)
    using CTArgs = RMSNorm::WriterCTArgs<
        get_named_compile_time_arg_val("out_cb"),
        get_named_compile_time_arg_val("num_tiles"),
        true>;
#elif defined(COMPILE_FOR_TRISC)
    using CTArgs = RMSNorm::ComputeCTArgs<
        get_named_compile_time_arg_val("x_cb"),
        get_named_compile_time_arg_val("gamma_cb"),
        get_named_compile_time_arg_val("const_cb"),
        get_named_compile_time_arg_val("gram_cb"),
        get_named_compile_time_arg_val("diag_cb"),
        get_named_compile_time_arg_val("rinv_cb"),
        get_named_compile_time_arg_val("out_cb"),
        get_named_compile_time_arg_val("num_tiles"),
        get_named_compile_time_arg_val("block"),
        get_named_compile_time_arg_val("inv_width_bits"),
        get_named_compile_time_arg_val("eps_bits"),
        true>;
#endif

    RMSNorm::Op<CTArgs> rmsnorm;
    rmsnorm();
}
