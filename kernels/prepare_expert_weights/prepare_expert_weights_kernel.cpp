// SPDX-License-Identifier: Apache-2.0
//
// PrepareExpertWeights unified kernel: the same file is built for NCRISC (ReaderConfigDescriptor)
// and BRISC (WriterConfigDescriptor); see prepare_expert_weights.hpp for the algorithm.
// Compile-time args differ per RISC (the input / output TensorAccessorArgs follow the fixed ones).

#include "unified/kernel_op_api.hpp"
#include "prepare_expert_weights/prepare_expert_weights.hpp"

KERNEL_ENTRY {
    using PEW = ttfuse_ops::PrepareExpertWeights;

#if defined(COMPILE_FOR_NCRISC)
    // [out_cb, gather_cb, tiles_per_block, gather_page_bytes, input TensorAccessorArgs...]
    using CTArgs = PEW::ReaderCTArgs<
        get_compile_time_arg_val(0),
        get_compile_time_arg_val(1),
        get_compile_time_arg_val(2),
        get_compile_time_arg_val(3),
        4>;
#elif defined(COMPILE_FOR_BRISC)
    // [out_cb, tiles_per_block, output TensorAccessorArgs...]
    using CTArgs = PEW::WriterCTArgs<get_compile_time_arg_val(0), get_compile_time_arg_val(1), 2>;
#else
    using CTArgs = PEW::ComputeCTArgs;
#endif

#if defined(COMPILE_FOR_NCRISC) || defined(COMPILE_FOR_BRISC)
    PEW::Op<CTArgs> prepare_expert_weights;
    prepare_expert_weights();
#endif
}
KERNEL_END
