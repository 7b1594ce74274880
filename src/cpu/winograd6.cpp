// Winograd F(6x6, 3x3) transforms for inference (see include/unet/cpu/winograd.h for the method).
//
// Why a second variant: F(4x4, 3x3) leaves 36 products per 16 outputs; F(6x6, 3x3) does 64 per 36,
// so both the matrix products and the transformed data that the products read and write shrink by
// a fifth per output pixel, and on layers whose time goes to those (many channels, large maps) it
// is faster. Its transforms cost more per tile (8x8 blocks) and round more, so conv_plan.h chooses
// it per layer and the tests bound its error against float64.
//
// Same scheme and the same tile loops as winograd.cpp (winograd_internal.h's templates): 16
// channels of one tile at a time, the 1D transforms written out
// with the matrices' even/odd symmetry (rows 1/2, 3/4 and 5/6 of B^T and of G differ only in the
// sign of their odd terms), every inner loop over the 16 channels, compiled per instruction set
// by `run_for_isa`. The references read the matrices of either variant: the tile transforms'
// are winograd.cpp's, the filter transform's winograd_internal.h's.
#include "winograd_internal.h"

#include <algorithm>

namespace unet::cpu {

using namespace detail;

namespace {

constexpr int64_t kIn = 8, kOut = 6, kPoints = kWinograd6Points;

/// out[0..7] = B^T in[0..7] for each of the block's channels; `s`, `o`: strides of in and out.
UNET_INLINE void input_1d(const float* in, int64_t s, float* out, int64_t o) {
  for (int64_t c = 0; c < kChannels; ++c) {
    const float d0 = in[c], d1 = in[s + c], d2 = in[2 * s + c], d3 = in[3 * s + c], d4 = in[4 * s + c],
                d5 = in[5 * s + c], d6 = in[6 * s + c], d7 = in[7 * s + c];
    out[c] = (d0 - d6) + 5.25f * (d4 - d2);
    out[7 * o + c] = (d7 - d1) + 5.25f * (d3 - d5);
    const float a12 = (d2 + d6) - 4.25f * d4, b12 = (d1 + d5) - 4.25f * d3;
    out[o + c] = a12 + b12;
    out[2 * o + c] = a12 - b12;
    const float a34 = (d6 + 0.25f * d2) - 1.25f * d4, b34 = (0.5f * d1 - 2.5f * d3) + 2.0f * d5;
    out[3 * o + c] = a34 + b34;
    out[4 * o + c] = a34 - b34;
    const float a56 = d6 + 4.0f * (d2 - 1.25f * d4), b56 = (2.0f * d1 - 2.5f * d3) + 0.5f * d5;
    out[5 * o + c] = a56 + b56;
    out[6 * o + c] = a56 - b56;
  }
}

/// out[0..5] = A^T in[0..7] for each of the block's channels.
UNET_INLINE void output_1d(const float* in, int64_t s, float* out, int64_t o) {
  for (int64_t c = 0; c < kChannels; ++c) {
    const float m0 = in[c], m1 = in[s + c], m2 = in[2 * s + c], m3 = in[3 * s + c], m4 = in[4 * s + c],
                m5 = in[5 * s + c], m6 = in[6 * s + c], m7 = in[7 * s + c];
    const float sum12 = m1 + m2, dif12 = m1 - m2, sum34 = m3 + m4, dif34 = m3 - m4, sum56 = m5 + m6,
                dif56 = m5 - m6;
    out[c] = m0 + sum12 + sum34 + sum56;
    out[o + c] = dif12 + 2.0f * dif34 + 0.5f * dif56;
    out[2 * o + c] = sum12 + 4.0f * sum34 + 0.25f * sum56;
    out[3 * o + c] = dif12 + 8.0f * dif34 + 0.125f * dif56;
    out[4 * o + c] = sum12 + 16.0f * sum34 + 0.0625f * sum56;
    out[5 * o + c] = dif12 + 32.0f * dif34 + 0.03125f * dif56 + m7;
  }
}

/// out[0..7] = G in[0..2] for each of the block's channels.
UNET_INLINE void filter_1d(const float* in, int64_t s, float* out, int64_t o) {
  for (int64_t c = 0; c < kChannels; ++c) {
    const float g0 = in[c], g1 = in[s + c], g2 = in[2 * s + c];
    out[c] = g0;
    out[o + c] = (g0 + g1 + g2) * (-2.0f / 9);
    out[2 * o + c] = (g0 - g1 + g2) * (-2.0f / 9);
    const float even34 = g0 * (1.0f / 90) + g2 * (2.0f / 45), odd34 = g1 * (1.0f / 45);
    out[3 * o + c] = even34 + odd34;
    out[4 * o + c] = even34 - odd34;
    const float even56 = g0 * (32.0f / 45) + g2 * (8.0f / 45), odd56 = g1 * (16.0f / 45);
    out[5 * o + c] = even56 + odd56;
    out[6 * o + c] = even56 - odd56;
    out[7 * o + c] = g2;
  }
}

UNET_INLINE void input_transform(const float* x, const WinogradGeometry& g, int64_t first, int64_t count, float* v,
                                 int64_t plane) {
  tile_input_transform<kIn, input_1d>(x, g, first, count, v, plane);
}

UNET_INLINE void output_transform(const float* m, int64_t plane, const float* bias, bool relu, const WinogradGeometry& g,
                                  int64_t first, int64_t count, float* y) {
  tile_output_transform<kOut, kIn, output_1d>(m, plane, bias, relu, g, first, count, y);
}

UNET_INLINE void filter_transform(const float* w, int64_t O, int64_t C, float* u, int64_t first, int64_t end) {
  const int64_t plane = C * O;
  alignas(64) float f[9 * kChannels], t[kIn * 3 * kChannels], r[kPoints * kChannels];
  for (int64_t c = first; c < end; ++c) {
    for (int64_t o0 = 0; o0 < O; o0 += kChannels) {
      const int64_t n = std::min(kChannels, O - o0);
      for (int64_t k = 0; k < 9; ++k)
        for (int64_t j = 0; j < kChannels; ++j) f[k * kChannels + j] = j < n ? w[((o0 + j) * C + c) * 9 + k] : 0.0f;
      // f[row][col]: G over the rows gives t[a][col], then over the columns r[a][b].
      for (int64_t col = 0; col < 3; ++col)
        filter_1d(f + col * kChannels, 3 * kChannels, t + col * kChannels, 3 * kChannels);
      for (int64_t a = 0; a < kIn; ++a) filter_1d(t + a * 3 * kChannels, kChannels, r + a * kIn * kChannels, kChannels);
      float* dst = u + c * O + o0;
      for (int64_t p = 0; p < kPoints; ++p)
        for (int64_t j = 0; j < n; ++j) dst[p * plane + j] = r[p * kChannels + j];
    }
  }
}


}  // namespace

void detail::winograd6_input_transform(const float* x, const WinogradGeometry& g, int64_t first, int64_t count,
                                       float* v, int64_t plane) {
  run_for_isa<input_transform>(x, g, first, count, v, plane);
}

void detail::winograd6_output_transform(const float* m, int64_t plane, const float* bias, bool relu,
                                        const WinogradGeometry& g, int64_t first, int64_t count, float* y) {
  run_for_isa<output_transform>(m, plane, bias, relu, g, first, count, y);
}

void winograd6_filter_transform(const float* w, int64_t out_channels, int64_t in_channels, float* u, int64_t first_in,
                                int64_t count_in) {
  run_for_isa<filter_transform>(w, out_channels, in_channels, u, first_in, range_end(in_channels, first_in, count_in));
}

void winograd6_filter_transform_reference(const float* w, int64_t out_channels, int64_t in_channels, float* u,
                                          int64_t first_in, int64_t count_in) {
  filter_transform_reference(kG6, w, out_channels, in_channels, u, first_in, range_end(in_channels, first_in, count_in));
}

}  // namespace unet::cpu
