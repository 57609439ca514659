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
        get_named_compile_time_arg_val("add_num_tiles"),
        get_named_compile_time_arg_val("add_valid_rows")>;
    using NormCT = TTFUSE_RMSNORM_READER_CT("rms_");
#elif defined(COMPILE_FOR_BRISC)
    using AddCT = ResidualAdd::WriterCTArgs<
        get_named_compile_time_arg_val("add_sum_cb"),
        get_named_compile_time_arg_val("add_num_tiles")>;
    using NormCT = TTFUSE_RMSNORM_WRITER_CT("rms_", true);
#elif defined(COMPILE_FOR_TRISC)
    using AddCT = ResidualAdd::ComputeCTArgs<
        get_named_compile_time_arg_val("add_x_cb"),
        get_named_compile_time_arg_val("add_res_cb"),
        get_named_compile_time_arg_val("add_sum_cb"),
        get_named_compile_time_arg_val("add_num_tiles"),
        get_named_compile_time_arg_val("add_block"),
        true>;
    using NormCT = TTFUSE_RMSNORM_COMPUTE_CT("rms_", false);  // the add did the compute start-up
#endif

    ResidualAdd::Op<AddCT> residual_add;
    RMSNorm::Op<NormCT> rmsnorm;
    residual_add();
    rmsnorm();
}
