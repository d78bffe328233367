// Stands in for CUDA's <cuda_bf16.h> in the emulator build: emu.h defines __nv_bfloat16 and its
// conversions (on the include path before any CUDA toolkit directory).
#pragma once
#include "emu.h"
