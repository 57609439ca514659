// ttfuse Tensix emulator: the state every emulated RISC shares, and the blocking / deadlock machinery.
//
// Each (kernel, RISC) build is a shared object of its own (hidden symbols), so the same inline names may
// differ per build; they meet only through the Machine below, which the driver owns and binds into each
// build before its kernel_main runs. Everything mutable is guarded by one mutex: the emulator is about
// protocol and numerics, not speed, and one lock makes the deadlock check exact (see block()).
#pragma once

#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

namespace emu {

constexpr uint32_t kL1Window = 2u << 20;     // each core's L1 sits in its own 2 MiB window of host memory
constexpr uint32_t kL1Size = 1464u * 1024;   // Wormhole worker L1
constexpr int kNumCBs = 32;
constexpr int kTileElems = 1024;

enum Risc : int { NCRISC = 0, BRISC = 1, TRISC = 2 };
inline const char* risc_name(int r) { return r == NCRISC ? "NCRISC" : r == BRISC ? "BRISC" : "TRISC"; }

// tt::DataFormat codes (ProgramDescriptor's data_format_as_uint8)
enum Fmt : uint8_t { Float32 = 0, Float16 = 1, Bfp8 = 2, Bfp4 = 3, Tf32 = 4, Float16_b = 5, Bfp8_b = 6, Bfp4_b = 7,
                     Int32 = 8, UInt16 = 9, UInt32 = 24, UInt8 = 30, NoFmt = 255 };
inline const char* fmt_name(uint8_t f) {
    switch (f) {
        case Float32: return "Float32"; case Float16_b: return "Float16_b"; case Bfp8_b: return "Bfp8_b";
        case Bfp4_b: return "Bfp4_b"; case Float16: return "Float16"; case UInt32: return "UInt32";
        case UInt16: return "UInt16"; case Int32: return "Int32"; case NoFmt: return "unset";
        default: return "other";
    }
}

struct CB {                       // a core's CB: what tt-metal keeps in L1 and the CB config
    bool on = false;
    uint32_t base = 0, size = 0, page_size = 0, num_pages = 0;  // base: host address (32-bit)
    uint8_t fmt = NoFmt;
    uint32_t received = 0, acked = 0;                           // shared page counters
};

struct LocalCB {                  // one RISC's own view of a CB: its read / write pointers
    uint32_t rd = 0, wr = 0;      // page index
    uint32_t packed = 0;          // tiles packed into the current reservation (compute)
    uint32_t reserved = 0;        // pages reserved at the back and not pushed yet
    uint32_t waited = 0;          // pages at the front this RISC waited for and has not popped
};

struct Pending {                  // a NOC transaction issued and not yet completed
    enum Kind : uint8_t { Read, Write } kind;
    uint8_t* src;
    std::vector<uint8_t*> dst;    // several for a multicast
    uint32_t size;
    bool mcast = false;
    bool delivered = false;       // the data is at its destination(s)
    bool flushed = false;         // writes: the issuing RISC knows the source was read (flush or barrier)
    std::vector<uint8_t> data;    // writes: the source as the NOC read it (captured at the flush)
};

struct Core {
    int index = 0, lx = 0, ly = 0, nx = 0, ny = 0;   // logical and NOC coordinates
    uint8_t* l1 = nullptr;
    CB cb[kNumCBs];
    uint32_t sem_addr[16] = {};                     // semaphore id -> L1 offset (0: none)
    std::vector<std::pair<uint32_t, uint32_t>> l1_buffers;  // tensor shards: (offset, size)
};

struct Tensor {                   // an interleaved tensor reached through a TensorAccessor
    uint32_t addr = 0, page_size = 0, num_pages = 0;
    bool dram = true;
    uint8_t* data = nullptr;
};

struct ComputeState;              // emu/compute.hpp

struct Thread {                   // one emulated RISC of one core
    Core* core = nullptr;
    int risc = 0;
    std::string kernel;           // kernel source name, for messages
    std::vector<uint32_t> args, common;
    LocalCB cb[kNumCBs];
    std::vector<Pending> pending;
    uint32_t atomics = 0;         // semaphore increments not yet waited for
    bool blocked = false, done = false;
    std::string waiting;
    std::function<bool()> ready;
    ComputeState* compute = nullptr;
    // compute config of the kernel (TRISC)
    bool fp32_dest = false, full_sync = false;
};

struct Machine {
    std::mutex mu;
    std::condition_variable cv;
    std::vector<Core> cores;
    std::vector<Thread*> threads;
    std::vector<Tensor> tensors;
    uint8_t* region = nullptr;    // cores[i].l1 == region + i * kL1Window
};

inline Machine* M = nullptr;              // per build (hidden): set by emu_bind
inline thread_local Thread* T = nullptr;

[[noreturn]] inline void vfail(const char* kind, int code, const char* fmt, va_list ap) {
    char msg[2048];
    std::vsnprintf(msg, sizeof msg, fmt, ap);
    if (T) {
        std::fprintf(stderr, "EMU %s: core (%d,%d) %s [%s]: %s\n", kind, T->core->lx, T->core->ly,
                     risc_name(T->risc), T->kernel.c_str(), msg);
    } else {
        std::fprintf(stderr, "EMU %s: %s\n", kind, msg);
    }
    std::fflush(stderr);
    std::_Exit(code);
}

// A kernel broke a rule silicon would punish (hang, corruption, wrong data): stop the whole run.
[[noreturn]] inline void fail(const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vfail("ERROR", 2, fmt, ap);
}

inline std::string format(const char* fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return buf;
}

// Every thread that is not done is blocked on a condition that is false: nothing can ever progress.
inline bool all_stuck() {
    bool any = false;
    for (Thread* t : M->threads) {
        if (t->done) continue;
        any = true;
        if (!t->blocked || t->ready()) return false;
    }
    return any;
}

[[noreturn]] inline void deadlock() {
    std::fprintf(stderr, "EMU DEADLOCK: no RISC can make progress\n");
    for (Thread* t : M->threads) {
        if (t->done) continue;
        std::fprintf(stderr, "  core (%d,%d) %s [%s] waits for %s\n", t->core->lx, t->core->ly, risc_name(t->risc),
                     t->kernel.c_str(), t->waiting.c_str());
    }
    std::fflush(stderr);
    std::_Exit(3);
}

// Wait (lock held) until ready() holds. Exact deadlock detection: every state change happens under the
// lock, and the last thread to block (or to finish) sees that no other can progress.
template <class Ready>
inline void block(std::unique_lock<std::mutex>& lk, const std::string& what, Ready ready) {
    if (ready()) return;
    T->blocked = true;
    T->waiting = what;
    T->ready = ready;
    while (!ready()) {
        if (all_stuck()) deadlock();
        // kernels may also store to L1 directly (a semaphore word) without any call that notifies: look again
        M->cv.wait_for(lk, std::chrono::milliseconds(20));
    }
    T->blocked = false;
    T->ready = nullptr;
}

inline void changed() { M->cv.notify_all(); }

// --- addresses ------------------------------------------------------------------------------------------
// A kernel sees L1 addresses as 32-bit host addresses inside its core's window (get_write_ptr and friends
// return those), or as plain L1 offsets (tensor and semaphore addresses from the host). Both resolve here.

inline uint32_t l1_offset(uint32_t addr) {
    const uintptr_t base = reinterpret_cast<uintptr_t>(M->region);
    if (addr >= base) return static_cast<uint32_t>((addr - base) % kL1Window);
    return addr;
}

inline uint8_t* l1_ptr(Core& c, uint32_t addr, uint32_t size, const char* what) {
    const uintptr_t base = reinterpret_cast<uintptr_t>(M->region);
    if (addr >= base) {
        const uintptr_t core = (addr - base) / kL1Window;
        if (core != static_cast<uintptr_t>(c.index) && T && c.index == T->core->index)
            fail("%s: address 0x%x is in the L1 of another core (%d), not this core's", what, addr, int(core));
    }
    const uint32_t off = l1_offset(addr);
    if (off < 16 || uint64_t(off) + size > kL1Size)
        fail("%s: L1 range [0x%x, +%u) is outside L1 (%u bytes)", what, off, size, kL1Size);
    return c.l1 + off;
}

inline uint32_t host_addr(Core& c, uint32_t offset) {
    return static_cast<uint32_t>(reinterpret_cast<uintptr_t>(c.l1) + offset);
}

inline Core* core_at_noc(uint32_t x, uint32_t y) {
    for (Core& c : M->cores)
        if (uint32_t(c.nx) == x && uint32_t(c.ny) == y) return &c;
    return nullptr;
}

}  // namespace emu
