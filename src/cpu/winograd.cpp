// Winograd F(4x4, 3x3) tile transforms (see include/unet/cpu/winograd.h for the method), the
// entry points of both variants' tile transforms (F(6x6, 3x3)'s are in winograd6.cpp) and the
// references of both.
//
// The optimised transforms work on a block of 16 channels of one tile at a time: the 36 input
// vectors are gathered into a small array, transformed with the matrices' nonzero entries written
// out (B^T and A^T are sparse, with entries 0, +-1, +-2, +-4, +-5, +-8), and scattered to the 36
// planes of V (or written to the output's 4x4 pixels). Every inner loop runs over the 16 channels,
// so the compiler turns it into vector instructions in each of the three copies `run_for_isa`
// makes (winograd_internal.h). The tile loops (gather, two 1D passes, scatter) are
// winograd_internal.h's templates, shared with F(6x6); this file gives them F(4x4)'s 1D passes.
// The references below them loop over the matrices in double, one channel at a time, with the
// matrices of the geometry's variant.
#include "winograd_internal.h"

#include <algorithm>

namespace unet::cpu {

using namespace detail;

namespace {

/// out[0..5] = B^T in[0..5] for each of the block's channels; `s` is the stride between the six.
UNET_INLINE void input_1d(const float* in, int64_t s, float* out, int64_t o) {
  for (int64_t c = 0; c < kChannels; ++c) {
    const float d0 = in[c], d1 = in[s + c], d2 = in[2 * s + c], d3 = in[3 * s + c], d4 = in[4 * s + c],
                d5 = in[5 * s + c];
    out[c] = 4 * d0 - 5 * d2 + d4;
    out[o + c] = (d3 + d4) - 4 * (d1 + d2);
    out[2 * o + c] = (d4 - d3) + 4 * (d1 - d2);
    out[3 * o + c] = (d4 - d2) + 2 * (d3 - d1);
    out[4 * o + c] = (d4 - d2) - 2 * (d3 - d1);
    out[5 * o + c] = 4 * d1 - 5 * d3 + d5;
  }
}

/// out[0..3] = A^T in[0..5] for each of the block's channels.
UNET_INLINE void output_1d(const float* in, int64_t s, float* out, int64_t o) {
  for (int64_t c = 0; c < kChannels; ++c) {
    const float m0 = in[c], m1 = in[s + c], m2 = in[2 * s + c], m3 = in[3 * s + c], m4 = in[4 * s + c],
                m5 = in[5 * s + c];
    const float sum12 = m1 + m2, dif12 = m1 - m2, sum34 = m3 + m4, dif34 = m3 - m4;
    out[c] = m0 + sum12 + sum34;
    out[o + c] = dif12 + 2 * dif34;
    out[2 * o + c] = sum12 + 4 * sum34;
    out[3 * o + c] = dif12 + 8 * dif34 + m5;
  }
}

UNET_INLINE void input_transform(const float* x, const WinogradGeometry& g, int64_t first, int64_t count, float* v,
                                 int64_t plane) {
  tile_input_transform<kWinogradInput, input_1d>(x, g, first, count, v, plane);
}

UNET_INLINE void output_transform(const float* m, int64_t plane, const float* bias, bool relu, const WinogradGeometry& g,
                                  int64_t first, int64_t count, float* y) {
  tile_output_transform<kWinogradTile, kWinogradInput, output_1d>(m, plane, bias, relu, g, first, count, y);
}

}  // namespace

int detail::isa_level() {
#ifdef UNET_X86_DISPATCH
  static const int level = [] {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq"))
      return 2;
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? 1 : 0;
  }();
  return level;
#else
  return 0;
#endif
}

const char* winograd_isa() {
  static const char* const names[] = {"x86-64 (no AVX2)", "AVX2+FMA", "AVX-512"};
  return names[isa_level()];
}

void winograd_input_transform(const float* x, const WinogradGeometry& g, int64_t first, int64_t count, float* v,
                              int64_t plane) {
  require_tile(g, kWinogradTile, kWinograd6Tile);
  if (g.tile == kWinograd6Tile) return winograd6_input_transform(x, g, first, count, v, plane);
  run_for_isa<input_transform>(x, g, first, count, v, plane);
}

void winograd_output_transform(const float* m, int64_t plane, const float* bias, bool relu, const WinogradGeometry& g,
                               int64_t first, int64_t count, float* y) {
  require_tile(g, kWinogradTile, kWinograd6Tile);
  if (g.tile == kWinograd6Tile) return winograd6_output_transform(m, plane, bias, relu, g, first, count, y);
  run_for_isa<output_transform>(m, plane, bias, relu, g, first, count, y);
}

namespace {

/// B^T [In][In] and A^T [Out][In] of one variant, for the references.
template <int Out, int In>
struct TileMatrices {
  const double (&bt)[In][In];
  const double (&at)[Out][In];
};

template <int Out, int In>
void input_reference(const TileMatrices<Out, In>& mat, const float* x, const WinogradGeometry& g, int64_t first,
                     int64_t count, float* v, int64_t plane) {
  const int64_t C = g.in_channels;
  for (int64_t i = 0; i < count; ++i) {
    const TileOrigin o = tile_origin(g, first + i, g.padding);
    for (int64_t c = 0; c < C; ++c) {
      double d[In][In];
      for (int a = 0; a < In; ++a) {
        for (int b = 0; b < In; ++b) {
          const int64_t row = o.row + a, col = o.col + b;
          const bool inside = row >= 0 && row < g.height && col >= 0 && col < g.width;
          d[a][b] = inside ? x[((o.image * g.height + row) * g.width + col) * C + c] : 0.0;
        }
      }
      for (int a = 0; a < In; ++a) {
        for (int b = 0; b < In; ++b) {
          double sum = 0;  // (B^T d B)[a][b]
          for (int k = 0; k < In; ++k)
            for (int l = 0; l < In; ++l) sum += mat.bt[a][k] * d[k][l] * mat.bt[b][l];
          v[(a * In + b) * plane + i * C + c] = static_cast<float>(sum);
        }
      }
    }
  }
}

template <int Out, int In>
void output_reference(const TileMatrices<Out, In>& mat, const float* m, int64_t plane, const float* bias, bool relu,
                      const WinogradGeometry& g, int64_t first, int64_t count, float* y) {
  const int64_t O = g.out_channels, H = g.out_height(), W = g.out_width();
  for (int64_t i = 0; i < count; ++i) {
    const TileOrigin o = tile_origin(g, first + i, 0);
    for (int64_t c = 0; c < O; ++c) {
      for (int a = 0; a < Out; ++a) {
        for (int b = 0; b < Out; ++b) {
          if (o.row + a >= H || o.col + b >= W) continue;
          double sum = bias != nullptr ? bias[c] : 0.0;  // (A^T m A)[a][b] + bias
          for (int k = 0; k < In; ++k)
            for (int l = 0; l < In; ++l) sum += mat.at[a][k] * m[(k * In + l) * plane + i * O + c] * mat.at[b][l];
          const double value = relu ? std::max(sum, 0.0) : sum;
          y[((o.image * H + o.row + a) * W + o.col + b) * O + c] = static_cast<float>(value);
        }
      }
    }
  }
}

}  // namespace

void winograd_input_transform_reference(const float* x, const WinogradGeometry& g, int64_t first, int64_t count,
                                        float* v, int64_t plane) {
  require_tile(g, kWinogradTile, kWinograd6Tile);
  if (g.tile == kWinograd6Tile) return input_reference(TileMatrices<6, 8>{kBT6, kAT6}, x, g, first, count, v, plane);
  input_reference(TileMatrices<4, 6>{kBT, kAT}, x, g, first, count, v, plane);
}

void winograd_output_transform_reference(const float* m, int64_t plane, const float* bias, bool relu,
                                         const WinogradGeometry& g, int64_t first, int64_t count, float* y) {
  require_tile(g, kWinogradTile, kWinograd6Tile);
  if (g.tile == kWinograd6Tile)
    return output_reference(TileMatrices<6, 8>{kBT6, kAT6}, m, plane, bias, relu, g, first, count, y);
  output_reference(TileMatrices<4, 6>{kBT, kAT}, m, plane, bias, relu, g, first, count, y);
}

}  // namespace unet::cpu
