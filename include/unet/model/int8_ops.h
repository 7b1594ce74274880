// int8 inference on the CPU's dot-product units: oneDNN's quantized convolutions, reached through
// LibTorch's `onednn` operators (the ones PyTorch's x86 inductor quantization emits), with the
// weight quantization, the transposed convolution's sub-pixel form and the u8 max pooling they need.
#pragma once

#include "unet/model/conv_plan.h"
#include "unet/model/unet.h"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

namespace unet {

/// Whether this LibTorch has oneDNN's int8 convolution operators (`onednn::qconv_prepack`,
/// `onednn::qconv_pointwise`).
bool int8_available();

/// The int8 dot-product units oneDNN uses on this CPU, best first: "AMX-INT8", "AVX512-VNNI",
/// "AVX-VNNI", "AVX2 (no int8 dot-product instructions: slow)", or "" where the CPU has none of
/// them (int8 unsupported). Read from /proc/cpuinfo's flags at run time, within oneDNN's ISA
/// limit when ONEDNN_MAX_CPU_ISA sets one.
std::string cpu_int8_units();
/// The same, from a /proc/cpuinfo flags line (space-separated) and oneDNN's ISA limit as
/// ONEDNN_MAX_CPU_ISA spells it ("ALL", "AVX2", "AVX512_CORE_VNNI", ...).
std::string int8_units_for(const std::string& cpu_flags, const std::string& isa_limit);

/// Activation scales of a quantized U-Net. Every convolution but the head writes u8 after its
/// ReLU: value = scale * q, zero point 0 (post-ReLU values are never negative). The image is u8
/// with a zero point (it holds negative values): value = input_scale * (q - input_zero_point).
struct Int8Scales {
  float input_scale = 1.0f;
  int64_t input_zero_point = 0;
  /// One per `conv_layers` entry; the head's is unused (it writes float32 logits).
  std::vector<float> outputs;
};

/// The largest int8 weight magnitude this CPU's kernels take without overflow: 127 with VNNI or
/// AMX; 63 without (their 16-bit pair sums would saturate), as PyTorch's reduce_range.
int64_t int8_weight_levels();

/// w [O, C, kh, kw] quantized symmetrically per output channel: w ~ scales[o] * values[o, ...],
/// values int8 in [-levels, levels], scales float32 [O] (max |w_o| / levels; a tiny floor for zero channels).
struct QuantizedWeight {
  at::Tensor values, scales;
};
/// Per channel along `axis` (0 for convolutions [O, C, k, k], 1 for transposed ones [C, O, k, k]).
QuantizedWeight quantize_per_channel(const at::Tensor& w, int64_t axis = 0, int64_t levels = int8_weight_levels());

/// The stride-2 transposed convolution of the U-Net (kernel 2, padding 0; or kernel 3, padding 1,
/// output padding 1) as a stride-1 convolution whose output channels hold the four output phases,
/// followed by pixel_shuffle(2): w [C, O, k, k] (any dtype, e.g. int8 values) -> [4O, C, k', k']
/// with channel 4o + 2a + b producing output pixel (2i + a, 2j + b); k' = 1 for k = 2, 2 for k = 3.
/// For k = 3 the input needs one zero row at the bottom and one zero column at the right.
at::Tensor subpixel_weight(const at::Tensor& w);

/// x [N, C, H, W] u8 with zero point 0, channels-last -> u8 [N, C, H/2, W/2]: 2x2 max pooling,
/// which commutes with the quantization (same scale).
at::Tensor max_pool2_u8(const at::Tensor& x);

/// Float x quantized to u8: clamp(round(x / scale) + zero_point, 0, 255), channels-last.
at::Tensor quantize_u8(const at::Tensor& x, float scale, int64_t zero_point);

/// A quantized convolution's weights reordered once for oneDNN, for u8 inputs of `input` shape
/// quantized with (`input_scale`, `input_zero_point`), stride 1, square `padding`.
at::Tensor int8_pack(const QuantizedWeight& w, float input_scale, int64_t input_zero_point, int64_t padding,
                     const std::vector<int64_t>& input);

/// conv2d(dequantized x, dequantized w) + bias, one oneDNN call: with `output_scale` > 0, the
/// ReLU and the requantization to u8 (zero point 0) fused; with `output_scale` 0, float32 output
/// without ReLU (the head's logits). x u8 channels-last; `packed` from `int8_pack`; `w_scales`
/// float32 [O]; bias float32 [O].
at::Tensor int8_conv(const at::Tensor& x, float x_scale, int64_t x_zero_point, const at::Tensor& packed,
                     const at::Tensor& w_scales, const at::Tensor& bias, int64_t padding, float output_scale);

}  // namespace unet
