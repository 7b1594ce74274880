// The fused bias + ReLU and cuDNN's convolution-bias-ReLU: ATen reference, CUDA dispatch, and the
// fallback of builds without the kernels, in one place.
#include "unet/model/ops.h"

#include "unet/runtime/error.h"

#include <ATen/ATen.h>

#ifdef UNET_HAS_CUDA_KERNELS
#include "cuda/bias_relu.h"
#include "model/cuda_glue.h"
#include "unet/runtime/device.h"

#include <ATen/autocast_mode.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/csrc/autograd/custom_function.h>

#include <atomic>
#include <stdexcept>
#endif

namespace unet {

at::Tensor bias_relu_reference(const at::Tensor& x, const at::Tensor& bias) {
  return at::relu(x + bias.to(x.scalar_type()).view({1, -1, 1, 1}));
}

#ifdef UNET_HAS_CUDA_KERNELS

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

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

#else  // no CUDA kernels in this build: callers check fused_kernels_built() first

bool fused_kernels_built() { return false; }

at::Tensor fused_bias_relu(const at::Tensor&, const at::Tensor&) {
  throw Error("this build of unet has no CUDA kernels: the fused operations need a CUDA build");
}

std::optional<at::Tensor> cudnn_conv_bias_relu(const at::Tensor&, const at::Tensor&, const at::Tensor&, int64_t) {
  return std::nullopt;
}

#endif

}  // namespace unet
