// What the Winograd transforms' files share (private to unet_cpu): the per-ISA compilation
// macros, the matrices of F(4x4, 3x3), tile positions and the run-time choice of instruction set.
#pragma once

#include "unet/cpu/winograd.h"

#include <cstdint>

// Each optimised transform is one always-inlined body compiled three times, for AVX-512, AVX2 +
// FMA and plain x86-64 (`UNET_TARGET`), and called through a pointer chosen once from the CPU's
// feature flags (`__builtin_cpu_supports`; GCC's target_clones would choose by CPU model instead,
// and take plain code on every CPU it does not name).
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define UNET_X86_DISPATCH 1
#define UNET_TARGET(isa) [[gnu::target(isa)]]
#else
#define UNET_TARGET(isa)
#endif
#define UNET_AVX512 UNET_TARGET("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")
#define UNET_AVX2 UNET_TARGET("avx2,fma")
// Helpers are inlined into each copy, so that they are compiled for its instruction set.
#define UNET_INLINE [[gnu::always_inline]] inline

namespace unet::cpu::detail {

inline constexpr int64_t kChannels = 16;  // channels per block: one AVX-512 vector, two AVX2 vectors

// B^T (6x6), G (6x3) and A^T (4x6) of F(4x4, 3x3), with the interpolation points 0, +-1, +-2, inf.
inline constexpr double kBT[6][6] = {{4, 0, -5, 0, 1, 0},  {0, -4, -4, 1, 1, 0}, {0, 4, -4, -1, 1, 0},
                                     {0, -2, -1, 2, 1, 0}, {0, 2, -1, -2, 1, 0}, {0, 4, 0, -5, 0, 1}};
inline constexpr double kG[6][3] = {{1.0 / 4, 0, 0},
                                    {-1.0 / 6, -1.0 / 6, -1.0 / 6},
                                    {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                                    {1.0 / 24, 1.0 / 12, 1.0 / 6},
                                    {1.0 / 24, -1.0 / 12, 1.0 / 6},
                                    {0, 0, 1}};
inline constexpr double kAT[4][6] = {
    {1, 1, 1, 1, 1, 0}, {0, 1, -1, 2, -2, 0}, {0, 1, 1, 4, 4, 0}, {0, 1, -1, 8, -8, 1}};

/// Where tile t's input block starts: image, top row and left column (may be negative: padding).
struct TileOrigin {
  int64_t image, row, col;
};

inline TileOrigin tile_origin(const WinogradGeometry& g, int64_t t, int64_t shift) {
  const int64_t per_image = g.tiles_y() * g.tiles_x(), r = t % per_image;
  return {t / per_image, (r / g.tiles_x()) * kWinogradTile - shift, (r % g.tiles_x()) * kWinogradTile - shift};
}

/// The instruction set this CPU runs the transforms with: 2 AVX-512, 1 AVX2 + FMA, 0 plain.
int isa_level();

/// `Body` (an always-inlined transform) compiled for each instruction set: the copies.
template <auto Body, typename... Args>
UNET_AVX512 void avx512_copy(Args... args) {
  Body(args...);
}
template <auto Body, typename... Args>
UNET_AVX2 void avx2_copy(Args... args) {
  Body(args...);
}
template <auto Body, typename... Args>
void plain_copy(Args... args) {
  Body(args...);
}

/// Runs `Body` through the copy for this CPU's instruction set (chosen once per transform).
template <auto Body, typename... Args>
void run_for_isa(Args... args) {
  using Copy = void (*)(Args...);
  static const Copy copies[] = {plain_copy<Body, Args...>, avx2_copy<Body, Args...>, avx512_copy<Body, Args...>};
  copies[isa_level()](args...);
}

}  // namespace unet::cpu::detail
