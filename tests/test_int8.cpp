// Tests of int8 inference: the quantized convolution against a float reference, the sub-pixel
// up-sampling, calibration, the int8 engine against the float32 network, and the calibration record.
#include "test_support.h"

#include "unet/infer/int8_engine.h"
#include "unet/infer/quantize.h"
#include "unet/model/geometry.h"
#include "unet/model/int8_ops.h"
#include "unet/runtime/files.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <filesystem>

using namespace unet;
using unet::test::TempDir;

namespace {

#define REQUIRE_INT8()                                                                              \
  if (!Int8Engine::available()) GTEST_SKIP() << "no int8 on this CPU or LibTorch (" << cpu_int8_units() << ")"

/// Calibrates `model` by min-max (or `method`) on `inputs`.
Int8Scales calibrate(const UNet& model, const at::Tensor& inputs, CalibrationMethod method = CalibrationMethod::kMinMax) {
  Calibrator c(model->options());
  c.observe(model, inputs);
  return c.scales(method);
}

/// Inputs in [-1, 1] with structure (smoothed noise), as preprocessed images are.
at::Tensor images(int64_t n, int64_t channels, int64_t size, uint64_t seed) {
  at::manual_seed(seed);
  const at::Tensor x = at::avg_pool2d(at::randn({n, channels, size + 4, size + 4}), 5, 1);
  return (x / x.abs().max()).contiguous();
}

/// `f` throws a `unet::Error` whose message holds `text`.
template <class F>
void expect_error_contains(F f, const std::string& text) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one with: " << text;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(text), std::string::npos) << e.what();
  }
}

}  // namespace

TEST(Int8, QuantizedConvolutionMatchesTheFloatReferenceWithinHalfAStep) {
  REQUIRE_INT8();
  c10::InferenceMode guard;
  at::manual_seed(1);
  for (int64_t padding : {0, 1}) {
    const at::Tensor x = at::rand({2, 8, 12, 12}) * 3.0;  // post-ReLU-like: u8 with zero point 0
    const at::Tensor w = at::randn({16, 8, 3, 3}) * 0.2, b = at::randn({16});
    const float xs = 3.0f / 255.0f;
    const at::Tensor xq = quantize_u8(x, xs, 0);
    const QuantizedWeight qw = quantize_per_channel(w);
    // The reference: the same integers, dequantized, in float64; then ReLU and requantization.
    const at::Tensor xd = xq.to(at::kDouble) * xs, wd = qw.values.to(at::kDouble) * qw.scales.to(at::kDouble).view({16, 1, 1, 1});
    const at::Tensor ref = at::relu(at::conv2d(xd, wd, b.to(at::kDouble), 1, padding));
    const float ys = static_cast<float>(ref.max().item<double>() / 255.0);
    const at::Tensor packed = int8_pack(qw, xs, 0, padding, xq.sizes().vec());
    const at::Tensor y = int8_conv(xq, xs, 0, packed, qw.scales, b, padding, ys);
    ASSERT_EQ(y.scalar_type(), at::kByte);
    ASSERT_EQ(y.sizes(), ref.sizes());
    // Within one step of the output (rounding of the requantization, float accumulation order).
    const double err = (y.to(at::kDouble) * ys - ref).abs().max().item<double>();
    EXPECT_LE(err, 1.01 * ys) << "padding " << padding;
    // float32 output (the head): no ReLU, no requantization.
    const at::Tensor logits = int8_conv(xq, xs, 0, packed, qw.scales, b, padding, 0.0f);
    const at::Tensor ref_logits = at::conv2d(xd, wd, b.to(at::kDouble), 1, padding);
    EXPECT_EQ(logits.scalar_type(), at::kFloat);
    EXPECT_LT((logits.to(at::kDouble) - ref_logits).abs().max().item<double>(), 1e-3);
  }
}

TEST(Int8, WeightsUseTheRangeTheKernelsCanAccumulate) {
  // 127 with VNNI or AMX; 63 on AVX2, whose 16-bit pair sums would otherwise saturate.
  const int64_t levels = int8_weight_levels();
  const std::string units = cpu_int8_units();
  EXPECT_EQ(levels, units.rfind("AVX2", 0) == 0 || units.empty() ? 63 : 127) << units;
  const at::Tensor w = at::tensor({0.5f, -2.0f, 1.0f, 0.25f}).view({2, 2, 1, 1});
  for (int64_t l : {int64_t{63}, int64_t{127}}) {
    const QuantizedWeight q = quantize_per_channel(w, 0, l);
    // Each channel's largest magnitude maps to +-levels; the others in proportion.
    EXPECT_EQ(q.values.flatten()[1].item<int>(), -l);
    EXPECT_EQ(q.values.flatten()[2].item<int>(), l);
    EXPECT_FLOAT_EQ(q.scales[0].item<float>(), 2.0f / l);
    EXPECT_EQ(q.values.abs().max().item<int>(), l);
  }
}

TEST(Int8, UnitsFollowOneDnnsIsaLimit) {
  const std::string sapphire = "fpu sse4_1 avx avx2 avx512f avx512_vnni avx512_bf16 amx_tile amx_int8";
  const std::string alder = "fpu sse4_1 avx avx2 avx_vnni";
  const std::string slow = "AVX2 (no int8 dot-product instructions: slow)";
  EXPECT_EQ(int8_units_for(sapphire, "ALL"), "AMX-INT8");
  EXPECT_EQ(int8_units_for(sapphire, ""), "AMX-INT8");
  EXPECT_EQ(int8_units_for(sapphire, "avx512_core_amx"), "AMX-INT8");
  EXPECT_EQ(int8_units_for(sapphire, "AVX10_1_512_AMX"), "AMX-INT8");
  EXPECT_EQ(int8_units_for(sapphire, "AVX10_1_512"), "AVX512-VNNI");
  EXPECT_EQ(int8_units_for(sapphire, "AVX512_CORE_BF16"), "AVX512-VNNI");
  EXPECT_EQ(int8_units_for(sapphire, "AVX512_CORE_VNNI"), "AVX512-VNNI");
  EXPECT_EQ(int8_units_for(sapphire, "AVX512_CORE"), slow);
  EXPECT_EQ(int8_units_for(sapphire, "AVX2_VNNI"), slow);  // the CPU has no AVX-VNNI
  EXPECT_EQ(int8_units_for(sapphire, "AVX2"), slow);
  EXPECT_EQ(int8_units_for(sapphire, "SSE41"), "");
  EXPECT_EQ(int8_units_for(alder, "ALL"), "AVX-VNNI");
  EXPECT_EQ(int8_units_for(alder, "AVX2_VNNI_2"), "AVX-VNNI");
  EXPECT_EQ(int8_units_for(alder, "AVX512_CORE_VNNI"), slow);  // not a superset of AVX2_VNNI
  EXPECT_EQ(int8_units_for("fpu sse4_1", "ALL"), "");
  EXPECT_EQ(int8_units_for("avx2x", "ALL"), "");  // whole flags only
}

TEST(Int8, EightBitImagesQuantizeAlikeHoweverTheyWereNormalised) {
  // unet normalises k / 255 * 2 - 1, a bioimage.io consumer k * (2 / 255) - 1, a script
  // k / 127.5 - 1: float32 results an ulp apart. At 255 steps over [-1, 1] every pixel sits on a
  // rounding tie and the three land a step apart; the input grid must give them one u8 value.
  c10::InferenceMode guard;
  for (int64_t first : {0, 1, 3})
    for (int64_t last : {255, 254, 250}) {
      const at::Tensor k = at::arange(first, last + 1, at::kFloat).view({1, 1, 1, -1});
      const at::Tensor a = k.div(255.0).mul(2.0).sub(1.0), b = k.mul(2.0f / 255.0f).sub(1.0), c = k.div(127.5).sub(1.0);
      const double lo = std::min(0.0, a.min().item<double>()), hi = std::max(0.0, a.max().item<double>());
      const auto [scale, zero_point] = Calibrator::input_grid(a, lo, hi);
      EXPECT_LE(scale, (hi - lo) / 255.0 * 1.012) << first << ".." << last;
      const at::Tensor qa = quantize_u8(a, scale, zero_point);
      EXPECT_TRUE(at::equal(qa, quantize_u8(b, scale, zero_point))) << first << ".." << last;
      EXPECT_TRUE(at::equal(qa, quantize_u8(c, scale, zero_point))) << first << ".." << last;
      // At most a few of the grey levels share a u8 value (the larger step, or clipping at the ends).
      EXPECT_GE(std::get<0>(at::_unique(qa)).numel(), k.numel() - 4) << first << ".." << last;
    }
}

TEST(Int8, ImageZeroPointIsHonouredIncludingPadding) {
  REQUIRE_INT8();
  c10::InferenceMode guard;
  at::manual_seed(2);
  const at::Tensor x = at::rand({1, 1, 10, 10}) * 2.0 - 1.0;  // negative values: zero point 128
  const at::Tensor w = at::randn({4, 1, 3, 3}), b = at::zeros({4});
  const float xs = 2.0f / 255.0f;
  const at::Tensor xq = quantize_u8(x, xs, 128);
  const QuantizedWeight qw = quantize_per_channel(w);
  const at::Tensor xd = (xq.to(at::kDouble) - 128) * xs, wd = qw.values.to(at::kDouble) * qw.scales.to(at::kDouble).view({4, 1, 1, 1});
  const at::Tensor ref = at::conv2d(xd, wd, b.to(at::kDouble), 1, 1);  // zero padding in value
  const at::Tensor y = int8_conv(xq, xs, 128, int8_pack(qw, xs, 128, 1, xq.sizes().vec()), qw.scales, b, 1, 0.0f);
  EXPECT_LT((y.to(at::kDouble) - ref).abs().max().item<double>(), 1e-3);
}

TEST(Int8, SubpixelFormIsTheTransposedConvolution) {
  c10::InferenceMode guard;
  at::manual_seed(3);
  for (int64_t k : {2, 3}) {
    const int64_t p = k == 3 ? 1 : 0;
    const at::Tensor x = at::randn({2, 6, 5, 7}), w = at::randn({6, 4, k, k}), b = at::randn({4});
    const at::Tensor ref = at::conv_transpose2d(x, w, b, 2, p, p);
    const at::Tensor input = k == 3 ? at::constant_pad_nd(x, {0, 1, 0, 1}, 0) : x;
    const at::Tensor y = at::pixel_shuffle(at::conv2d(input, subpixel_weight(w), b.repeat_interleave(4)), 2);
    ASSERT_EQ(y.sizes(), ref.sizes()) << "kernel " << k;
    EXPECT_LT((y - ref).abs().max().item<double>(), 1e-4) << "kernel " << k;
  }
}

TEST(Int8, MaxPoolingOnU8IsExact) {
  c10::InferenceMode guard;
  const at::Tensor x = at::randint(0, 256, {2, 5, 8, 6}, at::kByte).contiguous(at::MemoryFormat::ChannelsLast);
  EXPECT_TRUE(at::equal(max_pool2_u8(x).contiguous(), at::max_pool2d(x.to(at::kFloat), {2, 2}, {2, 2}).to(at::kByte).contiguous()));
}

TEST(Int8, CalibrationIsReproducibleAndConcatenatedLayersShareAScale) {
  const UNetOptions o = UNetOptions().depth(2).filters(4);
  at::manual_seed(4);
  UNet model(o);
  model->eval();
  const at::Tensor x = images(2, 1, 44, 5);
  for (auto method : {CalibrationMethod::kMinMax, CalibrationMethod::kPercentile, CalibrationMethod::kMse}) {
    const Int8Scales a = calibrate(model, x, method), b = calibrate(model, x, method);
    EXPECT_EQ(a.outputs, b.outputs);
    EXPECT_EQ(a.input_scale, b.input_scale);
    ASSERT_EQ(a.outputs.size(), conv_layers(o).size());
    for (const auto& [up, skip] : concatenated_layers(o)) EXPECT_EQ(a.outputs[up], a.outputs[skip]);
  }
  // Clipping methods never widen min-max's range.
  const Int8Scales minmax = calibrate(model, x), mse = calibrate(model, x, CalibrationMethod::kMse);
  for (size_t k = 0; k + 1 < minmax.outputs.size(); ++k) EXPECT_LE(mse.outputs[k], minmax.outputs[k] * 1.0001f);
}

TEST(Int8, EngineMatchesTheFloatNetworkForEveryArchitecture) {
  REQUIRE_INT8();
  struct Case {
    UNetOptions options;
    int64_t batch, size;
  };
  const std::vector<Case> cases = {
      {UNetOptions().depth(2).filters(8), 1, 60},
      {UNetOptions().depth(2).filters(8).in_channels(3).classes(4), 2, 64},
      {UNetOptions().depth(3).filters(8).padding(Padding::kSame), 2, 48},
      {UNetOptions().depth(2).filters(8).up_kernel(2).classes(3), 3, 52},
  };
  for (const auto& c : cases) {
    at::manual_seed(6);
    UNet model(c.options);
    model->eval();
    const at::Tensor x = images(c.batch, c.options.in_channels(), c.size, 7);
    const at::Tensor ref = observed_forward(model, x, [](size_t, const at::Tensor&) {});
    Int8Engine engine(model, calibrate(model, x));
    const at::Tensor y = engine.forward(x).contiguous();
    ASSERT_EQ(y.sizes(), ref.sizes()) << c.options.describe();
    // Logits within 5% of their range; classes agree almost everywhere.
    const double range = (ref.max() - ref.min()).item<double>();
    EXPECT_LT((y - ref).abs().max().item<double>(), 0.05 * range) << c.options.describe();
    const double agree = y.argmax(1).eq(ref.argmax(1)).to(at::kFloat).mean().item<double>();
    EXPECT_GT(agree, 0.98) << c.options.describe();
  }
}

TEST(Int8, EngineRefusesScalesOfAnotherNetwork) {
  REQUIRE_INT8();
  UNet model(UNetOptions().depth(2).filters(4));
  Int8Scales s;
  s.outputs.assign(3, 0.1f);
  EXPECT_THROW(Int8Engine(model, s), Error);
}

TEST(Int8, RecordRoundTripsAndIsCheckedAgainstTheWeights) {
  TempDir dir;
  const UNetOptions o = UNetOptions().depth(2).filters(4);
  at::manual_seed(8);
  UNet model(o);
  const std::string ckpt = (std::filesystem::path(dir.path()) / "checkpoint.pt").string();
  Int8Record r;
  r.scales = calibrate(model, images(1, 1, 44, 9));
  r.method = "minmax";
  r.step = 12;
  r.fingerprint = weights_fingerprint(model);
  write_text_atomically(int8_scales_path(ckpt), int8_record_json(r, o));
  const Int8Scales back = load_int8_scales(ckpt, model, 12);
  EXPECT_EQ(back.outputs.size(), r.scales.outputs.size());
  EXPECT_FLOAT_EQ(back.outputs[1], r.scales.outputs[1]);
  EXPECT_EQ(back.input_zero_point, r.scales.input_zero_point);
  // Another step, other weights, another architecture, no file: one clear line each.
  expect_error_contains([&] { load_int8_scales(ckpt, model, 13); }, "calibrated for the weights of step 12");
  UNet other(o);
  expect_error_contains([&] { load_int8_scales(ckpt, other, 12); }, "run unet quantize again");
  expect_error_contains([&] { read_int8_record(int8_scales_path(ckpt), UNetOptions().depth(3).filters(4)); }, "layers");
  std::filesystem::remove(int8_scales_path(ckpt));
  expect_error_contains([&] { load_int8_scales(ckpt, model, 12); }, "run unet quantize");
}
