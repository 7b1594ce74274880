// What the Winograd transforms' files share (private to unet_cpu): the per-ISA compilation
// macros, the matrices of F(4x4, 3x3) and F(6x6, 3x3), tile positions and the run-time choice of
// instruction set.
#pragma once

#include "unet/cpu/winograd.h"

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>

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

// B^T (8x8), G (8x3) and A^T (6x8) of F(6x6, 3x3), with the points 0, +-1, +-2, +-1/2, inf.
inline constexpr double kBT6[8][8] = {{1, 0, -21.0 / 4, 0, 21.0 / 4, 0, -1, 0},
                                      {0, 1, 1, -17.0 / 4, -17.0 / 4, 1, 1, 0},
                                      {0, -1, 1, 17.0 / 4, -17.0 / 4, -1, 1, 0},
                                      {0, 1.0 / 2, 1.0 / 4, -5.0 / 2, -5.0 / 4, 2, 1, 0},
                                      {0, -1.0 / 2, 1.0 / 4, 5.0 / 2, -5.0 / 4, -2, 1, 0},
                                      {0, 2, 4, -5.0 / 2, -5, 1.0 / 2, 1, 0},
                                      {0, -2, 4, 5.0 / 2, -5, -1.0 / 2, 1, 0},
                                      {0, -1, 0, 21.0 / 4, 0, -21.0 / 4, 0, 1}};
inline constexpr double kG6[8][3] = {{1, 0, 0},
                                     {-2.0 / 9, -2.0 / 9, -2.0 / 9},
                                     {-2.0 / 9, 2.0 / 9, -2.0 / 9},
                                     {1.0 / 90, 1.0 / 45, 2.0 / 45},
                                     {1.0 / 90, -1.0 / 45, 2.0 / 45},
                                     {32.0 / 45, 16.0 / 45, 8.0 / 45},
                                     {32.0 / 45, -16.0 / 45, 8.0 / 45},
                                     {0, 0, 1}};
inline constexpr double kAT6[6][8] = {{1, 1, 1, 1, 1, 1, 1, 0},
                                      {0, 1, -1, 2, -2, 1.0 / 2, -1.0 / 2, 0},
                                      {0, 1, 1, 4, 4, 1.0 / 4, 1.0 / 4, 0},
                                      {0, 1, -1, 8, -8, 1.0 / 8, -1.0 / 8, 0},
                                      {0, 1, 1, 16, 16, 1.0 / 16, 1.0 / 16, 0},
                                      {0, 1, -1, 32, -32, 1.0 / 32, -1.0 / 32, 1}};

/// Where tile t's input block starts: image, top row and left column (may be negative: padding).
struct TileOrigin {
  int64_t image, row, col;
};

inline TileOrigin tile_origin(const WinogradGeometry& g, int64_t t, int64_t shift) {
  const int64_t per_image = g.tiles_y() * g.tiles_x(), r = t % per_image;
  return {t / per_image, (r / g.tiles_x()) * g.tile - shift, (r % g.tiles_x()) * g.tile - shift};
}

/// Throws std::invalid_argument unless `g.tile` is `first` or `second` (a geometry of another variant
/// would be read with the wrong matrices).
inline void require_tile(const WinogradGeometry& g, int64_t first, int64_t second = 0) {
  if (g.tile != first && g.tile != second)
    throw std::invalid_argument("Winograd transform: output tiles of " + std::to_string(g.tile) + " are not supported here");
}

/// The end of the input-channel range first_in .. (count_in < 0: all `in_channels`).
inline int64_t range_end(int64_t in_channels, int64_t first_in, int64_t count_in) {
  return count_in < 0 ? in_channels : first_in + count_in;
}

/// The filter transforms' reference: u[(a * In + b) * plane + c * O + o] = (G f G^T)[a][b] in
/// double for every filter f of w [O][C][3][3] with c in first_in .. end - 1, G = `g` (In x 3).
template <int In>
void filter_transform_reference(const double (&g)[In][3], const float* w, int64_t out_channels, int64_t in_channels,
                                float* u, int64_t first_in, int64_t end) {
  const int64_t plane = in_channels * out_channels;
  for (int64_t c = first_in; c < end; ++c) {
    for (int64_t o = 0; o < out_channels; ++o) {
      const float* f = w + (o * in_channels + c) * 9;
      for (int a = 0; a < In; ++a) {
        for (int b = 0; b < In; ++b) {
          double sum = 0;
          for (int j = 0; j < 3; ++j)
            for (int k = 0; k < 3; ++k) sum += g[a][j] * f[j * 3 + k] * g[b][k];
          u[(a * In + b) * plane + c * out_channels + o] = static_cast<float>(sum);
        }
      }
    }
  }
}

/// F(6x6, 3x3)'s optimised tile transforms (winograd6.cpp), which the public entry points of
/// winograd.cpp call when `g.tile` is 6.
void winograd6_input_transform(const float* x, const WinogradGeometry& g, int64_t first, int64_t count, float* v,
                               int64_t plane);
void winograd6_output_transform(const float* m, int64_t plane, const float* bias, bool relu, const WinogradGeometry& g,
                                int64_t first, int64_t count, float* y);

/// V = B^T d B for tiles first .. first + count - 1 (winograd.h's `winograd_input_transform`) with
/// `Input1d` (out = B^T in over one column or row, for a block's 16 channels): the body both
/// variants' copies share, for blocks of `In` x `In`.
template <int64_t In, auto Input1d>
UNET_INLINE void tile_input_transform(const float* x, const WinogradGeometry& g, int64_t first, int64_t count, float* v,
                                      int64_t plane) {
  constexpr int64_t kIn = In, kPoints = In * In;
  const int64_t C = g.in_channels, row_stride = g.width * C;
  alignas(64) float d[kPoints * kChannels], t[kPoints * kChannels], e[kPoints * kChannels];
  for (int64_t i = 0; i < count; ++i) {
    const TileOrigin o = tile_origin(g, first + i, g.padding);
    const float* image = x + o.image * g.height * row_stride;
    const bool inside = o.row >= 0 && o.col >= 0 && o.row + kIn <= g.height && o.col + kIn <= g.width;
    for (int64_t c0 = 0; c0 < C; c0 += kChannels) {
      const int64_t n = std::min(kChannels, C - c0);
      if (inside && n == kChannels) {  // B^T over the block's rows straight from the image
        const float* corner = image + o.row * row_stride + o.col * C + c0;
        for (int64_t b = 0; b < kIn; ++b) Input1d(corner + b * C, row_stride, t + b * kChannels, kIn * kChannels);
      } else {  // padding, the ragged edge or the last channels: gather with zeros first
        for (int64_t a = 0; a < kIn; ++a) {
          for (int64_t b = 0; b < kIn; ++b) {
            const int64_t row = o.row + a, col = o.col + b;
            const bool in = row >= 0 && row < g.height && col >= 0 && col < g.width;
            const float* src = in ? image + row * row_stride + col * C + c0 : nullptr;
            float* dst = d + (a * kIn + b) * kChannels;
            for (int64_t c = 0; c < kChannels; ++c) dst[c] = in && c < n ? src[c] : 0.0f;
          }
        }
        for (int64_t b = 0; b < kIn; ++b)
          Input1d(d + b * kChannels, kIn * kChannels, t + b * kChannels, kIn * kChannels);
      }
      for (int64_t a = 0; a < kIn; ++a)
        Input1d(t + a * kIn * kChannels, kChannels, e + a * kIn * kChannels, kChannels);
      float* dst = v + i * C + c0;
      if (n == kChannels) {  // a fixed count: vector stores
        for (int64_t p = 0; p < kPoints; ++p)
          for (int64_t c = 0; c < kChannels; ++c) dst[p * plane + c] = e[p * kChannels + c];
      } else {
        for (int64_t p = 0; p < kPoints; ++p)
          for (int64_t c = 0; c < n; ++c) dst[p * plane + c] = e[p * kChannels + c];
      }
    }
  }
}

/// Writes the `Out` x `Out` outputs of one tile's 16-channel block `r` (after bias and ReLU) into
/// the image, only the pixels inside it.
template <int64_t Out>
UNET_INLINE void store_tile(const float* r, const TileOrigin& o, int64_t H, int64_t W, int64_t O, int64_t c0,
                            int64_t n, float* image) {
  constexpr int64_t kOut = Out;
  const bool inside = o.row + kOut <= H && o.col + kOut <= W;
  for (int64_t a = 0; a < kOut; ++a) {
    for (int64_t k = 0; k < kOut; ++k) {
      if (!inside && (o.row + a >= H || o.col + k >= W)) continue;
      const float* px = r + (a * kOut + k) * kChannels;
      float* dst = image + ((o.row + a) * W + o.col + k) * O + c0;
      if (n == kChannels) {
        for (int64_t c = 0; c < kChannels; ++c) dst[c] = px[c];
      } else {
        for (int64_t c = 0; c < n; ++c) dst[c] = px[c];
      }
    }
  }
}

/// y = A^T m A + bias (then ReLU) for tiles first .. first + count - 1 (winograd.h's
/// `winograd_output_transform`) with `Output1d` (out = A^T in for a block's 16 channels).
template <int64_t Out, int64_t In, auto Output1d>
UNET_INLINE void tile_output_transform(const float* m, int64_t plane, const float* bias, bool relu,
                                       const WinogradGeometry& g, int64_t first, int64_t count, float* y) {
  constexpr int64_t kOut = Out, kIn = In, kPoints = In * In;
  const int64_t O = g.out_channels, H = g.out_height(), W = g.out_width();
  alignas(64) float s[kPoints * kChannels], t[kOut * kIn * kChannels], r[kOut * kOut * kChannels];
  for (int64_t i = 0; i < count; ++i) {
    const TileOrigin o = tile_origin(g, first + i, 0);
    for (int64_t c0 = 0; c0 < O; c0 += kChannels) {
      const int64_t n = std::min(kChannels, O - c0);
      const float* src = m + i * O + c0;
      if (n == kChannels) {
        for (int64_t p = 0; p < kPoints; ++p)
          for (int64_t c = 0; c < kChannels; ++c) s[p * kChannels + c] = src[p * plane + c];
      } else {
        for (int64_t p = 0; p < kPoints; ++p)
          for (int64_t c = 0; c < kChannels; ++c) s[p * kChannels + c] = c < n ? src[p * plane + c] : 0.0f;
      }
      for (int64_t b = 0; b < kIn; ++b)
        Output1d(s + b * kChannels, kIn * kChannels, t + b * kChannels, kIn * kChannels);
      for (int64_t a = 0; a < kOut; ++a)
        Output1d(t + a * kIn * kChannels, kChannels, r + a * kOut * kChannels, kChannels);
      alignas(64) float b[kChannels] = {};
      if (bias != nullptr)
        for (int64_t c = 0; c < n; ++c) b[c] = bias[c0 + c];
      for (int64_t p = 0; p < kOut * kOut; ++p)
        for (int64_t c = 0; c < kChannels; ++c) {
          const float value = r[p * kChannels + c] + b[c];
          r[p * kChannels + c] = relu ? std::max(value, 0.0f) : value;
        }
      store_tile<Out>(r, o, H, W, O, c0, n, y + o.image * H * W * O);
    }
  }
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
