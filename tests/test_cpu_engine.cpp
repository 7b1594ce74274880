// Tests of the CPU inference engine and the fused CPU training path against the plain LibTorch
// path they replace.
#include "test_support.h"

#include "unet/data/synthetic.h"
#include "unet/infer/cpu_engine.h"
#include "unet/infer/predictor.h"
#include "unet/model/conv_plan.h"
#include "unet/model/geometry.h"
#include "unet/model/onednn_ops.h"
#include "unet/model/ops.h"
#include "unet/runtime/precision.h"
#include "unet/train/trainer.h"

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <c10/core/InferenceMode.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/function.h>

#include <array>
#include <functional>
#include <set>

using namespace unet;

namespace {

/// The plain path: the module's own forward in evaluation mode, float32.
at::Tensor plain(UNet& model, const at::Tensor& x) {
  c10::InferenceMode guard;
  model->eval();
  return model->forward(x.contiguous(at::MemoryFormat::ChannelsLast)).contiguous();
}

/// max |a - b| relative to the largest |b| (at least 1).
double relative_error(const at::Tensor& a, const at::Tensor& b) {
  return (a.contiguous() - b.contiguous()).abs().max().item<double>() / std::max(1.0, b.abs().max().item<double>());
}

}  // namespace

TEST(CpuEngine, MatchesThePlainPathForEveryArchitectureBatchAndLegalSize) {
  if (!CpuEngine::available()) GTEST_SKIP() << "this LibTorch has no oneDNN operators";
  struct Case {
    UNetOptions options;
    int64_t batch, size;
  };
  const std::vector<Case> cases = {
      {UNetOptions().depth(2).filters(4), 1, 44},
      {UNetOptions().depth(2).filters(8).in_channels(3).classes(4), 3, 64},
      {UNetOptions().depth(3).filters(4).padding(Padding::kSame), 2, 48},
      {UNetOptions().depth(2).filters(6).up_kernel(2).classes(3), 4, 52},
      {UNetOptions().depth(1).filters(5).padding(Padding::kSame).up_kernel(2), 2, 34},
  };
  for (const auto& c : cases) {
    at::manual_seed(7);
    UNet model(c.options);
    use_channels_last(*model);
    output_size(c.options, c.size);  // legal
    const at::Tensor x = at::randn({c.batch, c.options.in_channels(), c.size, c.size});
    CpuEngine engine(model, at::kFloat);
    const at::Tensor fast = engine.forward(x), reference = plain(model, x);
    ASSERT_EQ(fast.sizes(), reference.sizes()) << c.options.describe();
    EXPECT_EQ(fast.scalar_type(), at::kFloat);
    EXPECT_LT(relative_error(fast, reference), 1e-4) << c.options.describe() << " batch " << c.batch << " size " << c.size;
    // bf16: 8-bit mantissas through every layer (on CPUs that run bf16 convolutions).
    if (!cpu_runs_bf16()) continue;
    CpuEngine bf16(model, at::kBFloat16);
    EXPECT_LT(relative_error(bf16.forward(x), reference), 5e-2) << c.options.describe() << " (bf16)";
  }
}

TEST(CpuEngine, RepacksWhenTheWeightsChangeAndPerInputShape) {
  if (!CpuEngine::available()) GTEST_SKIP() << "this LibTorch has no oneDNN operators";
  at::manual_seed(3);
  UNet model(UNetOptions().depth(2).filters(4));
  CpuEngine engine(model, at::kFloat);
  const at::Tensor x = at::randn({1, 1, 44, 44});
  const at::Tensor before = engine.forward(x);
  engine.forward(x);
  EXPECT_EQ(engine.packings(), 1);
  engine.forward(at::randn({2, 1, 48, 48}));
  EXPECT_EQ(engine.packings(), 2);  // another shape
  {
    at::NoGradGuard g;
    model->parameters()[0].add_(0.25);  // what an optimizer step does, in place
  }
  const at::Tensor after = engine.forward(x);
  EXPECT_EQ(engine.packings(), 3);
  EXPECT_GT((after - before).abs().max().item<double>(), 1e-3);
  EXPECT_LT(relative_error(after, plain(model, x)), 1e-4) << "stale prepacked weights";
}

TEST(CpuEngine, ConvStepsNameEveryConvolutionWithTheShapesItsWeightsHave) {
  for (const UNetOptions& o : {UNetOptions(), UNetOptions().depth(2).filters(6).in_channels(3).classes(4).up_kernel(2),
                               UNetOptions().depth(3).filters(4).padding(Padding::kSame)}) {
    UNet model(o);
    const auto params = model->named_parameters();
    const int64_t side = o.padding() == Padding::kSame ? 64 : input_size_for_output(o, 20);
    const std::vector<ConvStep> steps = conv_steps(o, side);
    ASSERT_EQ(steps.size(), conv_layers(o).size());
    for (const ConvStep& s : steps) {
      const at::Tensor w = params[s.layer.name + ".weight"];
      const bool up = s.layer.kind == ConvLayer::kUpSample;
      EXPECT_EQ(s.in_channels, w.size(up ? 0 : 1)) << s.layer.name;
      EXPECT_EQ(s.out_channels, w.size(up ? 1 : 0)) << s.layer.name;
      EXPECT_EQ(s.kernel, w.size(2)) << s.layer.name;
    }
    EXPECT_EQ(steps.front().input_side, side);
    // The head reads the last block's output, whose side is the network's output side.
    EXPECT_EQ(steps.back().input_side, o.padding() == Padding::kSame ? side : output_size(o, side));
  }
}

TEST(CpuEngine, WinogradMatchesThePlainPathAndDirectIsUntouched) {
  if (!CpuEngine::available()) GTEST_SKIP() << "this LibTorch has no oneDNN operators";
  struct Case {
    UNetOptions options;
    int64_t batch, size;
  };
  const std::vector<Case> cases = {
      {UNetOptions().depth(2).filters(8), 2, 44},
      {UNetOptions().depth(2).filters(6).in_channels(3).classes(4).up_kernel(2), 1, 52},
      {UNetOptions().depth(1).filters(5).padding(Padding::kSame), 3, 30},
      {UNetOptions().depth(1).filters(128), 1, 20},  // every 3x3 convolution but the first by Winograd under auto
  };
  for (const auto& c : cases) {
    at::manual_seed(11);
    UNet model(c.options);
    use_channels_last(*model);
    const at::Tensor x = at::randn({c.batch, c.options.in_channels(), c.size, c.size});
    const at::Tensor reference = plain(model, x);
    CpuEngine winograd(model, at::kFloat, ConvAlgorithm::kWinograd), direct(model, at::kFloat, ConvAlgorithm::kDirect),
        automatic(model, at::kFloat, ConvAlgorithm::kAuto);
    const std::vector<int64_t> shape = x.sizes().vec();
    EXPECT_EQ(winograd.winograd_layers(shape), 4 * c.options.depth() + 2) << "every 3x3 convolution";
    EXPECT_EQ(direct.winograd_layers(shape), 0);
    EXPECT_LT(relative_error(winograd.forward(x), reference), 1e-4) << c.options.describe();
    const at::Tensor a = automatic.forward(x), d = direct.forward(x);
    EXPECT_LT(relative_error(a, reference), 1e-4) << c.options.describe();
    if (automatic.winograd_layers(shape) == 0) EXPECT_TRUE(at::equal(a, d)) << "auto without Winograd is direct, bit for bit";
    EXPECT_LT(relative_error(d, reference), 1e-4);
  }
  EXPECT_EQ(CpuEngine(UNet(UNetOptions().depth(1).filters(128)), at::kFloat).winograd_layers({1, 1, 20, 20}), 5)
      << "all but the first (1 -> 128): 128 -> 128, 128 -> 256, 256 -> 256, 256 -> 128, 128 -> 128";
  EXPECT_EQ(CpuEngine(UNet(UNetOptions().depth(1).filters(128)), at::kBFloat16, ConvAlgorithm::kWinograd)
                .winograd_layers({1, 1, 20, 20}),
            0)
      << "Winograd is float32 only";
}

TEST(CpuEngine, WinogradTransformsAreRefreshedAfterTheWeightsChange) {
  if (!CpuEngine::available()) GTEST_SKIP() << "this LibTorch has no oneDNN operators";
  at::manual_seed(12);
  UNet model(UNetOptions().depth(2).filters(4));
  CpuEngine engine(model, at::kFloat, ConvAlgorithm::kWinograd);
  const at::Tensor x = at::randn({1, 1, 44, 44});
  const at::Tensor before = engine.forward(x);
  engine.forward(at::randn({2, 1, 48, 48}));  // another shape shares the transforms
  {
    at::NoGradGuard g;
    for (auto& p : model->parameters()) p.mul_(1.5);  // an optimizer step, in place
  }
  const at::Tensor after = engine.forward(x);
  EXPECT_GT((after - before).abs().max().item<double>(), 1e-3);
  EXPECT_LT(relative_error(after, plain(model, x)), 1e-4) << "stale Winograd transforms";
}

TEST(CpuEngine, PredictorsUseItForResizedAndTiledPredictionOfATrainedModel) {
  if (!CpuEngine::available()) GTEST_SKIP() << "this LibTorch has no oneDNN operators";
  SyntheticOptions s;
  s.train_count = 6;
  s.test_count = 2;
  s.size = 64;
  const DataSet data = synthetic_dataset(s);
  TrainOptions t;
  t.input_size = 60;
  t.batch_size = 2;
  t.max_steps = 20;
  t.learning_rate = 1e-3;
  Trainer trainer(UNetOptions().depth(2).filters(4), t, unet::test::quiet_context());
  trainer.fit(data.train, {});
  for (bool tiles : {false, true}) {
    Predictor fast(trainer.model(), trainer.geometry(), c10::Device(c10::kCPU), 2), reference = fast;
    reference.use_cpu_engine(false);
    if (tiles) {
      TileOptions o;
      o.input = 60;
      fast.use_tiles(o);
      reference.use_tiles(o);
    }
    const auto a = fast.predict(data.test), b = reference.predict(data.test);
    for (size_t i = 0; i < a.size(); ++i)
      EXPECT_LT((a[i] - b[i]).abs().max().item<double>(), 1e-4) << (tiles ? "tiles" : "resize") << " image " << i;
  }
}

namespace {

/// Output and gradients (input first, then every parameter) of `sum(out * weights)` for a model in
/// training mode.
std::vector<at::Tensor> output_and_gradients(UNet& model, const at::Tensor& x, const at::Tensor& weights) {
  model->train();
  for (auto& p : model->parameters()) p.mutable_grad() = at::Tensor();
  const at::Tensor input = x.detach().clone().requires_grad_(true);
  const at::Tensor out = model->forward(input);
  (out.to(at::kFloat) * weights).sum().backward();
  std::vector<at::Tensor> r{out.detach().to(at::kFloat), input.grad()};
  for (const auto& p : model->parameters()) r.push_back(p.grad());
  return r;
}

/// The autograd node that made the head's input: the last up block's second convolution.
std::string last_block_node(UNet& model, const at::Tensor& x) {
  model->train();
  const at::Tensor out = model->forward(x);
  return out.grad_fn()->next_edges()[0].function->name();
}

}  // namespace

namespace {

/// Names of every autograd node behind `out`.
std::set<std::string> graph_nodes(const at::Tensor& out) {
  std::set<std::string> names;
  std::set<const torch::autograd::Node*> seen;
  std::function<void(const std::shared_ptr<torch::autograd::Node>&)> walk = [&](const auto& node) {
    if (!node || !seen.insert(node.get()).second) return;
    names.insert(node->name());
    for (const auto& edge : node->next_edges()) walk(edge.function);
  };
  walk(out.grad_fn());
  return names;
}

bool any_contains(const std::set<std::string>& names, const std::string& part) {
  for (const auto& n : names)
    if (n.find(part) != std::string::npos) return true;
  return false;
}

}  // namespace

TEST(CpuFusion, ForwardAndGradientsMatchThePlainPathInFloat32AndBfloat16) {
  if (!onednn_fusion_available()) GTEST_SKIP() << "this LibTorch has no oneDNN operators";
  struct Case {
    UNetOptions options;
    int64_t batch, size;
    bool channels_last;
  };
  const std::vector<Case> cases = {
      {UNetOptions().depth(2).filters(4).dropout(0), 1, 44, true},
      {UNetOptions().depth(2).filters(6).in_channels(3).classes(4).dropout(0), 3, 64, true},
      {UNetOptions().depth(3).filters(4).padding(Padding::kSame).dropout(0), 2, 48, false},
      {UNetOptions().depth(2).filters(6).up_kernel(2).classes(3).dropout(0), 2, 52, true},
  };
  for (const auto& c : cases) {
    at::manual_seed(11);
    UNet plain_model(c.options), fused_model(c.options);
    {
      at::NoGradGuard g;
      for (size_t i = 0; i < plain_model->parameters().size(); ++i)
        fused_model->parameters()[i].copy_(plain_model->parameters()[i]);
    }
    if (c.channels_last) use_channels_last(*plain_model), use_channels_last(*fused_model);
    fused_model->use_cpu_fusion(true);
    ASSERT_TRUE(fused_model->cpu_fusion());
    const auto format = c.channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
    const at::Tensor x = at::randn({c.batch, c.options.in_channels(), c.size, c.size}).contiguous(format);
    EXPECT_NE(last_block_node(fused_model, x).find("ConvBiasRelu"), std::string::npos) << "the fused path did not run";
    EXPECT_EQ(last_block_node(plain_model, x).find("ConvBiasRelu"), std::string::npos);
    fused_model->train();
    EXPECT_TRUE(any_contains(graph_nodes(fused_model->forward(x.detach().clone().requires_grad_(true))), "MaxPoolAndCrop"))
        << c.options.describe() << ": the pooling and crop were not fused";
    const int64_t out_side = output_size(c.options, c.size);
    const at::Tensor weights = at::randn({c.batch, c.options.classes(), out_side, out_side});
    const auto reference = output_and_gradients(plain_model, x, weights), fused = output_and_gradients(fused_model, x, weights);
    ASSERT_EQ(reference.size(), fused.size());
    for (size_t i = 0; i < reference.size(); ++i)
      EXPECT_LT(relative_error(fused[i], reference[i]), 1e-4) << c.options.describe() << ": tensor " << i << " (0: output, 1: input gradient)";
    // bf16 under autocast, as training with --precision bf16: the plain path autocast as well.
    if (!cpu_runs_bf16()) continue;
    at::autocast::set_autocast_enabled(at::kCPU, true);
    at::autocast::set_autocast_dtype(at::kCPU, at::kBFloat16);
    const auto reference16 = output_and_gradients(plain_model, x, weights), fused16 = output_and_gradients(fused_model, x, weights);
    at::autocast::set_autocast_enabled(at::kCPU, false);
    at::autocast::clear_cache();
    for (size_t i = 0; i < reference16.size(); ++i) {
      EXPECT_EQ(fused16[i].scalar_type(), reference16[i].scalar_type());
      EXPECT_LT(relative_error(fused16[i], reference16[i]), 5e-2) << c.options.describe() << ": bf16 tensor " << i;
    }
  }
}

TEST(CpuFusion, PoolAndCropGivesThePlainPathsValuesAndGradientsBitForBit) {
  // x feeds the pooling and the crop; its gradient is the sum of both consumers' gradients.
  for (const auto type : {at::kFloat, at::kBFloat16}) {
    for (const auto format : {at::MemoryFormat::ChannelsLast, at::MemoryFormat::Contiguous}) {
      for (const auto& [h, w, ch, cw] : std::vector<std::array<int64_t, 4>>{{13, 11, 6, 5}, {12, 12, 12, 12}, {20, 16, 3, 8}}) {
        SCOPED_TRACE(testing::Message() << at::toString(type) << " " << h << "x" << w << " crop " << ch << "x" << cw);
        at::manual_seed(3);
        const at::Tensor base = at::randn({2, 3, h, w}).to(type).contiguous(format);
        const at::Tensor grad_pooled = at::randn({2, 3, h / 2, w / 2}).to(type);
        const at::Tensor grad_crop = at::randn({2, 3, ch, cw}).to(type);
        for (int used = 1; used <= 3; ++used) {  // 1: the pooling only, 2: the crop only, 3: both
          auto gradient = [&](bool fused) {
            const at::Tensor x = base.detach().clone().requires_grad_(true);
            const at::Tensor y = x * 1;  // a non-leaf, as in the network
            at::Tensor pooled, crop;
            if (fused) {
              std::tie(pooled, crop) = max_pool_and_crop(y, ch, cw);
              EXPECT_TRUE(any_contains(graph_nodes(pooled), "MaxPoolAndCrop"));
            } else {
              pooled = at::max_pool2d(y, {2, 2}, {2, 2});
              crop = y.narrow(2, (h - ch) / 2, ch).narrow(3, (w - cw) / 2, cw);
            }
            std::vector<at::Tensor> outputs, grads;
            if (used & 1) outputs.push_back(pooled), grads.push_back(grad_pooled);
            if (used & 2) outputs.push_back(crop), grads.push_back(grad_crop);
            torch::autograd::backward(outputs, grads);
            return std::vector<at::Tensor>{pooled.detach(), crop.detach().contiguous(), x.grad()};
          };
          const auto fused = gradient(true), reference = gradient(false);
          for (size_t i = 0; i < fused.size(); ++i)
            EXPECT_TRUE(at::equal(fused[i], reference[i])) << "used " << used << ", tensor " << i << " (0 pooled, 1 crop, 2 gradient)";
        }
      }
    }
  }
  EXPECT_THROW(max_pool_and_crop(at::randn({1, 1, 8, 8}), 9, 4), Error);
}

TEST(CpuFusion, TrainingWithItLearnsTheSameModelAsThePlainPath) {
  if (!onednn_fusion_available()) GTEST_SKIP() << "this LibTorch has no oneDNN operators";
  SyntheticOptions s;
  s.train_count = 6;
  s.test_count = 2;
  s.size = 64;
  const DataSet data = synthetic_dataset(s);
  std::vector<std::vector<at::Tensor>> predictions;
  for (bool fusion : {true, false}) {
    TrainOptions t;
    t.input_size = 60;
    t.batch_size = 2;
    t.max_steps = 10;
    t.learning_rate = 1e-3;
    t.exec.cpu_engine = fusion;
    Trainer trainer(UNetOptions().depth(2).filters(4), t, unet::test::quiet_context());
    EXPECT_EQ(trainer.model()->cpu_fusion(), fusion);
    trainer.fit(data.train, {});
    Predictor predictor(trainer.model(), trainer.geometry(), c10::Device(c10::kCPU), 2);
    predictions.push_back(predictor.predict(data.test));
  }
  for (size_t i = 0; i < predictions[0].size(); ++i) {
    const double difference = (predictions[0][i] - predictions[1][i]).abs().max().item<double>();
    EXPECT_LT(difference, 1e-3) << "image " << i;
  }
}
