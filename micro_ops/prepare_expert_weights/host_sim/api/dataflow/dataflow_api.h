// ttfuse HOST SIMULATION of the subset of tt-metal's dataflow API that the PrepareExpertWeights
// kernel uses. Lets the real kernel source run on the host (NCRISC and BRISC as two threads per
// core) to check its indexing and CB protocol against the golden. It is NOT tt-metal: no NoC, no
// banks, no timing; L1 is a block mapped at a fixed address below 4 GiB so the kernel's uint32 L1
// addresses work unchanged. Interleaved tensors only: page p of a tensor is p * page_size into a
// host buffer. Every out-of-range access aborts with a message.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

#define tt_l1_ptr
#define FORCE_INLINE inline __attribute__((always_inline))

namespace ttfuse_sim {

[[noreturn]] inline void fail(const char* what, unsigned long a = 0, unsigned long b = 0) {
    std::fprintf(stderr, "SIM ERROR: %s (%lu, %lu)\n", what, a, b);
    std::fflush(stderr);
    std::abort();
}

constexpr uint32_t kCTArgs[] = {KERNEL_COMPILE_TIME_ARGS};
constexpr uint32_t kNumCTArgs = sizeof(kCTArgs) / sizeof(kCTArgs[0]);

struct CB {
    uint32_t base = 0, page_size = 0, num_pages = 0;
    uint32_t rd = 0, wr = 0, filled = 0, reserved = 0;
};

struct Tensor {
    uint8_t* data = nullptr;
    uint32_t page_size = 0, num_pages = 0;
};

// One simulated core: its CBs (shared by its two RISC threads) and the argument arrays.
struct Core {
    CB cbs[32];
    std::mutex m;
    std::condition_variable cv;
};

struct RiscContext {
    Core* core = nullptr;
    const uint32_t* args = nullptr;
    uint32_t num_args = 0;
    const uint32_t* common_args = nullptr;
    uint32_t num_common_args = 0;
};

inline thread_local RiscContext ctx;
inline Tensor tensors[4];  // indexed by the "address" the host passes in common runtime args
inline uint32_t l1_base = 0, l1_size = 0;

inline void check_l1(uint32_t addr, uint32_t size) {
    if (addr < l1_base || addr + size > l1_base + l1_size) fail("L1 access outside L1", addr, size);
}

inline uint8_t* tensor_ptr(uint32_t id, uint32_t page, uint32_t offset, uint32_t size) {
    if (id >= 4 || !tensors[id].data) fail("unknown tensor address", id);
    const Tensor& t = tensors[id];
    if (page >= t.num_pages) fail("page out of range", page, t.num_pages);
    if (offset + size > t.page_size) fail("access crosses the page end", offset, size);
    return t.data + static_cast<size_t>(page) * t.page_size + offset;
}

}  // namespace ttfuse_sim

#define get_compile_time_arg_val(i) (::ttfuse_sim::kCTArgs[(i)])

template <typename T>
inline T get_arg_val(int i) {
    if (static_cast<uint32_t>(i) >= ttfuse_sim::ctx.num_args) ttfuse_sim::fail("runtime arg index", i);
    return static_cast<T>(ttfuse_sim::ctx.args[i]);
}

template <typename T>
inline T get_common_arg_val(int i) {
    if (static_cast<uint32_t>(i) >= ttfuse_sim::ctx.num_common_args) ttfuse_sim::fail("common runtime arg index", i);
    return static_cast<T>(ttfuse_sim::ctx.common_args[i]);
}

inline ttfuse_sim::CB& sim_cb(int32_t id) {
    ttfuse_sim::CB& cb = ttfuse_sim::ctx.core->cbs[id];
    if (cb.page_size == 0) ttfuse_sim::fail("CB not configured", id);
    return cb;
}

inline void cb_reserve_back(int32_t id, int32_t n) {
    auto& core = *ttfuse_sim::ctx.core;
    std::unique_lock<std::mutex> lock(core.m);
    auto& cb = sim_cb(id);
    if (static_cast<uint32_t>(n) > cb.num_pages) ttfuse_sim::fail("reserve larger than the CB", n, cb.num_pages);
    // a reservation must be contiguous in L1: the kernel writes it from get_write_ptr() onwards
    if (cb.wr + n > cb.num_pages) ttfuse_sim::fail("reservation wraps around the CB end", cb.wr, n);
    core.cv.wait(lock, [&] { return cb.num_pages - cb.filled >= static_cast<uint32_t>(n); });
    cb.reserved = n;
}

inline void cb_push_back(int32_t id, int32_t n) {
    auto& core = *ttfuse_sim::ctx.core;
    std::lock_guard<std::mutex> lock(core.m);
    auto& cb = sim_cb(id);
    if (static_cast<uint32_t>(n) > cb.reserved) ttfuse_sim::fail("push of pages that were not reserved", n);
    cb.reserved = 0;
    cb.filled += n;
    cb.wr = (cb.wr + n) % cb.num_pages;
    core.cv.notify_all();
}

inline void cb_wait_front(int32_t id, int32_t n) {
    auto& core = *ttfuse_sim::ctx.core;
    std::unique_lock<std::mutex> lock(core.m);
    auto& cb = sim_cb(id);
    if (cb.rd + n > cb.num_pages) ttfuse_sim::fail("wait_front range wraps around the CB end", cb.rd, n);
    core.cv.wait(lock, [&] { return cb.filled >= static_cast<uint32_t>(n); });
}

inline void cb_pop_front(int32_t id, int32_t n) {
    auto& core = *ttfuse_sim::ctx.core;
    std::lock_guard<std::mutex> lock(core.m);
    auto& cb = sim_cb(id);
    if (static_cast<uint32_t>(n) > cb.filled) ttfuse_sim::fail("pop of pages that were not pushed", n);
    cb.filled -= n;
    cb.rd = (cb.rd + n) % cb.num_pages;
    core.cv.notify_all();
}

inline uint32_t get_write_ptr(int32_t id) {
    auto& cb = sim_cb(id);
    return cb.base + cb.wr * cb.page_size;
}

inline uint32_t get_read_ptr(int32_t id) {
    auto& cb = sim_cb(id);
    return cb.base + cb.rd * cb.page_size;
}

// NoC "addresses" are encoded (tensor id, page, offset) so reads and writes can be bounds-checked.
inline uint64_t sim_noc_addr(uint32_t id, uint32_t page, uint32_t offset) {
    return (static_cast<uint64_t>(id) << 56) | (static_cast<uint64_t>(page) << 24) | offset;
}

inline void noc_async_read(uint64_t src, uint32_t dst, uint32_t size, uint8_t = 0) {
    ttfuse_sim::check_l1(dst, size);
    const uint32_t id = src >> 56, page = (src >> 24) & 0xFFFFFFFFu, offset = src & 0xFFFFFFu;
    std::memcpy(reinterpret_cast<void*>(static_cast<uintptr_t>(dst)), ttfuse_sim::tensor_ptr(id, page, offset, size),
                size);
}

inline void noc_async_read_barrier(uint8_t = 0) {}
inline void noc_async_write_barrier(uint8_t = 0) {}
inline void noc_async_writes_flushed(uint8_t = 0) {}

// compile-time-arg dependent: one definition per translation unit (NCRISC and BRISC builds differ)
namespace {

template <uint32_t CTA_OFFSET>
struct TensorAccessorArgs {
    // [config word, aligned page size]: the interleaved layout ttnn.TensorAccessorArgs emits
    static constexpr uint32_t AlignedPageSize = get_compile_time_arg_val(CTA_OFFSET + 1);
};

struct TensorAccessor {
    uint32_t id = 0, page_size = 0;
    template <uint32_t O>
    TensorAccessor(const TensorAccessorArgs<O>&, uint32_t address) :
        id(address), page_size(TensorAccessorArgs<O>::AlignedPageSize) {
        if (ttfuse_sim::tensors[id].page_size != page_size) ttfuse_sim::fail("page size differs from the tensor's", page_size);
    }
    uint64_t get_noc_addr(uint32_t page, uint32_t offset = 0, uint8_t = 0) const {
        return sim_noc_addr(id, page, offset);
    }
};

}  // namespace

template <typename Accessor>
inline void noc_async_write_page(uint32_t page, const Accessor& acc, uint32_t src, uint32_t size = 0,
                                 uint32_t offset = 0, uint8_t = 0) {
    const uint32_t n = size ? size : acc.page_size;
    ttfuse_sim::check_l1(src, n);
    std::memcpy(ttfuse_sim::tensor_ptr(acc.id, page, offset, n), reinterpret_cast<void*>(static_cast<uintptr_t>(src)), n);
}
