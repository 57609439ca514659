// ttfuse emulator stand-in for tt-metal's compute API header of this name (see emu/compute.hpp).
#pragma once
#include "emu/compute.hpp"
