// The emulator's scheduler and launch entry point (see emu.h). A generated translation unit per
// kernel module includes emu.h, the module's .cu source and one EMU_REGISTER per PTX `.entry`.
#include "emu.h"

#include <ucontext.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "registry.h"

namespace emu {
std::map<std::string, Invoker>& registry() {
  static std::map<std::string, Invoker> r;
  return r;
}

namespace {
struct Barrier {
  unsigned expected = 0, arrived = 0;
  unsigned long generation = 0;
};
struct Fiber {
  ucontext_t ctx;
  bool done = false;
};

ucontext_t scheduler;
std::vector<Fiber> fibers;
unsigned current = 0;
unsigned long progress = 0;  // bumped by every arrival and exit: no change in a round = deadlock
Barrier block_barrier;
std::vector<Barrier> warp_barriers;
Invoker kernel = nullptr;
// Set when a barrier is reached after some threads of its scope returned: CUDA leaves that
// undefined for __syncthreads, and a shuffle would read an exited lane's stale slot.
bool partial_barrier = false;
void** kernel_params = nullptr;

void yield() { swapcontext(&fibers[current].ctx, &scheduler); }

void wait(Barrier& b) {
  progress++;
  const unsigned long g = b.generation;
  if (++b.arrived == b.expected) {
    b.arrived = 0;
    b.generation++;
    return;
  }
  while (b.generation == g) yield();
}

// An exited thread no longer counts; its leaving may complete a barrier the others wait at.
void leave(Barrier& b) {
  b.expected--;
  if (b.arrived > 0 && b.arrived == b.expected) {
    b.arrived = 0;
    b.generation++;
  }
}

void fiber_entry() {
  kernel(kernel_params);
  progress++;
  fibers[current].done = true;
  leave(block_barrier);
  leave(warp_barriers[current / 32]);
}  // returns to uc_link: the scheduler
}  // namespace

void block_sync() {
  if (block_barrier.expected != blockDim.x * blockDim.y * blockDim.z) partial_barrier = true;
  wait(block_barrier);
}
void warp_sync() {
  Barrier& b = warp_barriers[current / 32];
  const unsigned threads = blockDim.x * blockDim.y * blockDim.z, first = current / 32 * 32;
  const unsigned lanes = threads - first < 32 ? threads - first : 32;
  if (b.expected != lanes) partial_barrier = true;
  wait(b);
}
}  // namespace emu

/**
 * Runs kernel `name` over the grid like cuLaunchKernel: `params[i]` points at argument i.
 * Returns 0; -1 for an unknown kernel; -2 when the threads of a block deadlock on barriers; -3
 * when a barrier or shuffle ran after some threads of its block or warp had returned.
 */
extern "C" int emu_launch(const char* name, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                          unsigned by, unsigned bz, unsigned shared_bytes, void** params) {
  using namespace emu;
  auto it = registry().find(name);
  if (it == registry().end()) return -1;
  kernel = it->second;
  partial_barrier = false;
  kernel_params = params;
  const unsigned threads = bx * by * bz, warps = (threads + 31) / 32;
  gridDim = {gx, gy, gz};
  blockDim = {bx, by, bz};
  constexpr size_t STACK = 64 * 1024;
  // Fiber stacks, kept between launches and never cleared: zeroing up to 64 MiB per launch (1024
  // threads) was most of the emulator's time.
  static std::unique_ptr<unsigned char[]> stacks;
  static size_t stack_threads = 0;
  if (threads > stack_threads) {
    stacks.reset(new unsigned char[STACK * threads]);
    stack_threads = threads;
  }
  std::vector<unsigned char> dyn(shared_bytes + 16);
  std::vector<uint64_t> slots(32 * warps);
  fibers.assign(threads, Fiber{});
  warp_barriers.assign(warps, Barrier{});
  for (unsigned b = 0; b < gx * gy * gz; b++) {
    blockIdx = {b % gx, (b / gx) % gy, b / (gx * gy)};
    block_barrier = {threads, 0, 0};
    for (unsigned w = 0; w < warps; w++) warp_barriers[w] = {w + 1 < warps ? 32 : threads - 32 * w, 0, 0};
    dynamic_shared = dyn.data();
    for (unsigned t = 0; t < threads; t++) {
      Fiber& f = fibers[t];
      f.done = false;
      getcontext(&f.ctx);
      f.ctx.uc_stack.ss_sp = stacks.get() + STACK * t;
      f.ctx.uc_stack.ss_size = STACK;
      f.ctx.uc_link = &scheduler;
      makecontext(&f.ctx, fiber_entry, 0);
    }
    unsigned remaining = threads;
    while (remaining > 0) {
      const unsigned long before = progress;
      for (unsigned t = 0; t < threads; t++) {
        if (fibers[t].done) continue;
        current = t;
        threadIdx = {t % bx, (t / bx) % by, t / (bx * by)};
        lane = t % 32;
        warp_slots = &slots[32 * (t / 32)];
        swapcontext(&scheduler, &fibers[t].ctx);
        if (fibers[t].done) remaining--;
      }
      if (remaining > 0 && progress == before) return -2;
    }
  }
  return partial_barrier ? -3 : 0;
}
