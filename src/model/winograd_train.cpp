// Winograd F(4x4, 3x3) convolution + bias + ReLU with a backward, for CPU training.
//
// Why: the deep layers of a U-Net (128-1024 channels) hold most of a training step's arithmetic,
// and there Winograd needs 36 multiplications per channel pair and tile where the direct
// convolution's forward, input-gradient and weight-gradient kernels each need 144. The backward
// runs the forward algorithm transposed (src/cpu/winograd_gradients.cpp): the output gradient's
// tiles are transformed once (dM, the ReLU's mask folded in) and feed two batched products, the
// input gradient dV = dM U^T and the filter gradient dU = V^T dM; then each goes back through its
// transform. The filters are transformed on every forward call (the weights change every step),
// so no transform can go stale. Whole-tensor buffers [36, tiles, channels] are used here, not the
// inference path's cache-sized blocks, because the filter gradient is a sum over every tile: one
// product with the tiles as its inner dimension. The price is memory during a layer's backward:
// dM and V are each 36/16 of the layer's output and input (for the reference network's top level
// at batch 2, about 370 MB each; the whole step's peak rose from 2.8 to 4.0 GiB).
#include "unet/model/winograd_conv.h"

#include "unet/cpu/winograd.h"
#include "unet/runtime/error.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

namespace unet {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

constexpr int64_t kPoints = cpu::kWinogradPoints;

/// dM [36, tiles, O]: the masked output gradient's tiles transformed (threads over tiles).
at::Tensor output_gradient(const at::Tensor& dy, const at::Tensor& y, const cpu::WinogradGeometry& g) {
  const int64_t T = g.tiles(), O = g.out_channels;
  at::Tensor dm = at::empty({kPoints, T, O}, dy.options().memory_format(at::MemoryFormat::Contiguous));
  const float *grad = dy.const_data_ptr<float>(), *out = y.const_data_ptr<float>();
  float* m = dm.mutable_data_ptr<float>();
  at::parallel_for(0, T, 16, [&](int64_t begin, int64_t end) {
    cpu::winograd_output_gradient_transform(grad, out, g, begin, end - begin, m + begin * O, T * O);
  });
  return dm;
}

/// V [36, tiles, C]: the input's tiles transformed, as in the forward pass.
at::Tensor input_points(const at::Tensor& x, const cpu::WinogradGeometry& g) {
  const int64_t T = g.tiles(), C = g.in_channels;
  at::Tensor v = at::empty({kPoints, T, C}, x.options().memory_format(at::MemoryFormat::Contiguous));
  const float* in = x.const_data_ptr<float>();
  float* out = v.mutable_data_ptr<float>();
  at::parallel_for(0, T, 16, [&](int64_t begin, int64_t end) {
    cpu::winograd_input_transform(in, g, begin, end - begin, out + begin * C, T * C);
  });
  return v;
}

/// dx [N, C, H, W] (channels-last) from dV [36, tiles, C]: every tile's 6x6 block added in. Blocks of
/// adjacent tile rows overlap, so the even rows run first (in parallel), then the odd ones.
at::Tensor input_gradient(const at::Tensor& dv, const cpu::WinogradGeometry& g, const at::TensorOptions& options) {
  // at::empty honours a memory format in the options; at::zeros would drop it.
  at::Tensor dx = at::empty({g.batch, g.in_channels, g.height, g.width}, options.memory_format(at::MemoryFormat::ChannelsLast));
  dx.zero_();
  const int64_t T = g.tiles(), C = g.in_channels, rows = g.tiles_y(), cols = g.tiles_x();
  const float* v = dv.const_data_ptr<float>();
  float* out = dx.mutable_data_ptr<float>();
  for (int64_t parity = 0; parity < 2; ++parity) {
    const int64_t per_image = (rows - parity + 1) / 2;  // rows of this parity in one image
    at::parallel_for(0, g.batch * per_image, 1, [&](int64_t begin, int64_t end) {
      for (int64_t k = begin; k < end; ++k) {
        const int64_t first = ((k / per_image) * rows + 2 * (k % per_image) + parity) * cols;
        cpu::winograd_input_gradient_transform(v + first * C, T * C, g, first, cols, out);
      }
    });
  }
  return dx;
}

/// dw [O, C, 3, 3] from dU [36, C, O] (threads over input channels).
at::Tensor filter_gradient(const at::Tensor& du, int64_t out_channels, int64_t in_channels) {
  at::Tensor dw = at::empty({out_channels, in_channels, 3, 3}, du.options());
  const float* u = du.const_data_ptr<float>();
  float* w = dw.mutable_data_ptr<float>();
  at::parallel_for(0, in_channels, 8, [&](int64_t begin, int64_t end) {
    cpu::winograd_filter_gradient_transform(u, out_channels, in_channels, w, begin, end - begin);
  });
  return dw;
}

struct WinogradConvBiasReluFunction : public torch::autograd::Function<WinogradConvBiasReluFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& w, const at::Tensor& b,
                            int64_t padding) {
    const at::Tensor input = x.contiguous(at::MemoryFormat::ChannelsLast);
    const WinogradWeights packed = winograd_pack(w, b);
    at::Tensor y = winograd_conv(input, packed, padding, /*relu=*/true);
    ctx->save_for_backward({input, y});
    ctx->saved_data["u"] = packed.u;
    ctx->saved_data["padding"] = padding;
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &y = saved[1];
    const at::Tensor u = ctx->saved_data["u"].toTensor();
    const cpu::WinogradGeometry g{x.size(0), x.size(2), x.size(3), x.size(1), u.size(2), ctx->saved_data["padding"].toInt()};
    const at::Tensor dy = grads[0].to(at::kFloat).contiguous(at::MemoryFormat::ChannelsLast);
    const at::Tensor dm = output_gradient(dy, y, g);
    at::Tensor gx, gw, gb;
    if (ctx->needs_input_grad(2)) gb = dm[7].sum(0);  // point 7 of a tile: the sum of its pixels
    if (!ctx->needs_input_grad(0) && !ctx->needs_input_grad(1)) return {gx, gw, gb, at::Tensor()};
    // V recomputed for the filter gradient (cheaper than keeping 2.25x the input per layer); its
    // buffer then takes dV.
    at::Tensor v = ctx->needs_input_grad(1) ? input_points(x, g) : at::empty({kPoints, g.tiles(), g.in_channels}, dm.options());
    if (ctx->needs_input_grad(1)) {
      // Products into float32 buffers (bmm_out): no autocast where backward() runs inside one.
      at::Tensor du = at::empty({kPoints, g.in_channels, g.out_channels}, dm.options());
      at::bmm_out(du, v.transpose(1, 2), dm);
      gw = filter_gradient(du, g.out_channels, g.in_channels);
    }
    if (ctx->needs_input_grad(0)) {
      at::bmm_out(v, dm, u.transpose(1, 2));  // dV into V's buffer: same shape, V no longer needed
      gx = input_gradient(v, g, x.options());
    }
    return {gx, gw, gb, at::Tensor()};
  }
};

}  // namespace

at::Tensor winograd_conv_bias_relu(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, int64_t padding) {
  if (!x.is_cpu() || !w.is_cpu()) throw Error("a Winograd convolution runs on the CPU");
  // An undefined bias as zeros: autograd's custom functions need defined inputs.
  const at::Tensor bias = b.defined() ? b : at::zeros({w.size(0)}, w.options());
  return WinogradConvBiasReluFunction::apply(x.to(at::kFloat), w, bias, padding);
}

}  // namespace unet
