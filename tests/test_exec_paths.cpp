// One table-driven test of the CPU execution paths: every path (the inference engine, the fused
// training path) x precision (float32, bfloat16) x layout (NCHW, channels-last) x convolution
// algorithm (direct, Winograd F(4x4), F(6x6), auto), on networks that contain every op the
// network has (3x3 convolutions with valid and same padding, both up-sampling kernels, the 1x1
// head, pooling, cropping and concatenation), against the plain LibTorch path run in float64. The
// training rows check the input's and the first convolution's gradients too (in bfloat16 against
// the error of LibTorch's own bfloat16 autocast, as far from float64 as 15%). Which kernel each
// convolution runs is asserted from `conv_kernels` (conv_plan.h), the one place that decides it,
// and the choice of path itself (`module_path`, `inference_path`) is checked case by case.
#include "test_support.h"

#include "unet/infer/cpu_engine.h"
#include "unet/model/conv_plan.h"
#include "unet/model/geometry.h"
#include "unet/model/onednn_ops.h"
#include "unet/runtime/precision.h"

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <string>
#include <vector>

using namespace unet;

namespace {

struct Network {
  UNetOptions options;
  int64_t batch, side;
};

/// Two small networks with every op: valid padding and 3x3 up-sampling; same padding, 2x2
/// up-sampling, RGB input and 4 classes. 64 filters, so that `auto` picks Winograd somewhere.
std::vector<Network> networks() {
  return {{UNetOptions().depth(1).filters(64).dropout(0), 2, 36},
          {UNetOptions().depth(1).filters(64).padding(Padding::kSame).up_kernel(2).in_channels(3).classes(4).dropout(0),
           1, 28}};
}

enum class PathKind { kEngine, kFusedTraining };

struct Row {
  PathKind path;
  at::ScalarType dtype;
  bool channels_last;
  ConvAlgorithm algorithm;

  std::string describe() const {
    return std::string(path == PathKind::kEngine ? "engine" : "fused training") + ", " +
           (dtype == at::kFloat ? "float32" : "bfloat16") + ", " + (channels_last ? "NHWC" : "NCHW") + ", " +
           name_of(conv_algorithm_names(), algorithm);
  }
};

std::vector<Row> rows() {
  std::vector<Row> table;
  for (const PathKind path : {PathKind::kEngine, PathKind::kFusedTraining})
    for (const at::ScalarType dtype : {at::kFloat, at::kBFloat16})
      for (const bool channels_last : {false, true})
        for (const ConvAlgorithm algorithm :
             {ConvAlgorithm::kDirect, ConvAlgorithm::kWinograd, ConvAlgorithm::kWinograd6, ConvAlgorithm::kAuto})
          table.push_back({path, dtype, channels_last, algorithm});
  return table;
}

/// The same weights (same seed) in a fresh model.
UNet model_with_seed(const UNetOptions& options) {
  at::manual_seed(21);
  return UNet(options);
}

/// max |a - b| / max |b|: relative to the tensor's own range (gradients are far smaller than 1).
double relative_error(const at::Tensor& a, const at::Tensor& b) {
  const at::Tensor x = a.to(at::kDouble).contiguous(), y = b.to(at::kDouble).contiguous();
  return (x - y).abs().max().item<double>() / std::max(1e-30, y.abs().max().item<double>());
}

/// Output, input gradient and first convolution's weight gradient of sum(out * r), training mode.
std::vector<at::Tensor> train_pass(UNet& model, const at::Tensor& x, const at::Tensor& r) {
  model->train();
  for (auto& p : model->parameters()) p.mutable_grad() = at::Tensor();
  const at::Tensor input = x.detach().clone().requires_grad_(true);
  const at::Tensor out = model->forward(input);
  (out.to(r.scalar_type()) * r).sum().backward();
  return {out.detach(), input.grad(), model->named_parameters()["down.0.conv1.weight"].grad()};
}

}  // namespace

TEST(ExecPaths, EveryPathPrecisionLayoutAndAlgorithmMatchesFloat64) {
  if (!onednn_fusion_available()) GTEST_SKIP() << "this LibTorch has no oneDNN operators";
  for (const Network& n : networks()) {
    UNet reference = model_with_seed(n.options);
    reference->to(at::kDouble);
    at::manual_seed(22);
    const at::Tensor x = at::randn({n.batch, n.options.in_channels(), n.side, n.side});
    const int64_t out = output_size(n.options, n.side);
    const at::Tensor r = at::randn({n.batch, n.options.classes(), out, out});
    const std::vector<at::Tensor> exact = train_pass(reference, x.to(at::kDouble), r.to(at::kDouble));
    // LibTorch's own bfloat16 training (autocast, no fusion): its gradients are 10-15% off float64
    // in max-relative terms (measured on a Zen 4 EPYC with avx512_bf16), the bar the fused path meets.
    std::vector<double> plain_bf16_error(exact.size(), 0.0);
    if (cpu_runs_bf16()) {
      UNet plain = model_with_seed(n.options);
      at::autocast::set_autocast_enabled(at::kCPU, true);
      at::autocast::set_autocast_dtype(at::kCPU, at::kBFloat16);
      const std::vector<at::Tensor> got = train_pass(plain, x, r);
      at::autocast::set_autocast_enabled(at::kCPU, false);
      at::autocast::clear_cache();
      for (size_t i = 0; i < got.size(); ++i) plain_bf16_error[i] = relative_error(got[i], exact[i]);
    }
    for (const Row& row : rows()) {
      if (row.dtype == at::kBFloat16 && !cpu_runs_bf16()) continue;
      const std::string what = n.options.describe() + ": " + row.describe();
      const auto format = row.channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
      const at::Tensor input = x.contiguous(format);
      // bfloat16 rounds every activation to 8 bits of mantissa; float32 Winograd to ~1e-5.
      const double tolerance = row.dtype == at::kBFloat16 ? 5e-2 : 1e-4;
      const Pass pass = row.path == PathKind::kEngine ? Pass::kInference : Pass::kTraining;
      const std::vector<ConvKernel> kernels = conv_kernels(n.options, n.side, row.algorithm, row.dtype, pass);
      UNet model = model_with_seed(n.options);
      if (row.channels_last) use_channels_last(*model);
      if (row.path == PathKind::kEngine) {
        CpuEngine engine(model, row.dtype, row.algorithm);
        EXPECT_EQ(engine.kernels(input.sizes().vec()), kernels) << what << ": the layers it packed";
        EXPECT_LT(relative_error(engine.forward(input), exact[0]), tolerance) << what;
        continue;
      }
      model->use_cpu_fusion(true, row.algorithm);
      if (row.dtype == at::kBFloat16) {
        at::autocast::set_autocast_enabled(at::kCPU, true);
        at::autocast::set_autocast_dtype(at::kCPU, at::kBFloat16);
      }
      const std::vector<at::Tensor> got = train_pass(model, input, r);
      at::autocast::set_autocast_enabled(at::kCPU, false);
      at::autocast::clear_cache();
      const char* names[] = {"output", "input gradient", "first weights' gradient"};
      for (size_t i = 0; i < got.size(); ++i) {
        // bfloat16 gradients: within a quarter more than LibTorch's own bfloat16 error (a wrong
        // gradient is off by ~100%).
        const bool bf16_gradient = row.dtype == at::kBFloat16 && i > 0;
        const double bound = bf16_gradient ? std::max(tolerance, 1.25 * plain_bf16_error[i]) : tolerance;
        EXPECT_LT(relative_error(got[i], exact[i]), bound) << what << ": " << names[i];
      }
    }
  }
}

TEST(ExecPaths, TheKernelTableNamesWhatEachAlgorithmPromises) {
  const UNetOptions options = networks()[0].options;  // 1 -> 64 -> 64, bottleneck 64 -> 128 -> 128, up 128 -> 64 -> 64
  const int64_t side = networks()[0].side;
  auto count = [&](ConvAlgorithm algorithm, at::ScalarType dtype, Pass pass, ConvKernel kernel) {
    int64_t n = 0;
    for (const ConvKernel k : conv_kernels(options, side, algorithm, dtype, pass)) n += k == kernel;
    return n;
  };
  const int64_t convs = 4 * options.depth() + 2 + options.depth() + 1;  // 3x3, up-sampling, head
  const int64_t threes = 4 * options.depth() + 2;
  EXPECT_EQ(count(ConvAlgorithm::kDirect, at::kFloat, Pass::kInference, ConvKernel::kOnednnDirect), convs);
  EXPECT_EQ(count(ConvAlgorithm::kWinograd, at::kFloat, Pass::kInference, ConvKernel::kWinograd4), threes);
  EXPECT_EQ(count(ConvAlgorithm::kWinograd6, at::kFloat, Pass::kInference, ConvKernel::kWinograd6), threes);
  EXPECT_EQ(count(ConvAlgorithm::kWinograd6, at::kFloat, Pass::kTraining, ConvKernel::kWinograd4), threes)
      << "F(6x6) has no backward: training runs F(4x4)";
  EXPECT_EQ(count(ConvAlgorithm::kWinograd, at::kBFloat16, Pass::kInference, ConvKernel::kOnednnDirect), convs)
      << "Winograd is float32 only";
  EXPECT_EQ(count(ConvAlgorithm::kAuto, at::kFloat, Pass::kInference, ConvKernel::kOnednnDirect), 1 + options.depth() + 1)
      << "auto: the first convolution (1 input channel), the up-sampling and the head stay direct";
  EXPECT_EQ(count(ConvAlgorithm::kAuto, at::kFloat, Pass::kTraining, ConvKernel::kWinograd6), 0);
}

TEST(ExecPaths, AutoTakesFourByFourWhereSixBySixTilesWouldOverhangTheMap) {
  // 512 -> 512 channels, the reference network's layers at 572: a 28-pixel output (the second
  // bottleneck convolution) is 7 tiles of 4 but 5 tiles of 6 (30 pixels, 15% more area): F(4x4);
  // 52 pixels (up.0.conv2): 9 tiles of 6 cover 54 (8% more): F(4x4); 64 pixels (down.3.conv2):
  // 11 tiles of 6 cover 66 (6% more): F(6x6); 36 pixels, exact in both: F(6x6).
  ConvStep step;
  step.in_channels = step.out_channels = 512;
  auto kernel_for = [&](int64_t out_side) {
    step.input_side = out_side + 2;
    return conv_kernel(ConvAlgorithm::kAuto, step, at::kFloat, Pass::kInference);
  };
  EXPECT_EQ(kernel_for(28), ConvKernel::kWinograd4);
  EXPECT_EQ(kernel_for(52), ConvKernel::kWinograd4);
  EXPECT_EQ(kernel_for(64), ConvKernel::kWinograd6);
  EXPECT_EQ(kernel_for(36), ConvKernel::kWinograd6);
  step.in_channels = 32;  // too few channels for Winograd at all
  EXPECT_EQ(kernel_for(64), ConvKernel::kOnednnDirect);
}

TEST(ExecPaths, ThePathOfAPassIsDecidedInOnePlace) {
  const at::Tensor cpu_float = at::zeros({1, 1, 8, 8}), cpu_double = cpu_float.to(at::kDouble);
  EXPECT_EQ(module_path(cpu_float, /*fused=*/false, /*cpu_fusion=*/false), ModulePath::kPlain);
  EXPECT_EQ(module_path(cpu_float, /*fused=*/true, /*cpu_fusion=*/false), ModulePath::kPlain) << "CUDA fusion on a CPU tensor";
  if (onednn_fusion_available()) {
    EXPECT_EQ(module_path(cpu_float, false, true), ModulePath::kCpuFused);
    EXPECT_EQ(module_path(cpu_float, true, true), ModulePath::kCpuFused);
  }
  EXPECT_EQ(module_path(cpu_double, false, true), ModulePath::kPlain) << "oneDNN's fused kernels take float32 and bfloat16";
  // inference_path(int8, on_cpu, engine_precision, has_model, cpu_engine, fused, engine_available)
  EXPECT_EQ(inference_path(true, true, false, true, true, false, true), InferencePath::kInt8Engine);
  EXPECT_EQ(inference_path(false, true, true, true, true, false, true), InferencePath::kCpuEngine);
  EXPECT_EQ(inference_path(false, false, true, true, true, false, true), InferencePath::kModules) << "a GPU";
  EXPECT_EQ(inference_path(false, true, false, true, true, false, true), InferencePath::kModules) << "fp16";
  EXPECT_EQ(inference_path(false, true, true, false, true, false, true), InferencePath::kModules) << "an export";
  EXPECT_EQ(inference_path(false, true, true, true, false, false, true), InferencePath::kModules) << "--cpu-engine off";
  EXPECT_EQ(inference_path(false, true, true, true, true, true, true), InferencePath::kModules) << "CUDA fusion";
  EXPECT_EQ(inference_path(false, true, true, true, true, false, false), InferencePath::kModules) << "no oneDNN";
}
