// Kernel registry of the emulator: EMU_REGISTER(kernel) makes `kernel` callable by name with a
// cuLaunchKernel-style `void** params` (one pointer per argument, each to that argument's bytes).
#pragma once
#include <cstddef>
#include <map>
#include <string>
#include <type_traits>
#include <utility>

namespace emu {
using Invoker = void (*)(void**);
std::map<std::string, Invoker>& registry();

template <typename F> struct Arity;
template <typename... A> struct Arity<void(A...)> {
  static constexpr std::size_t value = sizeof...(A);
};

/** f(*(A0*)p[0], *(A1*)p[1], ...): each argument read from its slot with its declared type. */
template <typename... A, std::size_t... I>
void call(void (*f)(A...), void** p, std::index_sequence<I...>) {
  f(*static_cast<std::remove_cvref_t<A>*>(p[I])...);
}

struct Register {
  Register(const char* name, Invoker f) { registry()[name] = f; }
};
}  // namespace emu

#define EMU_REGISTER(kernel)                                                                  \
  static emu::Register emu_register_##kernel(#kernel, [](void** p) {                          \
    emu::call(kernel, p, std::make_index_sequence<emu::Arity<decltype(kernel)>::value>{});    \
  });
