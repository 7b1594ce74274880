// 3x3 convolutions by Winograd's F(4x4, 3x3) or F(6x6, 3x3) on CPUs (see include/unet/cpu/winograd.h).
//
// Why: oneDNN's direct convolutions already run at the matrix-product limit of the CPU, and every
// peer runtime uses the same kind of kernel, so the only way to be clearly faster is less
// arithmetic. F(4x4, 3x3) needs 36 multiplications per channel pair for 16 outputs where the
// direct convolution needs 144. The price is memory traffic: the transformed input and products
// are 36/16 the size of the activations. So the tiles are processed in blocks: each thread
// transforms a block of tiles into V [36][T][C], runs the 36 products M[p] = V[p] U[p] as one batched
// matrix product of LibTorch (`at::bmm_out`: the BLAS it links, single-threaded inside the
// parallel region), and transforms M [36][T][O] back into the output, while the block is still in
// cache. Only the filter transform U [36][C][O] is kept between calls. F(6x6, 3x3) is the same with
// 64 points per tile of 6x6 outputs.
#include "unet/model/winograd_conv.h"

#include "unet/cpu/winograd.h"
#include "unet/runtime/error.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <memory>
#include <string>
#include <utility>

namespace unet {

WinogradWeights winograd_pack(const at::Tensor& w, const at::Tensor& b, int64_t tile) {
  if (w.dim() != 4 || w.size(2) != 3 || w.size(3) != 3) throw Error("a Winograd convolution takes 3x3 filters");
  if (tile != cpu::kWinogradTile && tile != cpu::kWinograd6Tile)
    throw Error("a Winograd convolution has output tiles of 4 or 6, not " + std::to_string(tile));
  const at::Tensor plain = w.detach().to(at::kCPU, at::kFloat).contiguous();
  WinogradWeights packed;
  packed.out_channels = plain.size(0);
  packed.in_channels = plain.size(1);
  packed.tile = tile;
  packed.u = at::empty({cpu::winograd_points(tile), packed.in_channels, packed.out_channels}, plain.options());
  const float* weights = plain.const_data_ptr<float>();
  float* u = packed.u.mutable_data_ptr<float>();
  at::parallel_for(0, packed.in_channels, 16, [&](int64_t begin, int64_t end) {
    if (tile == cpu::kWinograd6Tile)
      cpu::winograd6_filter_transform(weights, packed.out_channels, packed.in_channels, u, begin, end - begin);
    else
      cpu::winograd_filter_transform(weights, packed.out_channels, packed.in_channels, u, begin, end - begin);
  });
  if (b.defined()) packed.bias = b.detach().to(at::kCPU, at::kFloat).contiguous();
  return packed;
}

const char* winograd_instruction_set() { return cpu::winograd_isa(); }

int64_t winograd_block_tiles(int64_t in_channels, int64_t out_channels, int64_t tile) {
  // Measured on the reference network (docs/performance.md): 64 tiles at least, or the deep
  // layers' products (few tiles, 512-1024 channels) run far below the GEMM's speed; about 1 MiB of
  // V and M per block, or the wide layers' transforms wait on memory.
  constexpr int64_t kCacheBytes = 1 << 20, kMinTiles = 64, kMaxTiles = 256;
  const int64_t bytes_per_tile = cpu::winograd_points(tile) * (in_channels + out_channels) * 4;
  return std::clamp(kCacheBytes / bytes_per_tile, kMinTiles, kMaxTiles);
}

WinogradBlocks winograd_blocks(int64_t tiles, int64_t block, int64_t threads) {
  WinogradBlocks b;
  b.tiles = tiles;
  b.count = std::max<int64_t>(1, (tiles + block - 1) / block);
  if (threads > 1 && b.count >= threads) b.count = (b.count + threads - 1) / threads * threads;
  b.count = std::min(b.count, std::max<int64_t>(1, tiles));
  b.largest = (tiles + b.count - 1) / b.count;
  return b;
}

at::Tensor winograd_conv(const at::Tensor& x, const WinogradWeights& w, int64_t padding, bool relu) {
  if (x.dim() != 4 || x.size(1) != w.in_channels) throw Error("a Winograd convolution's input has the wrong channels");
  const cpu::WinogradGeometry g{x.size(0), x.size(2), x.size(3), w.in_channels, w.out_channels, padding, w.tile};
  if (g.out_height() < 1 || g.out_width() < 1) throw Error("a Winograd convolution's input is smaller than its filter");
  const at::Tensor input = x.to(at::kFloat).contiguous(at::MemoryFormat::ChannelsLast);
  at::Tensor y = at::empty({g.batch, g.out_channels, g.out_height(), g.out_width()},
                           input.options().memory_format(at::MemoryFormat::ChannelsLast));
  const float* in = input.const_data_ptr<float>();
  const float* bias = w.bias.defined() ? w.bias.const_data_ptr<float>() : nullptr;
  float* out = y.mutable_data_ptr<float>();
  const int64_t C = g.in_channels, O = g.out_channels, P = g.points();
  const WinogradBlocks blocks = winograd_blocks(g.tiles(), winograd_block_tiles(C, O, g.tile), at::get_num_threads());
  at::parallel_for(0, blocks.count, 1, [&](int64_t begin, int64_t end) {
    // Scratch for V and M, written before it is read: no zero fill.
    const auto v = std::make_unique_for_overwrite<float[]>(P * blocks.largest * C);
    const auto m = std::make_unique_for_overwrite<float[]>(P * blocks.largest * O);
    for (int64_t k = begin; k < end; ++k) {
      const int64_t first = blocks.first(k), count = blocks.first(k + 1) - first;
      cpu::winograd_input_transform(in, g, first, count, v.get(), count * C);
      // M[p] [count x O] = V[p] [count x C] U[p] [C x O] for the 36 (64) points: one batched product
      // (dense operands: with gaps between the points' matrices LibTorch's bmm copies them first).
      const at::Tensor vt = at::from_blob(v.get(), {P, count, C}, input.options());
      at::Tensor mt = at::from_blob(m.get(), {P, count, O}, input.options());
      at::bmm_out(mt, vt, w.u);
      cpu::winograd_output_transform(m.get(), count * O, bias, relu, g, first, count, out);
    }
  });
  return y;
}

}  // namespace unet
