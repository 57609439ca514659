// SPDX-License-Identifier: Apache-2.0
//
// PrepareExpertWeights micro-op: routing weights [..., K] (TILE, bf16) -> [K, 1, BS, H] (TILE, bf16)
// with out[k, 0, bs, h] = in_flat[bs, k]. Pure data movement, no compute RISC involved.
//
// An output tile row (k, j) -- tokens j*32 .. j*32+31 of expert k -- is the same 32x32 tile for every
// h-tile, so it is built once in L1 and written ceil(H/32) times (a second "edge" tile with the
// columns past H zeroed is built when H is not a multiple of 32, matching to_layout's zero padding).
//
//   NCRISC (reader): gathers the 32 tokens' weights of block j straight from the TILE input (one
//     half-tile read per distinct (input page, 16-row half); a token at input row r of its page sits
//     in face (r%32/16)*2 + k/16 at element (r%16)*16 + k%16), then writes the broadcast tile(s) into
//     the output CB in face order.
//   BRISC (writer): writes each CB tile to every output page (k*BSt + j)*Ht + h of its range
//     through a TensorAccessor (interleaved DRAM/L1 or sharded: same code).
//
// Work split: each core owns a contiguous range of output pages [first_page, first_page + num_pages)
// (runtime args); both RISCs walk the same rows of that range in blocks of TilesPerBlock rows.
#pragma once

#include "unified/kernel_op_api.hpp"

namespace ttfuse_ops {

struct PrepareExpertWeights {
    // NCRISC compile-time args: [out_cb, gather_cb, tiles_per_block, gather_page_bytes, input accessor...]
    template <uint32_t OutCB, uint32_t GatherCB, uint32_t TilesPerBlock, uint32_t GatherPageBytes,
              uint32_t InputAccessorOffset>
    struct ReaderCTArgs {
        static constexpr uint32_t out_cb = OutCB;
        static constexpr uint32_t gather_cb = GatherCB;
        static constexpr uint32_t tiles_per_block = TilesPerBlock;
        // 512: K <= 16, only the left face of each half-tile is needed; 1024: both faces
        static constexpr uint32_t gather_page_bytes = GatherPageBytes;
        static constexpr uint32_t input_accessor_offset = InputAccessorOffset;
    };

    // BRISC compile-time args: [out_cb, tiles_per_block, output accessor...]
    template <uint32_t OutCB, uint32_t TilesPerBlock, uint32_t OutputAccessorOffset>
    struct WriterCTArgs {
        static constexpr uint32_t out_cb = OutCB;
        static constexpr uint32_t tiles_per_block = TilesPerBlock;
        static constexpr uint32_t output_accessor_offset = OutputAccessorOffset;
    };

    struct ComputeCTArgs {};

    // Per-core runtime args (both RISCs): [first_page, num_pages]
    // Reader common runtime args: [input_addr, bs, k, ht, bst, h_mod_32, rows_per_slice, tiles_per_slice]
    //   rows_per_slice = input dim -2 (tokens per 2-D slice), tiles_per_slice = ceil(rows_per_slice / 32)
    // Writer common runtime args: [output_addr, ht, h_mod_32]
    static constexpr uint32_t kTileBytes = 32 * 32 * 2;  // bf16
    static constexpr uint32_t kNoSlot = 0xFFFFFFFFu;

    template <typename CTArgs>
    class Op {
    public:
        void operator()() { impl(); }

    private:
        void impl() {
            const uint32_t first_page = get_arg_val<uint32_t>(0);
            const uint32_t num_pages = get_arg_val<uint32_t>(1);
            if (num_pages == 0) {
                return;
            }
#if defined(COMPILE_FOR_NCRISC)
            reader(first_page, num_pages);
#elif defined(COMPILE_FOR_BRISC)
            writer(first_page, num_pages);
#endif
        }

#if defined(COMPILE_FOR_NCRISC)
        // Fill the gather CB with the half-tiles that hold block j's 32 tokens; remember per token
        // which gather slot and which face row carry its weights.
        template <typename Accessor>
        static void gather(
            uint32_t j,
            uint32_t bs,
            uint32_t rows_per_slice,
            uint32_t tiles_per_slice,
            const Accessor& input,
            uint32_t gather_base,
            uint32_t* slot_of,
            uint32_t* face_row_of) {
            uint32_t last_key = kNoSlot;
            uint32_t slot = kNoSlot;
            for (uint32_t t = 0; t < 32; ++t) {
                const uint32_t token = j * 32 + t;
                if (token >= bs) {
                    slot_of[t] = kNoSlot;  // padding row of the output tile: stays zero
                    continue;
                }
                const uint32_t slice = token / rows_per_slice;
                const uint32_t row = token % rows_per_slice;
                const uint32_t page = slice * tiles_per_slice + row / 32;
                const uint32_t half = (row % 32) / 16;  // faces 0,1 (rows 0-15) or 2,3 (rows 16-31)
                const uint32_t key = page * 2 + half;
                if (key != last_key) {
                    slot = slot == kNoSlot ? 0 : slot + 1;
                    noc_async_read(
                        input.get_noc_addr(page, half * 2 * 512),
                        gather_base + slot * CTArgs::gather_page_bytes,
                        CTArgs::gather_page_bytes);
                    last_key = key;
                }
                slot_of[t] = slot;
                face_row_of[t] = row % 16;
            }
            noc_async_read_barrier();
        }

        // Write the 32x32 tile whose row t is (weight of token t for expert k) everywhere, in face order.
        // Columns >= valid_cols are zero (edge tile when H % 32 != 0).
        static void fill_tile(
            uint32_t dst, uint32_t k, uint32_t valid_cols, uint32_t gather_base, const uint32_t* slot_of,
            const uint32_t* face_row_of) {
            volatile tt_l1_ptr uint32_t* out = reinterpret_cast<volatile tt_l1_ptr uint32_t*>(dst);
            const uint32_t face_col = k / 16;
            const uint32_t col = k % 16;
            for (uint32_t t = 0; t < 32; ++t) {
                uint32_t v = 0;
                if (slot_of[t] != kNoSlot) {
                    volatile tt_l1_ptr uint16_t* src = reinterpret_cast<volatile tt_l1_ptr uint16_t*>(
                        gather_base + slot_of[t] * CTArgs::gather_page_bytes);
                    v = src[face_col * 256 + face_row_of[t] * 16 + col];
                }
                const uint32_t word = v | (v << 16);
                // row t lives in faces (t/16)*2 (columns 0-15) and (t/16)*2+1 (columns 16-31); a face
                // is 128 words, a face row 8 words (two bf16 per word)
                volatile tt_l1_ptr uint32_t* left = out + ((t / 16) * 2) * 128 + (t % 16) * 8;
                volatile tt_l1_ptr uint32_t* right = left + 128;
                for (uint32_t w = 0; w < 8; ++w) {
                    // word w covers columns 2w, 2w+1 of the left face and 16+2w, 17+2w of the right
                    const uint32_t c = 2 * w;
                    left[w] = c + 1 < valid_cols ? word : (c < valid_cols ? (word & 0xFFFFu) : 0u);
                    right[w] = c + 17 < valid_cols ? word : (c + 16 < valid_cols ? (word & 0xFFFFu) : 0u);
                }
            }
        }

        static void reader(uint32_t first_page, uint32_t num_pages) {
            const uint32_t input_addr = get_common_arg_val<uint32_t>(0);
            const uint32_t bs = get_common_arg_val<uint32_t>(1);
            const uint32_t ht = get_common_arg_val<uint32_t>(3);
            const uint32_t bst = get_common_arg_val<uint32_t>(4);
            const uint32_t h_mod_32 = get_common_arg_val<uint32_t>(5);
            const uint32_t rows_per_slice = get_common_arg_val<uint32_t>(6);
            const uint32_t tiles_per_slice = get_common_arg_val<uint32_t>(7);

            constexpr auto input_args = TensorAccessorArgs<CTArgs::input_accessor_offset>();
            const auto input = TensorAccessor(input_args, input_addr);

            const uint32_t tiles_per_row = h_mod_32 ? 2 : 1;
            const uint32_t gather_base = get_write_ptr(CTArgs::gather_cb);
            uint32_t slot_of[32];
            uint32_t face_row_of[32];
            uint32_t gathered_j = kNoSlot;

            const uint32_t first_row = first_page / ht;
            const uint32_t last_row = (first_page + num_pages - 1) / ht;
            for (uint32_t row0 = first_row; row0 <= last_row; row0 += CTArgs::tiles_per_block) {
                const uint32_t rows = (last_row - row0 + 1) < CTArgs::tiles_per_block ? (last_row - row0 + 1)
                                                                                      : CTArgs::tiles_per_block;
                cb_reserve_back(CTArgs::out_cb, rows * tiles_per_row);
                const uint32_t base = get_write_ptr(CTArgs::out_cb);
                for (uint32_t i = 0; i < rows; ++i) {
                    const uint32_t row = row0 + i;
                    const uint32_t k = row / bst;
                    const uint32_t j = row % bst;
                    if (j != gathered_j) {
                        gather(j, bs, rows_per_slice, tiles_per_slice, input, gather_base, slot_of, face_row_of);
                        gathered_j = j;
                    }
                    const uint32_t dst = base + i * tiles_per_row * kTileBytes;
                    fill_tile(dst, k, 32, gather_base, slot_of, face_row_of);
                    if (h_mod_32) {
                        fill_tile(dst + kTileBytes, k, h_mod_32, gather_base, slot_of, face_row_of);
                    }
                }
                cb_push_back(CTArgs::out_cb, rows * tiles_per_row);
            }
        }
#endif

#if defined(COMPILE_FOR_BRISC)
        static void writer(uint32_t first_page, uint32_t num_pages) {
            const uint32_t output_addr = get_common_arg_val<uint32_t>(0);
            const uint32_t ht = get_common_arg_val<uint32_t>(1);
            const uint32_t h_mod_32 = get_common_arg_val<uint32_t>(2);

            constexpr auto output_args = TensorAccessorArgs<CTArgs::output_accessor_offset>();
            const auto output = TensorAccessor(output_args, output_addr);

            const uint32_t tiles_per_row = h_mod_32 ? 2 : 1;
            const uint32_t end_page = first_page + num_pages;
            const uint32_t first_row = first_page / ht;
            const uint32_t last_row = (end_page - 1) / ht;
            for (uint32_t row0 = first_row; row0 <= last_row; row0 += CTArgs::tiles_per_block) {
                const uint32_t rows = (last_row - row0 + 1) < CTArgs::tiles_per_block ? (last_row - row0 + 1)
                                                                                      : CTArgs::tiles_per_block;
                cb_wait_front(CTArgs::out_cb, rows * tiles_per_row);
                const uint32_t base = get_read_ptr(CTArgs::out_cb);
                for (uint32_t i = 0; i < rows; ++i) {
                    const uint32_t row_first = (row0 + i) * ht;
                    const uint32_t begin = row_first > first_page ? row_first : first_page;
                    const uint32_t end = row_first + ht < end_page ? row_first + ht : end_page;
                    const uint32_t full_tile = base + i * tiles_per_row * kTileBytes;
                    for (uint32_t page = begin; page < end; ++page) {
                        const bool edge = h_mod_32 && (page - row_first) == ht - 1;
                        noc_async_write_page(page, output, edge ? full_tile + kTileBytes : full_tile);
                    }
                }
                // the CB slots may be refilled once the data has left L1
                noc_async_writes_flushed();
                cb_pop_front(CTArgs::out_cb, rows * tiles_per_row);
            }
            noc_async_write_barrier();
        }
#endif
    };
};

}  // namespace ttfuse_ops
