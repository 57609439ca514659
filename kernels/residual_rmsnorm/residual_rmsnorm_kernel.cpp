// SPDX-License-Identifier: Apache-2.0
//
// Residual add + RMSNorm in one program with two outputs: s = x + residual (written to its own tensor, the
// next residual stream) and y = rmsnorm(s) * gamma. ResidualAdd::Op packs s into the s output's CB;
// RMSNorm::Op then reads that CB as its input (push_x = false: the compute side produced it).

#include "unified/rmsnorm.hpp"

KERNEL_ENTRY {
    using ResidualAdd = ttfuse::ops::ResidualAdd;
    using RMSNorm = ttfuse::ops::RMSNorm;

#if defined(COMPILE_FOR_NCRISC)
    using AddCT = ResidualAdd::ReaderCTArgs<
        get_named_compile_time_arg_val("add_x_cb"),
        get_named_compile_time_arg_val("add_res_cb"),
        get_named_compile_time_arg_val("add_num_tiles")>;
    using NormCT = RMSNorm::ReaderCTArgs<
        get_named_compile_time_arg_val("rms_x_cb"),
        get_named_compile_time_arg_val("rms_gamma_rm_cb"),
        get_named_compile_time_arg_val("rms_gamma_cb"),
        get_named_compile_time_arg_val("rms_const_cb"),
        get_named_compile_time_arg_val("rms_num_tiles"),
        get_named_compile_time_arg_val("rms_push_x") != 0>;
#elif defined(COMPILE_FOR_BRISC)
    using AddCT = ResidualAdd::WriterCTArgs<
        get_named_compile_time_arg_val("add_sum_cb"),
        get_named_compile_time_arg_val("add_num_tiles")>;
    using NormCT = RMSNorm::WriterCTArgs<
        get_named_compile_time_arg_val("rms_out_cb"),
        get_named_compile_time_arg_val("rms_num_tiles"),
        true>;
#elif defined(COMPILE_FOR_TRISC)
    using AddCT = ResidualAdd::ComputeCTArgs<
        get_named_compile_time_arg_val("add_x_cb"),
        get_named_compile_time_arg_val("add_res_cb"),
        get_named_compile_time_arg_val("add_sum_cb"),
        get_named_compile_time_arg_val("add_num_tiles"),
        get_named_compile_time_arg_val("add_block"),
        true>;
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
        false>;
#endif

    ResidualAdd::Op<AddCT> residual_add;
    RMSNorm::Op<NormCT> rmsnorm;
    residual_add();
    rmsnorm();
}
