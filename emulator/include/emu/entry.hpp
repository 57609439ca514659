// Forced first include of every emulated kernel build: binds the build to the driver's Machine and runs
// the kernel's entry point on the calling thread.
#pragma once

#if defined(COMPILE_FOR_TRISC)
#include "emu/compute.hpp"
#else
#include "emu/dataflow.hpp"
#endif

void kernel_main();

extern "C" __attribute__((visibility("default"))) void emu_run(emu::Machine* m, emu::Thread* t) {
    emu::M = m;
    emu::T = t;
    kernel_main();
}
