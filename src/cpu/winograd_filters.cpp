// Winograd F(4x4, 3x3) filter transforms: U = G g G^T (forward) and its gradient dg = G^T dU G
// (see include/unet/cpu/winograd.h).
//
// Training transforms every 3x3 filter twice per step (the weights change each step), 3.1 million
// channel pairs for the reference network, so these are vectorised like the tile transforms:
// 16 output channels at a time, the matrices' entries written out, every inner loop over the 16.
// The weights [O][C][3][3] keep an output channel's filters 9 x C floats apart, so a block's
// filters are gathered into a small array first and its results scattered from one. The
// references at the bottom compute the same in double, one channel pair at a time.
#include "winograd_internal.h"

#include <algorithm>

namespace unet::cpu {

using namespace detail;

namespace {

/// out[0..5] = G in[0..2] for each of the block's channels (`s`, `o`: strides of in and out).
UNET_INLINE void filter_1d(const float* in, int64_t s, float* out, int64_t o) {
  for (int64_t c = 0; c < kChannels; ++c) {
    const float g0 = in[c], g1 = in[s + c], g2 = in[2 * s + c];
    const float even = g0 * (1.0f / 24) + g2 * (1.0f / 6), odd = g1 * (1.0f / 12);
    out[c] = g0 * 0.25f;
    out[o + c] = (g0 + g1 + g2) * (-1.0f / 6);
    out[2 * o + c] = (g0 - g1 + g2) * (-1.0f / 6);
    out[3 * o + c] = even + odd;
    out[4 * o + c] = even - odd;
    out[5 * o + c] = g2;
  }
}

/// out[0..2] = G^T in[0..5] for each of the block's channels.
UNET_INLINE void filter_gradient_1d(const float* in, int64_t s, float* out, int64_t o) {
  for (int64_t c = 0; c < kChannels; ++c) {
    const float u0 = in[c], u1 = in[s + c], u2 = in[2 * s + c], u3 = in[3 * s + c], u4 = in[4 * s + c],
                u5 = in[5 * s + c];
    const float sum12 = u1 + u2, sum34 = u3 + u4;
    out[c] = u0 * 0.25f - sum12 * (1.0f / 6) + sum34 * (1.0f / 24);
    out[o + c] = (u2 - u1) * (1.0f / 6) + (u3 - u4) * (1.0f / 12);
    out[2 * o + c] = (sum34 - sum12) * (1.0f / 6) + u5;
  }
}

UNET_INLINE void filter_transform(const float* w, int64_t O, int64_t C, float* u, int64_t first, int64_t end) {
  const int64_t plane = C * O;
  alignas(64) float f[9 * kChannels], t[6 * 3 * kChannels], r[36 * kChannels];
  for (int64_t c = first; c < end; ++c) {
    for (int64_t o0 = 0; o0 < O; o0 += kChannels) {
      const int64_t n = std::min(kChannels, O - o0);
      for (int64_t k = 0; k < 9; ++k)
        for (int64_t j = 0; j < kChannels; ++j) f[k * kChannels + j] = j < n ? w[((o0 + j) * C + c) * 9 + k] : 0.0f;
      // f[row][col]: G over the rows gives t[a][col], then over the columns r[a][b].
      for (int64_t col = 0; col < 3; ++col) filter_1d(f + col * kChannels, 3 * kChannels, t + col * kChannels, 3 * kChannels);
      for (int64_t a = 0; a < 6; ++a) filter_1d(t + a * 3 * kChannels, kChannels, r + a * 6 * kChannels, kChannels);
      float* dst = u + c * O + o0;
      for (int64_t p = 0; p < kWinogradPoints; ++p)
        for (int64_t j = 0; j < n; ++j) dst[p * plane + j] = r[p * kChannels + j];
    }
  }
}

UNET_INLINE void filter_gradient_transform(const float* du, int64_t O, int64_t C, float* dw, int64_t first,
                                           int64_t end) {
  const int64_t plane = C * O;
  alignas(64) float s[36 * kChannels], t[3 * 6 * kChannels], r[9 * kChannels];
  for (int64_t c = first; c < end; ++c) {
    for (int64_t o0 = 0; o0 < O; o0 += kChannels) {
      const int64_t n = std::min(kChannels, O - o0);
      const float* src = du + c * O + o0;
      for (int64_t p = 0; p < kWinogradPoints; ++p)
        for (int64_t j = 0; j < kChannels; ++j) s[p * kChannels + j] = j < n ? src[p * plane + j] : 0.0f;
      // s[a][b]: G^T over a gives t[row][b], then over b r[row][col].
      for (int64_t b = 0; b < 6; ++b) filter_gradient_1d(s + b * kChannels, 6 * kChannels, t + b * kChannels, 6 * kChannels);
      for (int64_t row = 0; row < 3; ++row)
        filter_gradient_1d(t + row * 6 * kChannels, kChannels, r + row * 3 * kChannels, kChannels);
      for (int64_t j = 0; j < n; ++j)
        for (int64_t k = 0; k < 9; ++k) dw[((o0 + j) * C + c) * 9 + k] = r[k * kChannels + j];
    }
  }
}


}  // namespace

void winograd_filter_transform(const float* w, int64_t out_channels, int64_t in_channels, float* u, int64_t first_in,
                               int64_t count_in) {
  run_for_isa<filter_transform>(w, out_channels, in_channels, u, first_in, range_end(in_channels, first_in, count_in));
}

void winograd_filter_gradient_transform(const float* du, int64_t out_channels, int64_t in_channels, float* dw,
                                        int64_t first_in, int64_t count_in) {
  run_for_isa<filter_gradient_transform>(du, out_channels, in_channels, dw, first_in,
                                         range_end(in_channels, first_in, count_in));
}

void winograd_filter_transform_reference(const float* w, int64_t out_channels, int64_t in_channels, float* u,
                                         int64_t first_in, int64_t count_in) {
  filter_transform_reference(kG, w, out_channels, in_channels, u, first_in, range_end(in_channels, first_in, count_in));
}

void winograd_filter_gradient_transform_reference(const float* du, int64_t out_channels, int64_t in_channels,
                                                  float* dw, int64_t first_in, int64_t count_in) {
  const int64_t plane = in_channels * out_channels, end = range_end(in_channels, first_in, count_in);
  for (int64_t c = first_in; c < end; ++c) {
    for (int64_t o = 0; o < out_channels; ++o) {
      for (int j = 0; j < 3; ++j) {
        for (int k = 0; k < 3; ++k) {
          double sum = 0;  // (G^T du G)[j][k]
          for (int a = 0; a < 6; ++a)
            for (int b = 0; b < 6; ++b) sum += kG[a][j] * du[(a * 6 + b) * plane + c * out_channels + o] * kG[b][k];
          dw[(o * in_channels + c) * 9 + j * 3 + k] = static_cast<float>(sum);
        }
      }
    }
  }
}

}  // namespace unet::cpu
