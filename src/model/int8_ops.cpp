// int8 convolutions on oneDNN through LibTorch's `onednn::qconv_pointwise`.
//
// Why these operators: they take plain u8/s8 tensors with their scales as arguments (no quantized
// tensor types), prepack the weights once (`onednn::qconv_prepack`), and fuse the bias, the ReLU
// and the requantization of the output into the convolution, so activations stay u8 from layer to
// layer. oneDNN picks the kernel for the CPU at run time (AMX-INT8, AVX512-VNNI, AVX-VNNI, AVX2).
// There is no quantized transposed convolution among them: the U-Net's stride-2 up-sampling is
// rewritten as a stride-1 convolution producing its four output phases, then a pixel shuffle
// (`subpixel_weight`), exact in integers. Max pooling on u8 is four strided views' maximum.
#include "unet/model/int8_ops.h"

#include "unet/runtime/error.h"
#include "unet/runtime/precision.h"

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>

#include <cctype>
#include <cstdlib>

namespace unet {
namespace {

using Scalars = c10::List<std::optional<at::Scalar>>;

}  // namespace

bool int8_available() {
  static const bool available = [] {
    auto& d = c10::Dispatcher::singleton();
    return at::hasMKLDNN() && d.findSchema({"onednn::qconv_prepack", ""}).has_value() &&
           d.findSchema({"onednn::qconv_pointwise", ""}).has_value();
  }();
  return available;
}

std::string int8_units_for(const std::string& cpu_flags, const std::string& isa_limit) {
  const std::string flags = " " + cpu_flags + " ";
  auto has = [&](const char* f) { return flags.find(std::string(" ") + f + " ") != std::string::npos; };
  std::string isa = isa_limit;
  for (char& c : isa) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  auto starts = [&](const char* prefix) { return isa.rfind(prefix, 0) == 0; };
  // oneDNN's ISA names (cpu_isa_traits): each allows the ISAs it is a superset of. AVX2_VNNI*
  // allows AVX-VNNI only; AVX512_CORE_VNNI and above (BF16, FP16, AMX, AVX10) allow AVX512-VNNI
  // but not AVX-VNNI; only the AMX ones (AVX512_CORE_AMX*, AVX10_*_AMX*) allow AMX.
  const bool all = isa.empty() || isa == "ALL" || isa == "DEFAULT";
  const bool amx = all || ((starts("AVX512_CORE_AMX") || starts("AVX10")) && isa.find("AMX") != std::string::npos);
  const bool avx512_vnni = all || (starts("AVX512_CORE_") && isa != "AVX512_CORE") || starts("AVX10");
  const bool avx_vnni = all || starts("AVX2_VNNI");
  const bool avx2 = all || starts("AVX2") || starts("AVX512") || starts("AVX10");
  if (has("amx_int8") && amx) return "AMX-INT8";
  if (has("avx512_vnni") && avx512_vnni) return "AVX512-VNNI";
  if (has("avx_vnni") && avx_vnni) return "AVX-VNNI";
  if (has("avx2") && avx2) return "AVX2 (no int8 dot-product instructions: slow)";
  return "";
}

std::string cpu_int8_units() {
  static const std::string units = [] {
    // oneDNN's ISA limit (ONEDNN_MAX_CPU_ISA, e.g. AVX2) keeps it off the units above the limit.
    const char* limit = std::getenv("ONEDNN_MAX_CPU_ISA");
    if (!limit) limit = std::getenv("DNNL_MAX_CPU_ISA");
    return int8_units_for(cpu_flags(), limit ? limit : "ALL");
  }();
  return units;
}

int64_t int8_weight_levels() {
  // Without VNNI, oneDNN multiplies u8 x s8 pairs with vpmaddubsw, whose 16-bit sums saturate
  // beyond 32767: 2 x 255 x 127 does, 2 x 255 x 63 does not (PyTorch's reduce_range).
  const std::string units = cpu_int8_units();
  return units == "AMX-INT8" || units == "AVX512-VNNI" || units == "AVX-VNNI" ? 127 : 63;
}

QuantizedWeight quantize_per_channel(const at::Tensor& w, int64_t axis, int64_t levels) {
  const at::Tensor f = w.detach().to(at::kFloat).contiguous();
  std::vector<int64_t> dims;
  for (int64_t d = 0; d < f.dim(); ++d)
    if (d != axis) dims.push_back(d);
  const at::Tensor scales = (f.abs().amax(dims) / static_cast<double>(levels)).clamp_min(1e-12);
  std::vector<int64_t> shape(static_cast<size_t>(f.dim()), 1);
  shape[static_cast<size_t>(axis)] = f.size(axis);
  const at::Tensor values = (f / scales.view(shape)).round().clamp(-levels, levels).to(at::kChar);
  return {values, scales};
}

at::Tensor subpixel_weight(const at::Tensor& w) {
  const int64_t in = w.size(0), out = w.size(1), k = w.size(2);
  if (w.dim() != 4 || (k != 2 && k != 3) || w.size(3) != k) throw Error("subpixel_weight: a [C, O, 2|3, 2|3] weight is needed");
  const int64_t taps = k == 2 ? 1 : 2;
  // phase a of a kernel-3 transposed convolution (stride 2, padding 1): output 2m takes x[m] w[1];
  // output 2m + 1 takes x[m] w[2] + x[m + 1] w[0]. Kernel 2: output 2m + a takes x[m] w[a].
  auto kernel_index = [&](int64_t phase, int64_t tap) -> int64_t {
    if (k == 2) return phase;
    if (phase == 0) return tap == 0 ? 1 : -1;
    return tap == 0 ? 2 : 0;
  };
  at::Tensor s = at::zeros({out, 2, 2, in, taps, taps}, w.options());
  for (int64_t a = 0; a < 2; ++a)
    for (int64_t b = 0; b < 2; ++b)
      for (int64_t ty = 0; ty < taps; ++ty)
        for (int64_t tx = 0; tx < taps; ++tx) {
          const int64_t ky = kernel_index(a, ty), kx = kernel_index(b, tx);
          if (ky < 0 || kx < 0) continue;
          s.select(1, a).select(1, b).select(2, ty).select(2, tx).copy_(w.select(2, ky).select(2, kx).t());
        }
  return s.reshape({4 * out, in, taps, taps});
}

at::Tensor max_pool2_u8(const at::Tensor& x) {
  using at::indexing::Slice;
  const int64_t h = x.size(2) / 2 * 2, w = x.size(3) / 2 * 2;
  auto view = [&](int64_t dy, int64_t dx) {
    return x.index({Slice(), Slice(), Slice(dy, h, 2), Slice(dx, w, 2)});
  };
  return at::maximum(at::maximum(view(0, 0), view(1, 0)), at::maximum(view(0, 1), view(1, 1)));
}

at::Tensor quantize_u8(const at::Tensor& x, float scale, int64_t zero_point) {
  return (x.to(at::kFloat) / scale)
      .round_()
      .add_(static_cast<double>(zero_point))
      .clamp_(0, 255)
      .to(at::kByte)
      .contiguous(at::MemoryFormat::ChannelsLast);
}

at::Tensor int8_pack(const QuantizedWeight& w, float input_scale, int64_t input_zero_point, int64_t padding,
                     const std::vector<int64_t>& input) {
  // Registered with by-value tensors and c10::List for int[] (aten/src/ATen/native/quantized/cpu/qconv_prepack.cpp).
  using Ints = c10::List<int64_t>;
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("onednn::qconv_prepack", "")
                             .typed<at::Tensor(at::Tensor, at::Tensor, double, int64_t, Ints, Ints, Ints, int64_t,
                                               std::optional<Ints>)>();
  return op.call(w.values, w.scales, input_scale, input_zero_point, Ints({1, 1}), Ints({padding, padding}), Ints({1, 1}), 1,
                 Ints(input));
}

at::Tensor int8_conv(const at::Tensor& x, float x_scale, int64_t x_zero_point, const at::Tensor& packed,
                     const at::Tensor& w_scales, const at::Tensor& bias, int64_t padding, float output_scale) {
  // Registered with by-value tensors and c10::List for int[] (aten/src/ATen/native/quantized/cpu/qconv.cpp).
  using Ints = c10::List<int64_t>;
  static const auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("onednn::qconv_pointwise", "")
          .typed<at::Tensor(at::Tensor, double, int64_t, at::Tensor, at::Tensor, at::Tensor, std::optional<at::Tensor>, Ints,
                            Ints, Ints, int64_t, double, int64_t, std::optional<at::ScalarType>, c10::string_view, Scalars,
                            std::optional<c10::string_view>)>();
  const bool logits = output_scale <= 0.0f;
  // The bias on the accumulator's grid (x_scale * w_scale), as int8 runtimes add it (an int32 in
  // QDQ files): the same sums as theirs, not a float bias's fraction of a step.
  const at::Tensor step = w_scales.to(at::kDouble) * static_cast<double>(x_scale);
  const at::Tensor on_grid = (at::round(bias.to(at::kDouble) / step) * step).to(at::kFloat);
  // Symmetric weights: zero points all 0.
  return op.call(x, x_scale, x_zero_point, packed, w_scales, at::zeros({w_scales.size(0)}, at::kLong), on_grid, Ints({1, 1}),
                 Ints({padding, padding}), Ints({1, 1}), 1, logits ? 1.0 : output_scale, 0, logits ? at::kFloat : at::kByte,
                 logits ? "none" : "relu", Scalars(), c10::string_view(""));
}

}  // namespace unet
