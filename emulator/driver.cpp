// ttfuse Tensix emulator driver: reads a job (cores, L1 contents, CBs, semaphores, tensors, one thread per
// RISC and core with the shared object its kernel was built into), runs every RISC as a thread, checks
// what each left behind, and writes back the memory the host asked for.
//
// Exit codes: 0 done, 2 a kernel broke a rule (message on stderr), 3 deadlock (report on stderr),
// 4 bad job.
#include <dlfcn.h>
#include <sys/mman.h>

#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <thread>

#include "emu/compute.hpp"

using namespace emu;

namespace {

[[noreturn]] void bad_job(const std::string& why) {
    std::fprintf(stderr, "EMU JOB: %s\n", why.c_str());
    std::_Exit(4);
}

std::vector<uint8_t> read_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) bad_job("cannot read " + path);
    return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

void write_file(const std::string& path, const uint8_t* p, size_t n) {
    std::ofstream f(path, std::ios::binary);
    f.write(reinterpret_cast<const char*>(p), std::streamsize(n));
    if (!f) bad_job("cannot write " + path);
}

struct Job {
    std::string so;
    int risc = 0, core = 0;
    std::vector<uint32_t> args, common;
    bool fp32 = false, full_sync = false;
    std::string kernel;
};

// what a finished RISC may not leave behind
void finish(Thread& t) {
    T = &t;
    for (const Pending& p : t.pending) {
        if (p.kind == Pending::Read) fail("kernel ended with a NOC read in flight (missing noc_async_read_barrier)");
        fail("kernel ended with a NOC write not waited for (missing noc_async_write_barrier)");
    }
    if (t.atomics) fail("kernel ended with %u semaphore increments in flight (missing noc_async_atomic_barrier)", t.atomics);
    if (t.compute) {
        const ComputeState& c = *t.compute;
        if (c.math_half >= 0) fail("kernel ended with DST acquired by math (missing tile_regs_commit)");
        if (!c.committed.empty() || c.pack_half >= 0)
            fail("kernel ended with DST not released by the packer (missing tile_regs_wait / tile_regs_release)");
    }
    T = nullptr;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) bad_job("usage: driver JOB");
    std::ifstream in(argv[1]);
    if (!in) bad_job(std::string("cannot read ") + argv[1]);
    Machine machine;
    M = &machine;
    std::vector<Job> jobs;
    std::vector<std::vector<uint8_t>> tensor_data;
    std::vector<std::pair<std::string, std::string>> dumps_tensor;  // slot, file
    struct DumpL1 { int core; uint32_t off, size; std::string file; };
    std::vector<DumpL1> dumps_l1;
    std::string line;
    while (std::getline(in, line)) {
        std::istringstream s(line);
        std::string kind;
        if (!(s >> kind) || kind[0] == '#') continue;
        if (kind == "cores") {
            size_t n;
            s >> n;
            machine.cores.resize(n);
            const size_t bytes = (n + 1) * size_t(kL1Window);
            void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
            if (p == MAP_FAILED) bad_job("cannot map L1 below 4 GiB");
            const uintptr_t aligned = (reinterpret_cast<uintptr_t>(p) + kL1Window - 1) / kL1Window * kL1Window;
            machine.region = reinterpret_cast<uint8_t*>(aligned);
            for (size_t i = 0; i < n; ++i) {
                machine.cores[i].index = int(i);
                machine.cores[i].l1 = machine.region + i * kL1Window;
                // untouched L1 reads as a NaN pattern: a kernel that reads what nobody wrote shows it
                std::memset(machine.cores[i].l1, 0xFF, kL1Size);
            }
        } else if (kind == "core") {
            size_t i;
            s >> i;
            Core& c = machine.cores.at(i);
            s >> c.lx >> c.ly >> c.nx >> c.ny;
        } else if (kind == "l1") {
            size_t i;
            uint32_t off;
            std::string file;
            s >> i >> off >> file;
            std::vector<uint8_t> d = read_file(file);
            if (off + d.size() > kL1Size) bad_job("l1 contents past the end of L1");
            std::memcpy(machine.cores.at(i).l1 + off, d.data(), d.size());
        } else if (kind == "zero") {
            size_t i;
            uint32_t off, size;
            s >> i >> off >> size;
            std::memset(machine.cores.at(i).l1 + off, 0, size);
        } else if (kind == "cb") {
            size_t i;
            int index, fmt;
            uint32_t off, size, page;
            s >> i >> index >> off >> size >> page >> fmt;
            CB& cb = machine.cores.at(i).cb[index];
            cb.on = true;
            cb.base = host_addr(machine.cores[i], off);
            cb.size = size;
            cb.page_size = page;
            cb.num_pages = size / page;
            cb.fmt = uint8_t(fmt);
        } else if (kind == "sem") {
            size_t i;
            uint32_t id, off, value;
            s >> i >> id >> off >> value;
            machine.cores.at(i).sem_addr[id] = off;
            std::memcpy(machine.cores[i].l1 + off, &value, 4);
        } else if (kind == "tensor") {
            Tensor t;
            int dram;
            std::string file;
            s >> t.addr >> t.page_size >> t.num_pages >> dram >> file;
            t.dram = dram != 0;
            tensor_data.push_back(read_file(file));
            if (tensor_data.back().size() != size_t(t.page_size) * t.num_pages) bad_job("tensor file size");
            machine.tensors.push_back(t);
        } else if (kind == "thread") {
            Job j;
            size_t n;
            int fp32, full;
            s >> j.so >> j.risc >> j.core >> fp32 >> full >> j.kernel >> n;
            j.fp32 = fp32, j.full_sync = full;
            j.args.resize(n);
            for (auto& a : j.args) s >> a;
            s >> n;
            j.common.resize(n);
            for (auto& a : j.common) s >> a;
            if (!s) bad_job("malformed thread line");
            jobs.push_back(std::move(j));
        } else if (kind == "dump_tensor") {
            std::string slot, file;
            s >> slot >> file;
            dumps_tensor.emplace_back(slot, file);
        } else if (kind == "dump_l1") {
            DumpL1 d;
            s >> d.core >> d.off >> d.size >> d.file;
            dumps_l1.push_back(d);
        } else {
            bad_job("unknown job line: " + line);
        }
    }
    for (size_t i = 0; i < machine.tensors.size(); ++i) machine.tensors[i].data = tensor_data[i].data();

    std::map<std::string, void (*)(Machine*, Thread*)> entries;
    std::vector<std::unique_ptr<Thread>> threads;
    std::vector<std::unique_ptr<ComputeState>> computes;
    for (const Job& j : jobs) {
        auto& entry = entries[j.so];
        if (!entry) {
            void* h = dlopen(j.so.c_str(), RTLD_NOW | RTLD_LOCAL);
            if (!h) bad_job(std::string("dlopen: ") + dlerror());
            entry = reinterpret_cast<void (*)(Machine*, Thread*)>(dlsym(h, "emu_run"));
            if (!entry) bad_job("no emu_run in " + j.so);
        }
        auto t = std::make_unique<Thread>();
        t->core = &machine.cores.at(j.core);
        t->risc = j.risc;
        t->kernel = j.kernel;
        t->args = j.args;
        t->common = j.common;
        t->fp32_dest = j.fp32, t->full_sync = j.full_sync;
        if (j.risc == TRISC) {
            computes.push_back(std::make_unique<ComputeState>());
            computes.back()->dst[0].assign(16 * kTileElems, 0.0f);
            computes.back()->dst[1].assign(16 * kTileElems, 0.0f);
            t->compute = computes.back().get();
        }
        machine.threads.push_back(t.get());
        threads.push_back(std::move(t));
    }
    std::vector<std::thread> running;
    for (size_t i = 0; i < threads.size(); ++i) {
        Thread* t = threads[i].get();
        auto entry = entries[jobs[i].so];
        running.emplace_back([t, entry, &machine] {
            entry(&machine, t);
            std::unique_lock<std::mutex> lk(machine.mu);
            finish(*t);
            t->done = true;
            if (all_stuck()) deadlock();
            machine.cv.notify_all();
        });
    }
    for (auto& r : running) r.join();

    for (auto& [slot, file] : dumps_tensor) {
        const size_t k = std::stoul(slot);
        write_file(file, tensor_data.at(k).data(), tensor_data[k].size());
    }
    for (const DumpL1& d : dumps_l1) write_file(d.file, machine.cores.at(d.core).l1 + d.off, d.size);
    return 0;
}
