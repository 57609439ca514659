// ttfuse host simulation driver: runs a dataflow kernel pair (NCRISC reader + BRISC writer, built
// from the real kernel source against api/dataflow/dataflow_api.h in this folder) core by core.
// Job file (text, one item per line):
//   l1 <bytes>
//   tensor <id> <page_size> <num_pages> <input file | ->      ('-' = filled with 0xFF bytes)
//   cb <index> <page_size> <num_pages>
//   reader_common <n> <args...>     writer_common <n> <args...>
//   core <n> <args...>              (per-core runtime args, same for both RISCs)
// Writes tensor 1 to argv[2].
#include <sys/mman.h>

#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "api/dataflow/dataflow_api.h"

void ttfuse_ncrisc_main();
void ttfuse_brisc_main();

int main(int argc, char** argv) {
    if (argc != 3) ttfuse_sim::fail("usage: sim job_file output_file");
    std::ifstream job(argv[1]);
    std::string line, kind;
    std::vector<std::vector<uint8_t>> storage(4);
    std::vector<std::pair<uint32_t, std::pair<uint32_t, uint32_t>>> cbs;
    std::vector<uint32_t> reader_common, writer_common;
    std::vector<std::vector<uint32_t>> cores;
    uint32_t l1 = 0;
    auto read_list = [](std::istringstream& in) {
        uint32_t n;
        in >> n;
        std::vector<uint32_t> v(n);
        for (auto& x : v) in >> x;
        return v;
    };
    while (std::getline(job, line)) {
        std::istringstream in(line);
        in >> kind;
        if (kind == "l1") {
            in >> l1;
        } else if (kind == "tensor") {
            uint32_t id, page, pages;
            std::string file;
            in >> id >> page >> pages >> file;
            storage[id].assign(static_cast<size_t>(page) * pages, 0xFF);
            if (file != "-") {
                std::ifstream f(file, std::ios::binary);
                f.read(reinterpret_cast<char*>(storage[id].data()), storage[id].size());
                if (static_cast<size_t>(f.gcount()) != storage[id].size()) ttfuse_sim::fail("short tensor file", id);
            }
            ttfuse_sim::tensors[id] = {storage[id].data(), page, pages};
        } else if (kind == "cb") {
            uint32_t idx, page, pages;
            in >> idx >> page >> pages;
            cbs.push_back({idx, {page, pages}});
        } else if (kind == "reader_common") {
            reader_common = read_list(in);
        } else if (kind == "writer_common") {
            writer_common = read_list(in);
        } else if (kind == "core") {
            cores.push_back(read_list(in));
        }
    }
    // L1 below 4 GiB: kernels hold L1 addresses in uint32_t
    const uintptr_t want = 0x20000000;
    void* mem = mmap(reinterpret_cast<void*>(want), l1, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (mem != reinterpret_cast<void*>(want)) ttfuse_sim::fail("cannot map simulated L1");
    ttfuse_sim::l1_base = static_cast<uint32_t>(want);
    ttfuse_sim::l1_size = l1;

    for (const auto& args : cores) {
        ttfuse_sim::Core core;
        std::memset(mem, 0xA5, l1);  // stale L1 contents: a read of unwritten scratch shows up
        uint32_t next = ttfuse_sim::l1_base;
        for (const auto& [idx, geom] : cbs) {
            auto& cb = core.cbs[idx];
            cb.base = next;
            cb.page_size = geom.first;
            cb.num_pages = geom.second;
            next += ((geom.first * geom.second + 31) / 32) * 32;
        }
        if (next > ttfuse_sim::l1_base + l1) ttfuse_sim::fail("CBs exceed L1", next - ttfuse_sim::l1_base, l1);
        auto run = [&](void (*entry)(), const std::vector<uint32_t>& common) {
            ttfuse_sim::ctx = {&core, args.data(), static_cast<uint32_t>(args.size()), common.data(),
                               static_cast<uint32_t>(common.size())};
            entry();
        };
        std::thread reader(run, ttfuse_ncrisc_main, std::cref(reader_common));
        std::thread writer(run, ttfuse_brisc_main, std::cref(writer_common));
        reader.join();
        writer.join();
        for (const auto& [idx, geom] : cbs) {
            if (core.cbs[idx].filled != 0) ttfuse_sim::fail("pages left in a CB at kernel end", idx, core.cbs[idx].filled);
        }
    }
    std::ofstream out(argv[2], std::ios::binary);
    out.write(reinterpret_cast<const char*>(storage[1].data()), storage[1].size());
    return 0;
}
