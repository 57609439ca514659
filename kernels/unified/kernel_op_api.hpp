// SPDX-License-Identifier: Apache-2.0
//
// ttfuse unified-kernel API (tt-metal / ttnn 0.81.1 kernel API).
//
// One .cpp is compiled by tt-metal once per RISC it runs on; each build sees one of
// COMPILE_FOR_NCRISC / COMPILE_FOR_BRISC / COMPILE_FOR_TRISC=0,1,2. A micro-op is a struct with
// per-RISC compile-time-arg structs and an `Op<CTArgs>` whose body is selected per RISC, so one
// source file describes the reader, the writer and the compute side of an op, and several ops can
// be instantiated one after the other in a fused kernel.
//
// 0.81.1 differences from older examples: headers live under api/dataflow/ and api/compute/,
// and compute kernels use `void kernel_main()` like data-movement kernels (no NAMESPACE/MAIN).
#pragma once

#include <cstdint>
#include <type_traits>

#if defined(COMPILE_FOR_BRISC) || defined(COMPILE_FOR_NCRISC)
#include "api/dataflow/dataflow_api.h"
#elif defined(COMPILE_FOR_TRISC)
#include "api/compute/compute_kernel_api.h"
#include "api/compute/common.h"
#endif

namespace ttfuse {

#if defined(COMPILE_FOR_BRISC)
inline constexpr bool is_brisc = true;
#else
inline constexpr bool is_brisc = false;
#endif

#if defined(COMPILE_FOR_NCRISC)
inline constexpr bool is_ncrisc = true;
#else
inline constexpr bool is_ncrisc = false;
#endif

#if defined(COMPILE_FOR_TRISC)
inline constexpr bool is_trisc = true;
inline constexpr uint32_t trisc_index = COMPILE_FOR_TRISC;  // 0 unpack, 1 math, 2 pack
#else
inline constexpr bool is_trisc = false;
inline constexpr uint32_t trisc_index = 0xFFFFFFFFu;
#endif

inline constexpr bool is_data_movement = is_brisc || is_ncrisc;

// Pick a per-RISC type, e.g. `using CT = SelectByRISCV<ReaderCT, WriterCT, ComputeCT>;`
// ReaderConfigDescriptor builds on NCRISC, WriterConfigDescriptor on BRISC.
template <typename Reader, typename Writer, typename Compute>
using SelectByRISCV = std::conditional_t<is_ncrisc, Reader, std::conditional_t<is_brisc, Writer, Compute>>;

// Tile geometry of a 32x32 tile stored as four 16x16 faces (row-major faces, row-major inside).
inline constexpr uint32_t kTileHeight = 32;
inline constexpr uint32_t kTileWidth = 32;
inline constexpr uint32_t kFaceHeight = 16;
inline constexpr uint32_t kFaceWidth = 16;
inline constexpr uint32_t kFaceElements = kFaceHeight * kFaceWidth;

// Element index of (row, col) inside a 32x32 tile in face order.
constexpr uint32_t tile_element_index(uint32_t row, uint32_t col) {
    return ((row / kFaceHeight) * 2 + (col / kFaceWidth)) * kFaceElements + (row % kFaceHeight) * kFaceWidth +
           (col % kFaceWidth);
}

}  // namespace ttfuse

// One entry point for every RISC in 0.81.1; kept as macros so unified kernels read the same way
// whatever the tt-metal version's entry convention is.
#define KERNEL_ENTRY void kernel_main()
#define KERNEL_END

// Each op's CTArgs are read from named compile-time args that share a prefix per instance
// ("rms_", "mm_", "mm2_", or "" for a kernel with one op), so a fused kernel and a single-op kernel
// spell an op's arguments once, in the op's header: TTFUSE_NAMED("mm2_", "kt") reads "mm2_kt"
// (adjacent string literals are one literal).
#define TTFUSE_NAMED(PREFIX, NAME) get_named_compile_time_arg_val(PREFIX NAME)
