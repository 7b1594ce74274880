// The int8 CPU engine and the float32 pass that calibrates it, on one walk of the U-Net's graph.
//
// Why one walk: calibration measures each convolution's output in the order the int8 pass
// consumes its scales; `walk` states that order once (conv_layers' order) and two executors run
// it, one in float32 with observers (what the scales are measured on), one in int8 (what runs).
// The int8 pass keeps activations u8 from layer to layer: the convolution writes u8 after its
// fused ReLU and requantization; max pooling is exact on u8; the up-sampling's pixel shuffle and
// the skip's crop are copied straight into the concatenation's buffer (one pass, both at the
// shared scale that calibration gave the pair).
#include "unet/infer/int8_engine.h"

#include "unet/model/geometry.h"
#include "unet/runtime/error.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

namespace unet {
namespace {

/// The U-Net's forward pass over any executor: `ops.conv(x, k)`, `ops.up(x, k)` (up-sampling and
/// its ReLU), `ops.pool(x)`, `ops.cat(up, skip)` (crop and concatenate), `ops.head(x, k)`.
template <class Ops, class Act>
auto walk(const UNetOptions& o, Act x, Ops& ops) {
  size_t k = 0;
  std::vector<Act> skips;
  for (int64_t level = 0; level < o.depth(); ++level) {
    x = ops.conv(x, k);
    x = ops.conv(x, k + 1);
    k += 2;
    skips.push_back(x);
    x = ops.pool(x);
  }
  x = ops.conv(x, k);
  x = ops.conv(x, k + 1);
  k += 2;
  for (int64_t i = 0; i < o.depth(); ++i) {
    x = ops.cat(ops.up(x, k), skips[skips.size() - 1 - static_cast<size_t>(i)]);
    x = ops.conv(x, k + 1);
    x = ops.conv(x, k + 2);
    k += 3;
  }
  return ops.head(x, k);
}

int64_t conv_padding(const UNetOptions& o) { return o.padding() == Padding::kSame ? 1 : 0; }

/// float32, the plain LibTorch operators, every convolution's output observed.
struct FloatOps {
  const UNetOptions& o;
  std::vector<at::Tensor> weights, biases;
  const std::function<void(size_t, const at::Tensor&)>& observe;

  at::Tensor conv(const at::Tensor& x, size_t k) {
    at::Tensor y = at::relu(at::conv2d(x, weights[k], biases[k], 1, conv_padding(o)));
    observe(k, y);
    return y;
  }
  at::Tensor up(const at::Tensor& x, size_t k) {
    const int64_t p = o.up_kernel() == 3 ? 1 : 0;
    at::Tensor y = at::relu(at::conv_transpose2d(x, weights[k], biases[k], 2, p, p));
    observe(k, y);
    return y;
  }
  at::Tensor pool(const at::Tensor& x) { return at::max_pool2d(x, {2, 2}, {2, 2}); }
  at::Tensor cat(const at::Tensor& up, const at::Tensor& skip) { return at::cat({up, centre_crop(skip, up)}, 1); }
  at::Tensor head(const at::Tensor& x, size_t k) {
    at::Tensor y = at::conv2d(x, weights[k], biases[k]);
    observe(k, y);
    return y;
  }
};

/// A u8 activation and its quantization.
struct Quantized {
  at::Tensor q;
  float scale;
  int64_t zero_point;
};

}  // namespace

at::Tensor observed_forward(const UNet& model, const at::Tensor& images,
                            const std::function<void(size_t, const at::Tensor&)>& observe) {
  c10::InferenceMode guard;
  const UNetOptions& o = model->options();
  output_size(o, images.size(2));
  const auto params = model->named_parameters();
  FloatOps ops{o, {}, {}, observe};
  for (const ConvLayer& layer : conv_layers(o)) {
    ops.weights.push_back(params[layer.name + ".weight"].detach().to(at::kFloat));
    ops.biases.push_back(params[layer.name + ".bias"].detach().to(at::kFloat));
  }
  return walk(o, images.to(at::kFloat), ops);
}

bool Int8Engine::available() { return int8_available() && !cpu_int8_units().empty(); }

Int8Engine::Int8Engine(const UNet& model, Int8Scales scales) : options_(model->options()), scales_(std::move(scales)) {
  if (!int8_available()) throw Error("this LibTorch has no oneDNN int8 convolutions (onednn::qconv_pointwise): int8 needs a build with oneDNN");
  if (cpu_int8_units().empty()) throw Error("this CPU has no int8 units oneDNN can use (AVX2, AVX-VNNI, AVX512-VNNI or AMX): use fp32");
  const std::vector<ConvLayer> layers = conv_layers(options_);
  if (scales_.outputs.size() != layers.size())
    throw Error("the int8 scales are for a network of " + std::to_string(scales_.outputs.size()) +
                " convolutions, this model has " + std::to_string(layers.size()));
  for (const auto& [up, skip] : concatenated_layers(options_))
    if (scales_.outputs[up] != scales_.outputs[skip])
      throw Error("the int8 scales of " + layers[up].name + " and " + layers[skip].name + " differ: they are concatenated");
  c10::InferenceMode guard;
  const auto params = model->named_parameters();
  for (const ConvLayer& layer : layers) {
    const at::Tensor w = params[layer.name + ".weight"].detach().to(at::kFloat).contiguous();
    const at::Tensor b = params[layer.name + ".bias"].detach().to(at::kFloat).contiguous();
    if (layer.kind == ConvLayer::kUpSample) {
      // Per output channel of the transposed convolution, shared by its four phases.
      const QuantizedWeight q = quantize_per_channel(w, 1);
      layers_.push_back({{subpixel_weight(q.values).contiguous(), q.scales.repeat_interleave(4)}, b.repeat_interleave(4), layer.kind});
    } else {
      layers_.push_back({quantize_per_channel(w, 0), b, layer.kind});
    }
  }
}

const std::vector<at::Tensor>& Int8Engine::packed_for(const std::vector<int64_t>& shape) {
  auto it = packed_.find(shape);
  if (it != packed_.end()) return it->second;
  // The input shape and scale of every layer, from a dry walk over shapes.
  std::vector<at::Tensor> packed(layers_.size());
  const int64_t pad = conv_padding(options_), up_pad = options_.up_kernel() == 3 ? 1 : 0;
  float scale = scales_.input_scale;
  int64_t zero_point = scales_.input_zero_point, n = shape[0], channels = shape[1], side = shape[2];
  std::vector<std::pair<int64_t, int64_t>> skips;  // channels, side
  auto pack = [&](size_t k, int64_t padding) {
    packed[k] = int8_pack(layers_[k].weight, scale, zero_point, padding, {n, channels, side, side});
    channels = layers_[k].weight.values.size(0);
    side += 2 * padding - (layers_[k].weight.values.size(2) - 1);
    scale = scales_.outputs[k];
    zero_point = 0;
  };
  size_t k = 0;
  for (int64_t level = 0; level <= options_.depth(); ++level) {
    pack(k++, pad);
    pack(k++, pad);
    skips.emplace_back(channels, side);
    side /= 2;
  }
  side *= 2;  // undo the last (bottleneck's) halving
  for (int64_t i = 0; i < options_.depth(); ++i) {
    side += up_pad;
    pack(k++, 0);
    channels = channels / 4 + skips[skips.size() - 2 - static_cast<size_t>(i)].first;
    side *= 2;
    pack(k++, pad);
    pack(k++, pad);
  }
  pack(k, 0);
  return packed_.emplace(shape, std::move(packed)).first->second;
}

namespace {

/// int8: the engine's quantized layers, u8 activations.
struct Int8Ops {
  const UNetOptions& o;
  const std::vector<Int8Engine::Layer>& layers;
  const std::vector<at::Tensor>& packed;
  const Int8Scales& scales;

  Quantized conv(const Quantized& x, size_t k) {
    const Int8Engine::Layer& l = layers[k];
    return {int8_conv(x.q, x.scale, x.zero_point, packed[k], l.weight.scales, l.bias, conv_padding(o), scales.outputs[k]),
            scales.outputs[k], 0};
  }
  /// The phases [N, 4O, H, W] (input padded at the bottom and right for kernel 3), shuffled later.
  Quantized up(const Quantized& x, size_t k) {
    const Int8Engine::Layer& l = layers[k];
    const at::Tensor input = o.up_kernel() == 3 ? at::constant_pad_nd(x.q, {0, 1, 0, 1}, 0) : x.q;
    return {int8_conv(input.contiguous(at::MemoryFormat::ChannelsLast), x.scale, x.zero_point, packed[k], l.weight.scales,
                      l.bias, 0, scales.outputs[k]),
            scales.outputs[k], 0};
  }
  Quantized pool(const Quantized& x) { return {max_pool2_u8(x.q), x.scale, x.zero_point}; }
  /// pixel_shuffle(up) and the skip's centre crop, written into one channels-last buffer.
  Quantized cat(const Quantized& up, const Quantized& skip) {
    const int64_t n = up.q.size(0), c = up.q.size(1) / 4, h = up.q.size(2), w = up.q.size(3), cs = skip.q.size(1);
    at::Tensor out = at::empty({n, c + cs, 2 * h, 2 * w}, up.q.options().memory_format(at::MemoryFormat::ChannelsLast));
    // up's channels-last memory is [N, H, W, (c, a, b)]; out's pixel (2i + a, 2j + b) takes it.
    const at::Tensor phases = up.q.permute({0, 2, 3, 1}).view({n, h, w, c, 2, 2}).permute({0, 3, 1, 4, 2, 5});
    out.narrow(1, 0, c).view({n, c, h, 2, w, 2}).copy_(phases);
    out.narrow(1, c, cs).copy_(centre_crop(skip.q, out));
    return {out, up.scale, 0};
  }
  at::Tensor head(const Quantized& x, size_t k) {
    const Int8Engine::Layer& l = layers[k];
    return int8_conv(x.q, x.scale, x.zero_point, packed[k], l.weight.scales, l.bias, 0, 0.0f);
  }
};

}  // namespace

at::Tensor Int8Engine::forward(const at::Tensor& images) {
  output_size(options_, images.size(2));  // a legal size, or the error that names the nearest ones
  c10::InferenceMode guard;
  const std::vector<at::Tensor>& packed = packed_for(images.sizes().vec());
  Int8Ops ops{options_, layers_, packed, scales_};
  const Quantized x{quantize_u8(images, scales_.input_scale, scales_.input_zero_point), scales_.input_scale,
                    scales_.input_zero_point};
  return walk(options_, x, ops);
}

}  // namespace unet
