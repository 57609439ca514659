// ttfuse emulator stand-in for tt-metal's dataflow API (see emu/dataflow.hpp).
#pragma once
#include "emu/dataflow.hpp"
