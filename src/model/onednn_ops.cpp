// oneDNN's fused convolutions on CPUs, and convolution + bias + ReLU with a backward for training.
//
// Why: in a CPU training step of the plain path, the ReLUs after the convolutions are separate
// passes over the largest activations (forward, and a mask pass backward), and the bias is added
// by the convolution anyway. oneDNN fuses the ReLU into the convolution as a post-op, so the
// forward writes each activation once; the backward keeps LibTorch's own convolution backward
// (the same oneDNN kernels as the plain path), after the ReLU's mask, except for the float32
// up-sampling, whose gradients `transposed_conv_gradients` computes faster. The plain path
// (`at::relu(conv->forward(x))`) stays the reference the tests compare with.
#include "unet/model/onednn_ops.h"

#include "unet/model/transposed_conv_grad.h"

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/csrc/autograd/custom_function.h>

namespace unet {
namespace {

using Scalars = c10::List<std::optional<at::Scalar>>;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

/// `x` with channels-last strides where its layout allows both readings: a one-channel image batch
/// [N, 1, H, W] is dense in NCHW and NHWC alike, but its NCHW strides make oneDNN write the
/// convolution's output in NCHW and LibTorch then reorder it to the weights' channels-last, a
/// whole extra pass over the largest activation of the network (about 270 ms of a 370 ms first
/// convolution at 572x572, batch 2, 2-core Xeon). The same memory, viewed with NHWC strides, gives
/// a channels-last output directly.
at::Tensor channels_last_view(const at::Tensor& x) {
  if (x.dim() != 4 || x.size(1) != 1 || !x.is_contiguous() || x.stride(1) == 1) return x;
  return x.as_strided(x.sizes(), {x.size(2) * x.size(3), 1, x.size(3), 1}, x.storage_offset());
}

/// The convolution with its bias and ReLU fused, and its gradients.
struct ConvBiasReluFunction : public torch::autograd::Function<ConvBiasReluFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& w, const at::Tensor& b,
                            int64_t padding, bool transposed) {
    const at::Tensor input = channels_last_view(x);
    at::Tensor y = transposed ? onednn_conv_transpose_relu(input, w, b, padding) : onednn_conv(input, w, b, padding, true);
    ctx->save_for_backward({input, w, y});
    ctx->saved_data["padding"] = padding;
    ctx->saved_data["transposed"] = transposed;
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &w = saved[1], &y = saved[2];
    const int64_t p = ctx->saved_data["padding"].toInt();
    const bool transposed = ctx->saved_data["transposed"].toBool();
    // Zero where the ReLU was off (y <= 0), written in the activation's layout: the gradient may
    // arrive in another (a channel slice of the concatenation's), and this pass reorders it free.
    at::Tensor g = at::empty_like(y);
    at::threshold_backward_out(g, grads[0], y, 0);
    if (transposed && y.scalar_type() == at::kFloat) {  // the up-sampling: faster than LibTorch's backward
      auto [gx, gw] = transposed_conv_gradients(g, x, w, p, ctx->needs_input_grad(0), ctx->needs_input_grad(1));
      const at::Tensor gb = ctx->needs_input_grad(2) ? g.sum({0, 2, 3}) : at::Tensor();
      return {gx, gw, gb, at::Tensor(), at::Tensor()};
    }
    const int64_t stride = transposed ? 2 : 1, output_padding = transposed ? p : 0;
    const int64_t channels = transposed ? w.size(1) : w.size(0);
    auto [gx, gw, gb] = at::convolution_backward(
        g, x, w, at::OptionalIntArrayRef(std::vector<int64_t>{channels}), {stride, stride}, {p, p}, {1, 1}, transposed,
        {output_padding, output_padding}, 1, {ctx->needs_input_grad(0), ctx->needs_input_grad(1), ctx->needs_input_grad(2)});
    return {gx, gw, gb, at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::ScalarType cpu_compute_type(const at::Tensor& x) {
  return at::autocast::is_autocast_enabled(at::kCPU) ? at::autocast::get_autocast_dtype(at::kCPU) : x.scalar_type();
}

bool onednn_fusion_available() {
  static const bool available = [] {
    auto& d = c10::Dispatcher::singleton();
    return at::hasMKLDNN() && d.findSchema({"mkldnn::_convolution_pointwise", ""}).has_value() &&
           d.findSchema({"mkldnn::_convolution_transpose_pointwise", ""}).has_value() &&
           d.findSchema({"mkldnn::_reorder_convolution_weight", ""}).has_value() &&
           d.findSchema({"mkldnn::_reorder_convolution_transpose_weight", ""}).has_value();
  }();
  return available;
}

at::Tensor onednn_conv(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, int64_t padding, bool relu) {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("mkldnn::_convolution_pointwise", "")
                             .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&,
                                               c10::IntArrayRef, c10::IntArrayRef, c10::IntArrayRef, int64_t,
                                               c10::string_view, Scalars, std::optional<c10::string_view>)>();
  return op.call(channels_last_view(x), w, b, {padding, padding}, {1, 1}, {1, 1}, 1, relu ? "relu" : "none", Scalars(),
                 std::nullopt);
}

at::Tensor onednn_conv_transpose_relu(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, int64_t padding) {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("mkldnn::_convolution_transpose_pointwise", "")
                             .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&,
                                               c10::IntArrayRef, c10::IntArrayRef, c10::IntArrayRef, c10::IntArrayRef,
                                               int64_t, c10::string_view, Scalars, std::optional<c10::string_view>)>();
  return op.call(x, w, b, {padding, padding}, {padding, padding}, {2, 2}, {1, 1}, 1, "relu", Scalars(), std::nullopt);
}

at::Tensor onednn_pack_conv(const at::Tensor& w, int64_t padding, const std::vector<int64_t>& input) {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("mkldnn::_reorder_convolution_weight", "")
                             .typed<at::Tensor(const at::Tensor&, c10::IntArrayRef, c10::IntArrayRef, c10::IntArrayRef,
                                               int64_t, at::OptionalIntArrayRef)>();
  return op.call(w, {padding, padding}, {1, 1}, {1, 1}, 1, input);
}

at::Tensor onednn_pack_conv_transpose(const at::Tensor& w, int64_t padding, const std::vector<int64_t>& input) {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("mkldnn::_reorder_convolution_transpose_weight", "")
                             .typed<at::Tensor(const at::Tensor&, c10::IntArrayRef, c10::IntArrayRef, c10::IntArrayRef,
                                               c10::IntArrayRef, int64_t, at::OptionalIntArrayRef)>();
  return op.call(w, {padding, padding}, {padding, padding}, {2, 2}, {1, 1}, 1, input);
}

bool onednn_trainable(const at::Tensor& x) {
  if (!x.is_cpu() || !onednn_fusion_available()) return false;
  const at::ScalarType type = cpu_compute_type(x);
  return type == at::kFloat || type == at::kBFloat16;
}

at::Tensor onednn_conv_bias_relu(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, int64_t padding,
                                 bool transposed) {
  // What autocast would do for at::conv2d: every operand in the autocast type.
  const at::ScalarType type = cpu_compute_type(x);
  return ConvBiasReluFunction::apply(x.to(type), w.to(type), b.to(type), padding, transposed);
}

}  // namespace unet
