// ttfuse Tensix emulator: kernel arguments, circular buffers, NOC transactions and semaphores, as the
// kernels of a ProgramDescriptor call them (tt-metal 0.81.1 names and signatures).
#pragma once

#include "emu/machine.hpp"

#define tt_l1_ptr
#define FORCE_INLINE inline __attribute__((always_inline))
#define ALWI inline __attribute__((always_inline))

// ---- compile-time and runtime arguments -------------------------------------------------------------------
namespace emu {
#ifndef KERNEL_COMPILE_TIME_ARGS
#define KERNEL_COMPILE_TIME_ARGS
#endif
constexpr uint32_t kCTArgs[] = {KERNEL_COMPILE_TIME_ARGS 0u};  // trailing 0: an empty list stays an array
constexpr uint32_t kNumCTArgs = sizeof(kCTArgs) / sizeof(kCTArgs[0]) - 1;

struct NamedArg {
    const char* name;
    uint32_t value;
};
#ifndef EMU_NAMED_ARGS
#define EMU_NAMED_ARGS
#endif
constexpr NamedArg kNamedArgs[] = {EMU_NAMED_ARGS{nullptr, 0u}};

constexpr bool same_name(const char* a, const char* b) {
    while (*a && *a == *b) ++a, ++b;
    return *a == *b;
}
constexpr uint32_t ct_arg(uint32_t i) {
    // out of range: not a constant expression, so the kernel does not compile (as in tt-metal)
    return i < kNumCTArgs ? kCTArgs[i] : throw "compile-time arg index out of range";
}
constexpr uint32_t named_ct_arg(const char* name) {
    for (const NamedArg& a : kNamedArgs) {
        if (a.name && same_name(a.name, name)) return a.value;
    }
    throw "named compile-time arg not in the kernel descriptor";
}
}  // namespace emu

#define get_compile_time_arg_val(i) (::emu::ct_arg(i))
#define get_named_compile_time_arg_val(name) (::emu::named_ct_arg(name))

template <typename T>
inline T get_arg_val(int i) {
    if (i < 0 || size_t(i) >= emu::T->args.size())
        emu::fail("get_arg_val(%d): this core has %zu runtime args", i, emu::T->args.size());
    return static_cast<T>(emu::T->args[i]);
}
template <typename T>
inline T get_common_arg_val(int i) {
    if (i < 0 || size_t(i) >= emu::T->common.size())
        emu::fail("get_common_arg_val(%d): the kernel has %zu common runtime args", i, emu::T->common.size());
    return static_cast<T>(emu::T->common[i]);
}
inline uint32_t get_arg_addr(int i) {
    get_arg_val<uint32_t>(i);
    return static_cast<uint32_t>(reinterpret_cast<uintptr_t>(&emu::T->args[i]));
}

// ---- circular buffers -----------------------------------------------------------------------------------
namespace emu {

inline CB& cb_of(int32_t id, const char* what) {
    if (id < 0 || id >= kNumCBs) fail("%s: CB index %d out of range", what, id);
    CB& cb = T->core->cb[id];
    if (!cb.on) fail("%s: CB %d is not configured on this core", what, id);
    return cb;
}

// a pending transaction touching [lo, hi) of this core's L1
inline bool overlaps(const uint8_t* p, uint32_t n, const uint8_t* lo, const uint8_t* hi) {
    return p < hi && lo < p + n;
}

inline void check_reads_landed(const CB& cb, uint32_t first, uint32_t n, const char* what, int32_t id) {
    uint8_t* lo = reinterpret_cast<uint8_t*>(uintptr_t(cb.base)) + size_t(first) * cb.page_size;
    uint8_t* hi = lo + size_t(n) * cb.page_size;
    for (Thread* t : M->threads) {
        if (t->core != T->core) continue;
        for (const Pending& p : t->pending)
            if (p.kind == Pending::Read && overlaps(p.dst[0], p.size, lo, hi))
                fail("%s(cb %d, %u) publishes pages that a NOC read issued by %s is still filling "
                     "(missing noc_async_read_barrier)", what, id, n, risc_name(t->risc));
    }
}

inline void check_writes_left(const CB& cb, uint32_t first, uint32_t n, int32_t id) {
    uint8_t* lo = reinterpret_cast<uint8_t*>(uintptr_t(cb.base)) + size_t(first) * cb.page_size;
    uint8_t* hi = lo + size_t(n) * cb.page_size;
    for (Thread* t : M->threads) {
        if (t->core != T->core) continue;
        for (const Pending& p : t->pending)
            if (p.kind == Pending::Write && !p.flushed && overlaps(p.src, p.size, lo, hi))
                fail("cb_pop_front(cb %d, %u) frees pages that a NOC write issued by %s still reads "
                     "(missing noc_async_writes_flushed or noc_async_write_barrier)", id, n, risc_name(t->risc));
    }
}

// n pages starting at page `at` must fit the CB without wrapping: the kernel addresses them from one pointer
inline void check_span(const CB& cb, uint32_t at, int32_t id, int32_t n, const char* what) {
    if (n <= 0 || uint32_t(n) > cb.num_pages) fail("%s(cb %d, %d): the CB holds %u pages", what, id, n, cb.num_pages);
    if (at + n > cb.num_pages)
        fail("%s(cb %d, %d) at page %u: the pages run past the CB end (%u pages); the CB size must be a multiple of "
             "every reservation and wait", what, id, n, at, cb.num_pages);
}

}  // namespace emu

inline void cb_reserve_back(int32_t id, int32_t n) {
    if (n == 0) return;  // no pages: nothing to wait for or move
    std::unique_lock<std::mutex> lk(emu::M->mu);
    emu::CB& cb = emu::cb_of(id, "cb_reserve_back");
    emu::LocalCB& me = emu::T->cb[id];
    emu::check_span(cb, me.wr, id, n, "cb_reserve_back");
    emu::block(lk, emu::format("cb_reserve_back(cb %d, %d): %u of %u pages free", id, n,
                               cb.num_pages - (cb.received - cb.acked), cb.num_pages),
               [&] { return cb.num_pages - (cb.received - cb.acked) >= uint32_t(n); });
    if (uint32_t(n) > me.reserved) me.reserved = n;
}

inline void cb_push_back(int32_t id, int32_t n) {
    if (n == 0) return;  // no pages: nothing to wait for or move
    std::unique_lock<std::mutex> lk(emu::M->mu);
    emu::CB& cb = emu::cb_of(id, "cb_push_back");
    emu::LocalCB& me = emu::T->cb[id];
    if (n <= 0 || (cb.received - cb.acked) + uint32_t(n) > cb.num_pages)
        emu::fail("cb_push_back(cb %d, %d): %u pages already pushed and not popped, capacity %u (overflow)", id, n,
                  cb.received - cb.acked, cb.num_pages);
    if (me.wr + n > cb.num_pages) emu::fail("cb_push_back(cb %d, %d) at page %u runs past the CB end", id, n, me.wr);
    // ttfuse's rule, stricter than tt-metal's API: every pushed page was reserved first (a push past the
    // reservation publishes pages whose space was never waited for: a race as soon as the CB is not empty)
    if (uint32_t(n) > me.reserved)
        emu::fail("cb_push_back(cb %d, %d) pushes more pages than were reserved (%u)", id, n, me.reserved);
    me.reserved -= n;
    emu::check_reads_landed(cb, me.wr, n, "cb_push_back", id);
    cb.received += n;
    me.wr = (me.wr + n) % cb.num_pages;
    me.packed = 0;
    emu::changed();
}

inline void cb_wait_front(int32_t id, int32_t n) {
    if (n == 0) return;  // no pages: nothing to wait for or move
    std::unique_lock<std::mutex> lk(emu::M->mu);
    emu::CB& cb = emu::cb_of(id, "cb_wait_front");
    emu::LocalCB& me = emu::T->cb[id];
    emu::check_span(cb, me.rd, id, n, "cb_wait_front");
    emu::block(lk, emu::format("cb_wait_front(cb %d, %d)", id, n),
               [&] { return cb.received - cb.acked >= uint32_t(n); });
    if (uint32_t(n) > me.waited) me.waited = n;
}

inline void cb_pop_front(int32_t id, int32_t n) {
    if (n == 0) return;  // no pages: nothing to wait for or move
    std::unique_lock<std::mutex> lk(emu::M->mu);
    emu::CB& cb = emu::cb_of(id, "cb_pop_front");
    emu::LocalCB& me = emu::T->cb[id];
    if (n <= 0 || cb.received - cb.acked < uint32_t(n))
        emu::fail("cb_pop_front(cb %d, %d): only %u pages were pushed and not popped", id, n, cb.received - cb.acked);
    if (uint32_t(n) > me.waited)
        emu::fail("cb_pop_front(cb %d, %d) pops pages this RISC did not wait for (%u waited)", id, n, me.waited);
    emu::check_writes_left(cb, me.rd, n, id);
    me.waited = me.waited > uint32_t(n) ? me.waited - n : 0;
    cb.acked += n;
    me.rd = (me.rd + n) % cb.num_pages;
    emu::changed();
}

inline uint32_t get_write_ptr(int32_t id) {
    std::unique_lock<std::mutex> lk(emu::M->mu);
    emu::CB& cb = emu::cb_of(id, "get_write_ptr");
    return cb.base + emu::T->cb[id].wr * cb.page_size;
}
inline uint32_t get_read_ptr(int32_t id) {
    std::unique_lock<std::mutex> lk(emu::M->mu);
    emu::CB& cb = emu::cb_of(id, "get_read_ptr");
    return cb.base + emu::T->cb[id].rd * cb.page_size;
}
inline bool cb_pages_available_at_front(int32_t id, int32_t n) {
    std::unique_lock<std::mutex> lk(emu::M->mu);
    emu::CB& cb = emu::cb_of(id, "cb_pages_available_at_front");
    return cb.received - cb.acked >= uint32_t(n);
}
inline bool cb_pages_reservable_at_back(int32_t id, int32_t n) {
    std::unique_lock<std::mutex> lk(emu::M->mu);
    emu::CB& cb = emu::cb_of(id, "cb_pages_reservable_at_back");
    return cb.num_pages - (cb.received - cb.acked) >= uint32_t(n);
}

#if !defined(COMPILE_FOR_TRISC)
// ---- NOC ----------------------------------------------------------------------------------------------------
// Addresses: unicast (y << 42 | x << 36 | addr), multicast rectangle (1 << 60 | y1 << 54 | x1 << 48 |
// y0 << 42 | x0 << 36 | addr), tensor page (2 << 60 | slot << 40 | byte offset). Transactions complete
// only at the barrier or flush that waits for them, so a missing one is observable.
inline uint8_t noc_index = 0;

inline uint64_t get_noc_addr(uint32_t x, uint32_t y, uint32_t addr, uint8_t = 0) {
    return (uint64_t(y & 63) << 42) | (uint64_t(x & 63) << 36) | emu::l1_offset(addr);
}
inline uint64_t get_noc_addr(uint32_t addr, uint8_t = 0) {
    return get_noc_addr(emu::T->core->nx, emu::T->core->ny, addr);
}
inline uint64_t get_noc_multicast_addr(uint32_t x0, uint32_t y0, uint32_t x1, uint32_t y1, uint32_t addr, uint8_t = 0) {
    return (uint64_t(1) << 60) | (uint64_t(y1 & 63) << 54) | (uint64_t(x1 & 63) << 48) | (uint64_t(y0 & 63) << 42) |
           (uint64_t(x0 & 63) << 36) | emu::l1_offset(addr);
}

namespace emu {

struct Target {
    std::vector<uint8_t*> ptrs;
    std::vector<Core*> cores;
};

inline Target resolve(uint64_t noc, uint32_t size, const char* what, bool allow_mcast) {
    Target t;
    const uint32_t kind = uint32_t(noc >> 60);
    if (kind == 2) {
        const uint32_t slot = uint32_t(noc >> 40) & 0xFFFFF;
        const uint64_t off = noc & ((uint64_t(1) << 40) - 1);
        if (slot >= M->tensors.size()) fail("%s: NOC address names no tensor", what);
        Tensor& ten = M->tensors[slot];
        const uint64_t page = off / ten.page_size, in_page = off % ten.page_size;
        if (page >= ten.num_pages) fail("%s: page %llu of a %u-page tensor", what, (unsigned long long)page, ten.num_pages);
        if (in_page + size > ten.page_size)
            fail("%s: %u bytes at offset %llu of page %llu cross the page end (page size %u; interleaved pages are "
                 "not contiguous)", what, size, (unsigned long long)in_page, (unsigned long long)page, ten.page_size);
        t.ptrs.push_back(ten.data + off);
        return t;
    }
    const uint32_t addr = uint32_t(noc & 0xFFFFFFFFu);
    const uint32_t x0 = uint32_t(noc >> 36) & 63, y0 = uint32_t(noc >> 42) & 63;
    uint32_t x1 = x0, y1 = y0;
    if (kind == 1) {
        if (!allow_mcast) fail("%s: a multicast address given to a unicast call", what);
        x1 = uint32_t(noc >> 48) & 63, y1 = uint32_t(noc >> 54) & 63;
        if (x1 < x0 || y1 < y0) fail("%s: multicast rectangle (%u,%u)-(%u,%u) is empty (start after end)", what, x0, y0, x1, y1);
    } else if (kind != 0) {
        fail("%s: malformed NOC address 0x%llx", what, (unsigned long long)noc);
    }
    for (uint32_t y = y0; y <= y1; ++y) {
        for (uint32_t x = x0; x <= x1; ++x) {
            Core* c = core_at_noc(x, y);
            if (!c) fail("%s: NOC (%u,%u) is not a worker core of this program", what, x, y);
            t.ptrs.push_back(l1_ptr(*c, addr, size, what));
            t.cores.push_back(c);
        }
    }
    return t;
}

inline void deliver(Pending& p) {
    if (!p.delivered)
        for (uint8_t* d : p.dst) std::memmove(d, p.data.empty() ? p.src : p.data.data(), p.size);
    p.delivered = true;
    changed();
}

// complete this RISC's transactions of one kind; `ack`: writes are forgotten (barrier) rather than only flushed
inline void complete(Pending::Kind kind, bool ack) {
    auto& v = T->pending;
    // a flush only says the source has been read; the data lands by the barrier (so flush-then-signal is a race)
    for (Pending& p : v)
        if (p.kind == kind) {
            if (kind == Pending::Write && !p.delivered && p.data.empty()) p.data.assign(p.src, p.src + p.size);
            if (ack || kind == Pending::Read) deliver(p);
            p.flushed = true;
        }
    if (ack || kind == Pending::Read) {
        std::vector<Pending> keep;
        for (Pending& p : v)
            if (p.kind != kind) keep.push_back(p);
        v.swap(keep);
    }
}

// NOC alignment: source and destination must sit at the same offset within 16 bytes (L1's NOC word)
inline void check_alignment(const uint8_t* src, const uint8_t* dst, const char* what) {
    if ((reinterpret_cast<uintptr_t>(src) ^ reinterpret_cast<uintptr_t>(dst)) & 15u)
        fail("%s: source and destination differ in 16-byte alignment (offsets %u and %u mod 16)", what,
             unsigned(reinterpret_cast<uintptr_t>(src) & 15u), unsigned(reinterpret_cast<uintptr_t>(dst) & 15u));
}

// A NOC write that reads CB memory must read pages this RISC owns right now: pages at the front it waited
// for, or pages at the back it reserved. Anything else may still be written by the producer (a race).
inline void check_source_owned(const uint8_t* src, uint32_t size, const char* what) {
    for (int id = 0; id < kNumCBs; ++id) {
        const CB& cb = T->core->cb[id];
        if (!cb.on) continue;
        const uint8_t* base = reinterpret_cast<const uint8_t*>(uintptr_t(cb.base));
        if (src < base || src + size > base + cb.size) continue;
        const LocalCB& me = T->cb[id];
        const uint32_t first = uint32_t((src - base) / cb.page_size), last = uint32_t((src + size - 1 - base) / cb.page_size);
        auto within = [&](uint32_t start, uint32_t n) {
            for (uint32_t p = first; p <= last; ++p)
                if ((p + cb.num_pages - start) % cb.num_pages >= n) return false;
            return true;
        };
        if (within(me.rd, me.waited) || within(me.wr, me.reserved)) return;
        fail("%s reads pages %u..%u of cb %d, which this RISC neither waited for (front %u, %u waited) nor reserved "
             "(back %u, %u reserved): the producer may still be writing them", what, first, last, id, me.rd,
             me.waited, me.wr, me.reserved);
    }
}

inline void issue(Pending::Kind kind, uint8_t* src, std::vector<uint8_t*> dst, uint32_t size, bool mcast) {
    if (size == 0) return;
    T->pending.push_back(Pending{kind, src, std::move(dst), size, mcast, false});
}

}  // namespace emu

inline void noc_async_read(uint64_t src, uint32_t dst, uint32_t size, uint8_t = 0) {
    std::unique_lock<std::mutex> lk(emu::M->mu);
    emu::Target s = emu::resolve(src, size, "noc_async_read (source)", false);
    uint8_t* d = emu::l1_ptr(*emu::T->core, dst, size, "noc_async_read (destination)");
    emu::check_alignment(s.ptrs[0], d, "noc_async_read");
    emu::issue(emu::Pending::Read, s.ptrs[0], {d}, size, false);
}

inline void noc_async_write(uint32_t src, uint64_t dst, uint32_t size, uint8_t = 0) {
    std::unique_lock<std::mutex> lk(emu::M->mu);
    uint8_t* s = emu::l1_ptr(*emu::T->core, src, size, "noc_async_write (source)");
    emu::Target d = emu::resolve(dst, size, "noc_async_write (destination)", false);
    emu::check_alignment(s, d.ptrs[0], "noc_async_write");
    emu::check_source_owned(s, size, "noc_async_write");
    emu::issue(emu::Pending::Write, s, d.ptrs, size, false);
}

inline void noc_async_write_multicast(uint32_t src, uint64_t dst, uint32_t size, uint32_t num_dests,
                                      bool linked = false, uint8_t = 0) {
    (void)linked;
    std::unique_lock<std::mutex> lk(emu::M->mu);
    uint8_t* s = emu::l1_ptr(*emu::T->core, src, size, "noc_async_write_multicast (source)");
    emu::Target d = emu::resolve(dst, size, "noc_async_write_multicast (destination)", true);
    // without loopback the sender does not receive its own multicast
    std::vector<uint8_t*> ptrs;
    for (size_t i = 0; i < d.cores.size(); ++i)
        if (d.cores[i] != emu::T->core) ptrs.push_back(d.ptrs[i]);
    if (ptrs.empty()) emu::fail("noc_async_write_multicast to a rectangle with no receiver (only the sender)");
    if (num_dests != ptrs.size())
        emu::fail("noc_async_write_multicast: num_dests %u but the rectangle holds %zu receivers (the sender "
                  "excluded); the NOC would wait for acks that never come or miss some", num_dests, ptrs.size());
    emu::check_alignment(s, d.ptrs[0], "noc_async_write_multicast");
    emu::check_source_owned(s, size, "noc_async_write_multicast");
    emu::issue(emu::Pending::Write, s, ptrs, size, true);
}

inline void noc_async_read_barrier(uint8_t = 0) {
    std::unique_lock<std::mutex> lk(emu::M->mu);
    emu::complete(emu::Pending::Read, true);
}
inline void noc_async_write_barrier(uint8_t = 0) {
    std::unique_lock<std::mutex> lk(emu::M->mu);
    emu::complete(emu::Pending::Write, true);
}
inline void noc_async_writes_flushed(uint8_t = 0) {
    std::unique_lock<std::mutex> lk(emu::M->mu);
    emu::complete(emu::Pending::Write, false);
}
inline void noc_async_atomic_barrier(uint8_t = 0) {
    std::unique_lock<std::mutex> lk(emu::M->mu);
    emu::T->atomics = 0;
}
inline void noc_async_full_barrier(uint8_t = 0) {
    std::unique_lock<std::mutex> lk(emu::M->mu);
    emu::complete(emu::Pending::Read, true);
    emu::complete(emu::Pending::Write, true);
    emu::T->atomics = 0;
}

// ---- semaphores -------------------------------------------------------------------------------------------
inline uint32_t get_semaphore(uint32_t id) {
    std::unique_lock<std::mutex> lk(emu::M->mu);
    emu::Core& c = *emu::T->core;
    if (id >= 16 || !c.sem_addr[id]) emu::fail("get_semaphore(%u): no such semaphore on this core", id);
    return emu::host_addr(c, c.sem_addr[id]);
}

namespace emu {
inline volatile uint32_t* sem_word(volatile uint32_t* p, const char* what) {
    l1_ptr(*T->core, uint32_t(reinterpret_cast<uintptr_t>(p)), 4, what);
    return p;
}
}  // namespace emu

inline void noc_semaphore_wait(volatile uint32_t* sem, uint32_t value) {
    std::unique_lock<std::mutex> lk(emu::M->mu);
    emu::sem_word(sem, "noc_semaphore_wait");
    emu::block(lk, emu::format("semaphore at L1 0x%x to equal %u", emu::l1_offset(uint32_t(uintptr_t(sem))), value),
               [&] { return *sem == value; });
}
inline void noc_semaphore_wait_min(volatile uint32_t* sem, uint32_t value) {
    std::unique_lock<std::mutex> lk(emu::M->mu);
    emu::sem_word(sem, "noc_semaphore_wait_min");
    emu::block(lk, emu::format("semaphore at L1 0x%x to reach %u", emu::l1_offset(uint32_t(uintptr_t(sem))), value),
               [&] { return *sem >= value; });
}
inline void noc_semaphore_set(volatile uint32_t* sem, uint32_t value) {
    std::unique_lock<std::mutex> lk(emu::M->mu);
    emu::sem_word(sem, "noc_semaphore_set");
    *sem = value;
    emu::changed();
}
inline void noc_semaphore_inc(uint64_t addr, uint32_t incr, uint8_t = 0) {
    std::unique_lock<std::mutex> lk(emu::M->mu);
    emu::Target t = emu::resolve(addr, 4, "noc_semaphore_inc", false);
    *reinterpret_cast<volatile uint32_t*>(t.ptrs[0]) += incr;
    emu::T->atomics += 1;
    emu::changed();
}
inline void noc_semaphore_set_multicast(uint32_t src, uint64_t dst, uint32_t num_dests, bool linked = false,
                                        uint8_t = 0) {
    (void)linked;
    std::unique_lock<std::mutex> lk(emu::M->mu);
    uint8_t* s = emu::l1_ptr(*emu::T->core, src, 4, "noc_semaphore_set_multicast (source)");
    emu::Target d = emu::resolve(dst, 4, "noc_semaphore_set_multicast (destination)", true);
    size_t receivers = 0;
    for (size_t i = 0; i < d.cores.size(); ++i) receivers += d.cores[i] != emu::T->core;
    if (num_dests != receivers)
        emu::fail("noc_semaphore_set_multicast: num_dests %u but the rectangle holds %zu receivers (the sender "
                  "excluded)", num_dests, receivers);
    // multicasts from one RISC on one NOC arrive in order: earlier data multicasts land first
    for (emu::Pending& p : emu::T->pending)
        if (p.kind == emu::Pending::Write && p.mcast) emu::deliver(p);
    for (size_t i = 0; i < d.cores.size(); ++i)
        if (d.cores[i] != emu::T->core) std::memcpy(d.ptrs[i], s, 4);
    emu::changed();
}

// ---- tensors ----------------------------------------------------------------------------------------------
// TensorAccessor as ttnn.TensorAccessorArgs lays out its compile-time args: [config, aligned page size] for an
// interleaved tensor; sharded adds [rank, number of banks, tensor shape in pages, shard shape in pages, bank
// NOC coordinates two per word (x << 8 | y, low half first)]. An interleaved tensor is found by its buffer
// address among the tensors the host registered (which DRAM bank holds a page is not modelled); a sharded
// page resolves to its bank core's L1, where the host placed the shards.
template <uint32_t CTA_OFFSET, uint32_t CRTA_OFFSET = 0>
struct TensorAccessorArgs {
    static constexpr uint32_t config = get_compile_time_arg_val(CTA_OFFSET);
    static_assert((config & ~3u) == 0, "emulator: tensor-accessor args given at runtime are not modelled");
    static constexpr bool is_sharded = (config & 1u) != 0;
    static constexpr bool is_dram = (config & 2u) != 0;
    static constexpr uint32_t aligned_page_size = get_compile_time_arg_val(CTA_OFFSET + 1);
    static constexpr uint32_t rank = is_sharded ? get_compile_time_arg_val(CTA_OFFSET + 2) : 0;
    static constexpr uint32_t num_banks = is_sharded ? get_compile_time_arg_val(CTA_OFFSET + 3) : 0;
    static constexpr uint32_t shapes = CTA_OFFSET + 4;
    static constexpr uint32_t coords = shapes + 2 * rank;
    static constexpr uint32_t next_compile_time_args_offset() {
        return is_sharded ? coords + (num_banks + 1) / 2 : CTA_OFFSET + 2;
    }
    static constexpr uint32_t next_common_runtime_args_offset() { return CRTA_OFFSET; }
};

struct TensorAccessor {
    uint32_t slot = 0, page_size = 0, address = 0;
    bool sharded = false;
    uint32_t rank = 0, num_banks = 0, shapes = 0, coords = 0;
    template <uint32_t A, uint32_t B>
    TensorAccessor(const TensorAccessorArgs<A, B>&, uint32_t addr, uint32_t = 0) {
        using Args = TensorAccessorArgs<A, B>;
        std::unique_lock<std::mutex> lk(emu::M->mu);
        page_size = Args::aligned_page_size;
        address = addr;
        sharded = Args::is_sharded;
        if (sharded) {
            if (Args::is_dram) emu::fail("TensorAccessor: DRAM-sharded tensors are not modelled");
            rank = Args::rank, num_banks = Args::num_banks, shapes = Args::shapes, coords = Args::coords;
            return;
        }
        for (size_t i = 0; i < emu::M->tensors.size(); ++i) {
            const emu::Tensor& t = emu::M->tensors[i];
            if (t.addr == addr && t.dram == Args::is_dram) {
                if (t.page_size != page_size)
                    emu::fail("TensorAccessor: page size %u in the compile-time args, the tensor at 0x%x has %u",
                              page_size, addr, t.page_size);
                slot = uint32_t(i);
                return;
            }
        }
        emu::fail("TensorAccessor: no %s tensor at address 0x%x", Args::is_dram ? "DRAM" : "L1", addr);
    }
    uint64_t get_noc_addr(uint32_t page, uint32_t offset = 0, uint8_t = 0) const {
        if (!sharded) return (uint64_t(2) << 60) | (uint64_t(slot) << 40) | (uint64_t(page) * page_size + offset);
        // page -> its coordinate in the tensor (in pages) -> shard and place in the shard -> bank
        uint32_t coord[8], rest = page, shard_id = 0, in_shard = 0, volume = 1, shard_volume = 1;
        if (rank > 8) emu::fail("TensorAccessor: rank %u", rank);
        for (int d = int(rank) - 1; d >= 0; --d) {
            const uint32_t n = emu::kCTArgs[shapes + d];
            coord[d] = rest % n;
            rest /= n;
            volume *= n;
        }
        if (page >= volume) emu::fail("TensorAccessor: page %u of a %u-page sharded tensor", page, volume);
        for (uint32_t d = 0; d < rank; ++d) {
            const uint32_t n = emu::kCTArgs[shapes + d], s = emu::kCTArgs[shapes + rank + d];
            shard_id = shard_id * ((n + s - 1) / s) + coord[d] / s;
            in_shard = in_shard * s + coord[d] % s;
            shard_volume *= s;
        }
        const uint32_t bank = shard_id % num_banks, local = shard_id / num_banks;
        const uint32_t word = emu::kCTArgs[coords + bank / 2], xy = (bank % 2) ? word >> 16 : word & 0xFFFFu;
        return ::get_noc_addr(xy >> 8, xy & 0xFFu, address + (local * shard_volume + in_shard) * page_size + offset);
    }
};

template <typename Accessor>
inline uint64_t get_noc_addr(uint32_t page, const Accessor& acc, uint32_t offset = 0, uint8_t = 0) {
    return acc.get_noc_addr(page, offset);
}
template <typename Accessor>
inline void noc_async_write_page(uint32_t page, const Accessor& acc, uint32_t src, uint32_t size = 0,
                                 uint32_t offset = 0, uint8_t = 0) {
    noc_async_write(src, acc.get_noc_addr(page, offset), size ? size : acc.page_size);
}
template <typename Accessor>
inline void noc_async_read_page(uint32_t page, const Accessor& acc, uint32_t dst, uint32_t offset = 0, uint8_t = 0) {
    noc_async_read(acc.get_noc_addr(page, offset), dst, acc.page_size);
}
#endif  // !COMPILE_FOR_TRISC
