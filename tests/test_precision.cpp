// Tests of mixed precision on the CPU: autocast steps against float64, and fp16 dynamic loss scaling.
#include "test_support.h"

#include "unet/model/loss.h"
#include "unet/runtime/precision.h"
#include "unet/train/loss_scaler.h"
#include "unet/train/trainer.h"

#include <ATen/ATen.h>

#include <limits>

using namespace unet;

namespace {

Batch random_batch() {
  at::manual_seed(9);
  Batch b;
  b.images = at::randn({2, 1, 60, 60});
  b.labels = at::randint(2, {2, 20, 20}, at::kLong);
  return b;
}

TrainOptions options() {
  TrainOptions t;
  t.input_size = 60;
  t.batch_size = 2;
  t.learning_rate = 1e-3;
  return t;
}

RunContext context(Precision p) { return unet::test::quiet_context(c10::Device(c10::kCPU), p); }

const UNetOptions kModel = UNetOptions().depth(2).filters(8).dropout(0.0);

/// Loss and flattened gradient of one forward/backward in `p`.
std::pair<double, at::Tensor> loss_and_gradient(Precision p, bool float64) {
  Trainer t(kModel, options(), context(p));
  const Batch b = random_batch();
  if (float64) t.model()->to(at::kDouble);
  t.model()->zero_grad();
  LossTerms terms;
  {
    PrecisionScope scope(c10::Device(c10::kCPU), p);
    terms = segmentation_loss(t.model()->forward(float64 ? b.images.to(at::kDouble) : b.images), b.labels);
  }
  terms.total.backward();
  std::vector<at::Tensor> grads;
  for (const auto& q : t.model()->parameters()) grads.push_back(q.grad().reshape({-1}).to(at::kDouble));
  return {terms.total.item<double>(), at::cat(grads)};
}

}  // namespace

TEST(Precision, AutocastStepsAgreeWithFloat64WithinTheirTolerance) {
  const auto [ref_loss, ref_grad] = loss_and_gradient(Precision::kFP32, /*float64=*/true);
  // Relative loss error and gradient direction (cosine): fp32 to 1e-5; bf16 (8-bit mantissa) to
  // 2% and 0.98; fp16 (11-bit) to 0.5% and 0.995; tf32 is fp32 on CPUs.
  struct Case {
    Precision p;
    double loss_tolerance, min_cosine;
  };
  for (const Case c : {Case{Precision::kFP32, 1e-5, 0.99999}, Case{Precision::kTF32, 1e-5, 0.99999},
                       Case{Precision::kBF16, 2e-2, 0.98}, Case{Precision::kFP16, 5e-3, 0.995}}) {
    if (c.p == Precision::kBF16 && !cpu_runs_bf16()) {
      std::printf("note: this CPU cannot run bf16 convolutions (no AVX-512 BW/VL/DQ, no AVX-NE-CONVERT): bf16 not checked\n");
      continue;
    }
    const auto [loss, grad] = loss_and_gradient(c.p, false);
    EXPECT_NEAR(loss, ref_loss, c.loss_tolerance * std::abs(ref_loss)) << to_string(c.p);
    const double cosine = (grad * ref_grad).sum().item<double>() / (grad.norm() * ref_grad.norm()).item<double>();
    EXPECT_GT(cosine, c.min_cosine) << to_string(c.p);
  }
}

TEST(Precision, BothMixedPrecisionsTrainWithFloat32MasterWeights) {
  for (Precision p : {Precision::kBF16, Precision::kFP16}) {
    if (p == Precision::kBF16 && !cpu_runs_bf16()) continue;  // see the note above
    Trainer t(kModel, options(), context(p));
    const at::Tensor before = t.model()->parameters()[0].clone();
    const LossTerms terms = t.step(random_batch());
    EXPECT_EQ(terms.total.scalar_type(), at::kFloat);
    EXPECT_EQ(t.model()->parameters()[0].scalar_type(), at::kFloat);
    EXPECT_FALSE(at::equal(before, t.model()->parameters()[0])) << to_string(p);
  }
}

TEST(Precision, Fp16ScalerSkipsAStepWithInfiniteGradientsAndRecovers) {
  Trainer t(kModel, options(), context(Precision::kFP16));
  LossScaler& scaler = t.loss_scaler();
  ASSERT_TRUE(scaler.enabled());
  EXPECT_EQ(scaler.current_scale(), 65536.0);
  bool plant = false;
  t.model()->parameters()[0].register_hook([&plant](const at::Tensor& g) {
    return plant ? g * std::numeric_limits<float>::infinity() : g;
  });
  const Batch b = random_batch();
  t.step(b);
  const std::vector<at::Tensor> after_good = [&] {
    std::vector<at::Tensor> v;
    for (const auto& p : t.model()->parameters()) v.push_back(p.clone());
    return v;
  }();
  plant = true;
  t.step(b);
  plant = false;
  EXPECT_EQ(scaler.skipped_steps(), 1);
  EXPECT_EQ(scaler.current_scale(), 32768.0);
  const auto params = t.model()->parameters();
  for (size_t i = 0; i < params.size(); ++i) EXPECT_TRUE(at::equal(params[i], after_good[i])) << "skipped step changed " << i;
  EXPECT_EQ(t.global_step(), 2);
  t.step(b);
  EXPECT_EQ(scaler.skipped_steps(), 1);
  EXPECT_FALSE(at::equal(t.model()->parameters()[0], after_good[0]));
  for (const auto& p : t.model()->parameters()) EXPECT_TRUE(at::isfinite(p).all().item<bool>());
}

TEST(Precision, ScaleDoublesAfterTheGrowthInterval) {
  LossScaler scaler(c10::Device(c10::kCPU), true, /*initial_scale=*/8.0, /*growth_interval=*/2);
  at::Tensor w = at::ones({3}, at::TensorOptions().requires_grad(true));
  for (int i = 0; i < 2; ++i) {
    w.mutable_grad() = at::full({3}, 8.0f);
    const at::Tensor found = scaler.unscale({w});
    EXPECT_EQ(found.item<float>(), 0.0f);
    EXPECT_TRUE(at::allclose(w.grad(), at::ones({3})));
    scaler.update();
  }
  EXPECT_EQ(scaler.current_scale(), 16.0);
  const at::Tensor state = scaler.state();
  LossScaler other(c10::Device(c10::kCPU), true);
  other.set_state(state);
  EXPECT_EQ(other.current_scale(), 16.0);
}

TEST(Precision, AutocastRunsTheNetworkInReducedPrecision) {
  UNet net(kModel);
  const at::Tensor x = at::randn({1, 1, 60, 60});
  for (auto [p, dtype] : {std::pair{Precision::kBF16, at::kBFloat16}, std::pair{Precision::kFP16, at::kHalf},
                          std::pair{Precision::kFP32, at::kFloat}}) {
    PrecisionScope scope(c10::Device(c10::kCPU), p);
    EXPECT_EQ(net->forward(x).scalar_type(), dtype) << to_string(p);
  }
  EXPECT_EQ(net->forward(x).scalar_type(), at::kFloat) << "the scope must restore fp32";
}
