// 3x3 convolutions by Winograd's F(4x4, 3x3) or F(6x6, 3x3) on CPUs, float32: the transforms of
// unet_cpu around 36 (64) matrix products by LibTorch's BLAS, blocked over tiles so each block's
// data stays in cache.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace unet {

/// A 3x3 convolution's weights transformed once for `winograd_conv`: u float32 [points, C, O]
/// (G g G^T of every filter; 36 points for tiles of 4, 64 for tiles of 6), bias float32 [O] (or
/// undefined). Transform again after the weights change.
struct WinogradWeights {
  at::Tensor u, bias;
  int64_t in_channels = 0, out_channels = 0;
  int64_t tile = 4;  ///< output tile side: 4 for F(4x4, 3x3), 6 for F(6x6, 3x3)
};

/// w [O, C, 3, 3], b [O] or undefined (any float dtype; transformed in float32), for the variant
/// with output tiles of side `tile` (4 or 6).
WinogradWeights winograd_pack(const at::Tensor& w, const at::Tensor& b, int64_t tile = 4);

/// relu(conv2d(x, w, b, stride 1, padding)) (without the ReLU when `relu` is false) for x float32
/// [N, C, H, W] on the CPU, H and W at least 3 - 2 * padding; returns float32 [N, O, H', W'] in
/// channels-last memory, by the variant `w` was packed for. Tiles are split among LibTorch's
/// intra-op threads. No autograd. Agrees with the direct convolution within float32 rounding of
/// the variant (tests/test_winograd.cpp states the bounds).
at::Tensor winograd_conv(const at::Tensor& x, const WinogradWeights& w, int64_t padding, bool relu);

/// Training on CPUs: relu(conv2d(x, w, b, stride 1, padding)) by Winograd F(4x4, 3x3), float32,
/// differentiable in x, w and b (src/model/winograd_train.cpp). The filters are transformed on
/// every call, so they are never stale after an optimiser step. x [N, C, H, W] (any layout;
/// computed channels-last), w [O, C, 3, 3], b [O]; returns float32 [N, O, H', W'] channels-last.
/// Agrees with the direct convolution and its gradients within float32 rounding of F(4x4, 3x3)
/// (tests/test_winograd_train.cpp).
at::Tensor winograd_conv_bias_relu(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, int64_t padding);

/// The instruction set Winograd's transforms run with on this CPU: "AVX-512", "AVX2+FMA" or
/// "x86-64 (no AVX2)" (chosen from the CPU's feature flags).
const char* winograd_instruction_set();

/// Tiles per block of `winograd_conv` for `in_channels` -> `out_channels` with tiles of side `tile`,
/// before the split among threads (`winograd_blocks`): enough rows (64 at least) for the matrix
/// products to run near the GEMM's speed, few enough that a block's transformed input and
/// products (points x tiles x (C + O) floats) stay near 1 MiB where possible.
int64_t winograd_block_tiles(int64_t in_channels, int64_t out_channels, int64_t tile = 4);

/// How `winograd_conv` splits `tiles` among `count` blocks: block k holds tiles first(k) ..
/// first(k + 1) - 1, sizes differing by at most one. `count` is tiles / `block` rounded up, then
/// up to a multiple of the threads where there are at least as many blocks as threads (a thread
/// with one block more than the others holds them all up: 5 blocks on 2 threads run as 3,
/// measured 12-14% of a layer), so blocks may hold fewer tiles than `block`.
struct WinogradBlocks {
  int64_t tiles = 0, count = 1, largest = 0;
  int64_t first(int64_t k) const { return k * tiles / count; }
};
WinogradBlocks winograd_blocks(int64_t tiles, int64_t block, int64_t threads);

}  // namespace unet
