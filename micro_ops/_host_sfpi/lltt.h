// ttfuse HOST stand-in for the SFPI toolchain's lltt.h (replay-buffer helpers).
// The real header ships with the RISC-V SFPI compiler, which is not available here. This file
// only declares the names the LLK headers use so `g++ -fsyntax-only` can parse compute kernels;
// it is never used to build anything that runs. Installed by micro_ops/mock_device.py.
#pragma once
#include <cstdint>

namespace lltt {
enum ExecBool : bool { NoExec = false, Exec = true };

template <ExecBool E = NoExec>
inline void record(std::uint32_t /*start*/, std::uint32_t /*len*/) {}

inline void replay(std::uint32_t /*start*/, std::uint32_t /*len*/) {}

constexpr std::uint32_t replay_insn(std::uint32_t start, std::uint32_t len) { return (start << 8) | len; }
}  // namespace lltt
