// Autograd functions around the fused CUDA kernels (host code; the kernels are in the .cu files).
#include "unet/fused.h"

#include "bias_relu.cuh"
#include "fused_loss.cuh"
#include "unet/error.h"
#include "unet/runtime.h"

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/csrc/autograd/custom_function.h>

#include <atomic>
#include <stdexcept>

namespace unet {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

cuda::DType kernel_dtype(const at::Tensor& t) {
  switch (t.scalar_type()) {
    case at::kFloat: return cuda::DType::kFloat;
    case at::kHalf: return cuda::DType::kHalf;
    case at::kBFloat16: return cuda::DType::kBFloat16;
    default: throw Error(std::string("fused kernels take float32, fp16 or bf16 tensors, not ") + c10::toString(t.scalar_type()));
  }
}

cudaStream_t stream_of(const at::Tensor& t) { return c10::cuda::getCurrentCUDAStream(t.device().index()).stream(); }

/// `t` dense in channels-last or contiguous NCHW memory, and the kernels' view of its channels.
std::pair<at::Tensor, cuda::ChannelLayout> channel_layout(const at::Tensor& t) {
  if (t.dim() != 4) throw Error("fused_bias_relu expects [N, C, H, W] activations");
  const bool nhwc = t.is_contiguous(at::MemoryFormat::ChannelsLast) && !t.is_contiguous();
  at::Tensor dense = nhwc ? t : t.contiguous();
  cuda::ChannelLayout layout;
  layout.numel = dense.numel();
  layout.channels = dense.size(1);
  layout.inner = nhwc ? 1 : dense.size(2) * dense.size(3);
  return {dense, layout};
}

struct BiasReluFunction : public torch::autograd::Function<BiasReluFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& bias) {
    const c10::cuda::CUDAGuard guard(x.device());
    auto [dense, layout] = channel_layout(x);
    const at::Tensor b = bias.to(at::kFloat).contiguous();
    at::Tensor y = at::empty_like(dense);
    cuda::launch_bias_relu_forward(kernel_dtype(dense), dense.data_ptr(), b.data_ptr<float>(), y.data_ptr(), layout,
                                   stream_of(dense));
    ctx->save_for_backward({y});
    ctx->saved_data["bias_dtype"] = static_cast<int64_t>(bias.scalar_type());
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const at::Tensor y = ctx->get_saved_variables()[0];
    const c10::cuda::CUDAGuard guard(y.device());
    auto [dense_y, layout] = channel_layout(y);
    // The incoming gradient in the saved output's layout, so that one index walks both.
    const at::Tensor grad_y = grads[0].contiguous(layout.inner == 1 ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous);
    at::Tensor grad_x = at::empty_like(dense_y);
    at::Tensor grad_bias = at::zeros({layout.channels}, y.options().dtype(at::kFloat));
    cuda::launch_bias_relu_backward(kernel_dtype(dense_y), grad_y.data_ptr(), dense_y.data_ptr(), grad_x.data_ptr(),
                                    grad_bias.data_ptr<float>(), layout, stream_of(dense_y));
    const auto bias_dtype = static_cast<at::ScalarType>(ctx->saved_data["bias_dtype"].toInt());
    return {grad_x, grad_bias.to(bias_dtype)};
  }
};

cuda::LogitsLayout logits_layout(const at::Tensor& logits) {
  cuda::LogitsLayout l;
  l.n = logits.size(0);
  l.classes = logits.size(1);
  l.height = logits.size(2);
  l.width = logits.size(3);
  l.stride_n = logits.stride(0);
  l.stride_c = logits.stride(1);
  l.stride_h = logits.stride(2);
  l.stride_w = logits.stride(3);
  return l;
}

struct FusedLossFunction : public torch::autograd::Function<FusedLossFunction> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& logits, const at::Tensor& labels,
                               const at::Tensor& weights) {
    const c10::cuda::CUDAGuard guard(logits.device());
    const cuda::LogitsLayout l = logits_layout(logits);
    const at::Tensor lab = labels.to(logits.device(), at::kLong).contiguous();
    const at::Tensor w = weights.defined() ? weights.to(logits.device(), at::kFloat).contiguous() : at::Tensor();
    const auto f32 = logits.options().dtype(at::kFloat);
    at::Tensor sums = at::zeros({l.n, l.classes, 3}, f32), ce_sum = at::zeros({1}, f32);
    cuda::launch_fused_loss_forward(kernel_dtype(logits), logits.data_ptr(), l, lab.data_ptr<int64_t>(),
                                    w.defined() ? w.data_ptr<float>() : nullptr, sums.data_ptr<float>(),
                                    ce_sum.data_ptr<float>(), stream_of(logits));
    const at::Tensor ce = ce_sum.squeeze(0) / static_cast<double>(l.n * l.height * l.width);
    const at::Tensor dice = (2.0 * sums.select(2, 0) + 1e-6) / (sums.select(2, 1) + sums.select(2, 2) + 1e-6);  // [N, K]
    const at::Tensor dice_loss = (1.0 - dice.mean(0)).mean();
    ctx->save_for_backward({logits, lab, sums, w});
    return {ce, dice_loss};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &logits = saved[0], &labels = saved[1], &sums = saved[2], &w = saved[3];
    const c10::cuda::CUDAGuard guard(logits.device());
    const auto f32 = logits.options().dtype(at::kFloat);
    const at::Tensor grad_ce = grads[0].defined() ? grads[0].to(at::kFloat).reshape({1}).contiguous() : at::zeros({1}, f32);
    const at::Tensor grad_dice = grads[1].defined() ? grads[1].to(at::kFloat).reshape({1}).contiguous() : at::zeros({1}, f32);
    // The kernel writes the gradient with the strides it reads the logits with.
    const at::Tensor source = logits.is_non_overlapping_and_dense() ? logits : logits.contiguous();
    at::Tensor grad_logits = at::empty_like(source, at::MemoryFormat::Preserve);
    cuda::launch_fused_loss_backward(kernel_dtype(source), source.data_ptr(), logits_layout(source), labels.data_ptr<int64_t>(),
                                     w.defined() ? w.data_ptr<float>() : nullptr, sums.data_ptr<float>(),
                                     grad_ce.data_ptr<float>(), grad_dice.data_ptr<float>(), grad_logits.data_ptr(),
                                     stream_of(source));
    return {grad_logits, at::Tensor(), at::Tensor()};
  }
};

}  // namespace

bool fused_kernels_built() { return true; }

at::Tensor fused_bias_relu(const at::Tensor& x, const at::Tensor& bias) {
  if (!x.is_cuda()) throw Error("fused_bias_relu needs CUDA tensors");
  if (bias.dim() != 1 || x.dim() != 4 || bias.size(0) != x.size(1)) throw Error("fused_bias_relu: bias must be [C] for [N, C, H, W]");
  try {
    return BiasReluFunction::apply(x, bias);
  } catch (const std::invalid_argument& e) {
    throw Error(e.what());
  }
}

std::optional<at::Tensor> cudnn_conv_bias_relu(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                                               int64_t padding) {
  static std::atomic<bool> unavailable{false};
  if (unavailable || !x.is_cuda() || at::GradMode::is_enabled()) return std::nullopt;
  // The op is outside autocast's lists: cast as autocast would for a convolution.
  const at::ScalarType type =
      at::autocast::is_autocast_enabled(at::kCUDA) ? at::autocast::get_autocast_dtype(at::kCUDA) : x.scalar_type();
  const auto format = x.suggest_memory_format();
  try {
    return at::cudnn_convolution_relu(x.to(type), weight.to(type).contiguous(format), bias.to(type), /*stride=*/{1, 1},
                                      /*padding=*/{padding, padding}, /*dilation=*/{1, 1}, /*groups=*/1);
  } catch (const c10::Error& e) {
    if (!unavailable.exchange(true))
      notice(std::string("cuDNN's fused convolution-bias-ReLU is unavailable (") + e.what_without_backtrace() +
             "); using the separate kernels");
    return std::nullopt;
  }
}

LossTerms fused_segmentation_loss(const at::Tensor& logits, const at::Tensor& labels, const at::Tensor& weights) {
  if (!logits.is_cuda()) throw Error("fused_segmentation_loss needs CUDA tensors");
  if (logits.dim() != 4 || labels.dim() != 3) throw Error("fused_segmentation_loss: logits [N, C, H, W], labels [N, H, W]");
  if (logits.size(1) > cuda::kMaxLossClasses)
    throw Error("fused_segmentation_loss handles at most " + std::to_string(cuda::kMaxLossClasses) + " classes");
  const variable_list out = FusedLossFunction::apply(logits, labels, weights);
  LossTerms terms;
  terms.cross_entropy = out[0];
  terms.dice_loss = out[1];
  terms.total = out[0] + out[1];
  return terms;
}

}  // namespace unet
