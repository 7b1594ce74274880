// Winograd F(4x4, 3x3) tile transforms of the backward pass (see include/unet/cpu/winograd.h).
//
// The forward pass computes Y = A^T [U . V] A per tile with V = B^T d B. Its gradients, by the
// chain rule through those two linear maps: the output gradient dY of a 4x4 tile becomes
// dM = A dY A^T (36 points), the products give dV = dM U^T (input gradient) and dU = V^T dM
// (filter gradient, summed over the tiles by the GEMM), and dV goes back to the 6x6 input block as
// dd = B dV B^T, added into the input gradient where neighbouring blocks overlap by two pixels.
// The ReLU after the convolution is folded into the first transform (dY counts only where the
// forward output was positive). Same scheme as the forward transforms: 16 channels at a time,
// the matrices' entries written out, three per-ISA copies, double references at the bottom.
#include "winograd_internal.h"

#include <algorithm>

namespace unet::cpu {

using namespace detail;

namespace {

/// out[0..5] = A in[0..3] (A = the transpose of A^T) for each of the block's channels.
UNET_INLINE void output_gradient_1d(const float* in, int64_t s, float* out, int64_t o) {
  for (int64_t c = 0; c < kChannels; ++c) {
    const float d0 = in[c], d1 = in[s + c], d2 = in[2 * s + c], d3 = in[3 * s + c];
    const float even1 = d0 + d2, odd1 = d1 + d3, even2 = d0 + 4 * d2, odd2 = 2 * d1 + 8 * d3;
    out[c] = d0;
    out[o + c] = even1 + odd1;
    out[2 * o + c] = even1 - odd1;
    out[3 * o + c] = even2 + odd2;
    out[4 * o + c] = even2 - odd2;
    out[5 * o + c] = d3;
  }
}

/// out[0..5] = B in[0..5] (B = the transpose of B^T) for each of the block's channels.
UNET_INLINE void input_gradient_1d(const float* in, int64_t s, float* out, int64_t o) {
  for (int64_t c = 0; c < kChannels; ++c) {
    const float v0 = in[c], v1 = in[s + c], v2 = in[2 * s + c], v3 = in[3 * s + c], v4 = in[4 * s + c],
                v5 = in[5 * s + c];
    out[c] = 4 * v0;
    out[o + c] = 4 * (v2 - v1) + 2 * (v4 - v3) + 4 * v5;
    out[2 * o + c] = -5 * v0 - 4 * (v1 + v2) - (v3 + v4);
    out[3 * o + c] = (v1 - v2) + 2 * (v3 - v4) - 5 * v5;
    out[4 * o + c] = v0 + v1 + v2 + v3 + v4;
    out[5 * o + c] = v5;
  }
}

UNET_INLINE void output_gradient_transform(const float* dy, const float* y, const WinogradGeometry& g, int64_t first,
                                           int64_t count, float* dm, int64_t plane) {
  const int64_t O = g.out_channels, H = g.out_height(), W = g.out_width();
  alignas(64) float d[16 * kChannels], t[6 * 4 * kChannels], e[36 * kChannels];
  for (int64_t i = 0; i < count; ++i) {
    const TileOrigin o = tile_origin(g, first + i, 0);
    const int64_t image = o.image * H * W * O;
    for (int64_t c0 = 0; c0 < O; c0 += kChannels) {
      const int64_t n = std::min(kChannels, O - c0);
      for (int64_t a = 0; a < 4; ++a) {  // the tile's gradient, zero past the output and where y <= 0
        for (int64_t b = 0; b < 4; ++b) {
          float* dst = d + (a * 4 + b) * kChannels;
          const bool in = o.row + a < H && o.col + b < W;
          const int64_t at = image + ((o.row + a) * W + o.col + b) * O + c0;
          if (in && n == kChannels) {
            for (int64_t c = 0; c < kChannels; ++c)
              dst[c] = y == nullptr || y[at + c] > 0.0f ? dy[at + c] : 0.0f;
          } else {
            for (int64_t c = 0; c < kChannels; ++c)
              dst[c] = in && c < n && (y == nullptr || y[at + c] > 0.0f) ? dy[at + c] : 0.0f;
          }
        }
      }
      // d[a][b]: A over a gives t[k][b], then over b e[k][l].
      for (int64_t b = 0; b < 4; ++b) output_gradient_1d(d + b * kChannels, 4 * kChannels, t + b * kChannels, 4 * kChannels);
      for (int64_t k = 0; k < 6; ++k) output_gradient_1d(t + k * 4 * kChannels, kChannels, e + k * 6 * kChannels, kChannels);
      float* out = dm + i * O + c0;
      for (int64_t p = 0; p < kWinogradPoints; ++p)
        for (int64_t c = 0; c < n; ++c) out[p * plane + c] = e[p * kChannels + c];
    }
  }
}

UNET_INLINE void input_gradient_transform(const float* dv, int64_t plane, const WinogradGeometry& g, int64_t first,
                                          int64_t count, float* dx) {
  const int64_t C = g.in_channels, row_stride = g.width * C;
  alignas(64) float s[36 * kChannels], t[36 * kChannels], e[36 * kChannels];
  for (int64_t i = 0; i < count; ++i) {
    const TileOrigin o = tile_origin(g, first + i, g.padding);
    float* image = dx + o.image * g.height * row_stride;
    const bool inside = o.row >= 0 && o.col >= 0 && o.row + 6 <= g.height && o.col + 6 <= g.width;
    for (int64_t c0 = 0; c0 < C; c0 += kChannels) {
      const int64_t n = std::min(kChannels, C - c0);
      const float* src = dv + i * C + c0;
      for (int64_t p = 0; p < kWinogradPoints; ++p)
        for (int64_t c = 0; c < kChannels; ++c) s[p * kChannels + c] = c < n ? src[p * plane + c] : 0.0f;
      // s[k][l]: B over k gives t[a][l], then over l e[a][b].
      for (int64_t l = 0; l < 6; ++l) input_gradient_1d(s + l * kChannels, 6 * kChannels, t + l * kChannels, 6 * kChannels);
      for (int64_t a = 0; a < 6; ++a) input_gradient_1d(t + a * 6 * kChannels, kChannels, e + a * 6 * kChannels, kChannels);
      for (int64_t a = 0; a < 6; ++a) {
        for (int64_t b = 0; b < 6; ++b) {
          const int64_t row = o.row + a, col = o.col + b;
          if (!inside && (row < 0 || row >= g.height || col < 0 || col >= g.width)) continue;  // padding: no input
          const float* px = e + (a * 6 + b) * kChannels;
          float* dst = image + row * row_stride + col * C + c0;
          if (n == kChannels) {
            for (int64_t c = 0; c < kChannels; ++c) dst[c] += px[c];
          } else {
            for (int64_t c = 0; c < n; ++c) dst[c] += px[c];
          }
        }
      }
    }
  }
}

}  // namespace

void winograd_output_gradient_transform(const float* dy, const float* y, const WinogradGeometry& g, int64_t first,
                                        int64_t count, float* dm, int64_t plane) {
  require_tile(g, kWinogradTile);  // F(4x4) only
  run_for_isa<output_gradient_transform>(dy, y, g, first, count, dm, plane);
}

void winograd_input_gradient_transform(const float* dv, int64_t plane, const WinogradGeometry& g, int64_t first,
                                       int64_t count, float* dx) {
  require_tile(g, kWinogradTile);  // F(4x4) only
  run_for_isa<input_gradient_transform>(dv, plane, g, first, count, dx);
}

void winograd_output_gradient_transform_reference(const float* dy, const float* y, const WinogradGeometry& g,
                                                  int64_t first, int64_t count, float* dm, int64_t plane) {
  require_tile(g, kWinogradTile);  // F(4x4) only
  const int64_t O = g.out_channels, H = g.out_height(), W = g.out_width();
  for (int64_t i = 0; i < count; ++i) {
    const TileOrigin o = tile_origin(g, first + i, 0);
    for (int64_t c = 0; c < O; ++c) {
      double d[4][4];
      for (int a = 0; a < 4; ++a) {
        for (int b = 0; b < 4; ++b) {
          const bool inside = o.row + a < H && o.col + b < W;
          const int64_t at = ((o.image * H + o.row + a) * W + o.col + b) * O + c;
          d[a][b] = inside && (y == nullptr || y[at] > 0.0f) ? dy[at] : 0.0;
        }
      }
      for (int k = 0; k < 6; ++k) {
        for (int l = 0; l < 6; ++l) {
          double sum = 0;  // (A d A^T)[k][l]
          for (int a = 0; a < 4; ++a)
            for (int b = 0; b < 4; ++b) sum += kAT[a][k] * d[a][b] * kAT[b][l];
          dm[(k * 6 + l) * plane + i * O + c] = static_cast<float>(sum);
        }
      }
    }
  }
}

void winograd_input_gradient_transform_reference(const float* dv, int64_t plane, const WinogradGeometry& g,
                                                 int64_t first, int64_t count, float* dx) {
  require_tile(g, kWinogradTile);  // F(4x4) only
  const int64_t C = g.in_channels;
  for (int64_t i = 0; i < count; ++i) {
    const TileOrigin o = tile_origin(g, first + i, g.padding);
    for (int64_t c = 0; c < C; ++c) {
      for (int a = 0; a < 6; ++a) {
        for (int b = 0; b < 6; ++b) {
          const int64_t row = o.row + a, col = o.col + b;
          if (row < 0 || row >= g.height || col < 0 || col >= g.width) continue;
          double sum = 0;  // (B dv B^T)[a][b]
          for (int k = 0; k < 6; ++k)
            for (int l = 0; l < 6; ++l) sum += kBT[k][a] * dv[(k * 6 + l) * plane + i * C + c] * kBT[l][b];
          dx[((o.image * g.height + row) * g.width + col) * C + c] += static_cast<float>(sum);
        }
      }
    }
  }
}

}  // namespace unet::cpu
