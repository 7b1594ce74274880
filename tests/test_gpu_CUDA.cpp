// GPU tests (label cuda): run only where a CUDA device is visible, skipped elsewhere.
#include "test_support.h"

#include "unet/loss.h"
#include "unet/synthetic.h"
#include "unet/trainer.h"

#include <ATen/ATen.h>
#include <torch/cuda.h>

using namespace unet;

namespace {
bool have_gpu() { return torch::cuda::is_available(); }
}  // namespace

TEST(Gpu_CUDA, Fp32TrainingStepMatchesTheCpu) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device visible; skipping";
  at::globalContext().setAllowTF32CuDNN(false);  // plain fp32 for a tight comparison
  at::globalContext().setAllowTF32CuBLAS(false);
  const UNetOptions model = UNetOptions().depth(2).filters(8).dropout(0.0);
  TrainOptions cpu;
  cpu.input_size = 60;
  cpu.batch_size = 2;
  TrainOptions gpu = cpu;
  gpu.device = c10::Device(c10::kCUDA, 0);
  Trainer a(model, cpu), b(model, gpu);  // same seed: same initial weights
  Batch batch;
  batch.images = at::randn({2, 1, 60, 60});
  batch.labels = at::randint(2, {2, 20, 20}, at::kLong);
  const LossTerms la = a.step(batch), lb = b.step(batch);
  EXPECT_NEAR(la.total.item<double>(), lb.total.item<double>(), 1e-4);
  const auto pa = a.model()->parameters(), pb = b.model()->parameters();
  for (size_t i = 0; i < pa.size(); ++i)
    EXPECT_TRUE(at::allclose(pa[i], pb[i].cpu(), /*rtol=*/1e-4, /*atol=*/1e-5)) << "parameter " << i;
}

TEST(Gpu_CUDA, TrainingOnTheGpuLearnsSyntheticMembranes) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device visible; skipping";
  SyntheticOptions s;
  s.size = 192;
  const DataSet data = synthetic_dataset(s);
  const FoldSplit split = fold_split(30, 0, 0);
  TrainOptions t;
  t.device = c10::Device(c10::kCUDA, 0);
  t.input_size = 220;
  t.batch_size = 8;
  t.max_steps = 200;
  t.learning_rate = 1e-3;
  t.quiet = true;
  Trainer trainer(UNetOptions().depth(3).filters(16), t);
  const TrainResult r = trainer.fit(select(data.train, split.train), select(data.train, split.eval));
  EXPECT_GT(r.metrics.membrane_dice, 0.8);
}

TEST(Gpu_CUDA, EveryPrecisionMatchesTheCpuLossWithinItsTolerance) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device visible; skipping";
  const UNetOptions model = UNetOptions().depth(2).filters(8).dropout(0.0);
  at::manual_seed(9);
  Batch batch;
  batch.images = at::randn({2, 1, 60, 60});
  batch.labels = at::randint(2, {2, 20, 20}, at::kLong);
  TrainOptions cpu;
  cpu.input_size = 60;
  cpu.batch_size = 2;
  Trainer reference(model, cpu);
  const double ref = reference.step(batch).total.item<double>();
  // Relative loss tolerances: TF32 (10-bit mantissa in products) 5e-3, fp16 5e-3, bf16 2e-2.
  for (auto [p, tolerance] : {std::pair{Precision::kTF32, 5e-3}, std::pair{Precision::kFP16, 5e-3}, std::pair{Precision::kBF16, 2e-2}}) {
    TrainOptions gpu = cpu;
    gpu.device = c10::Device(c10::kCUDA, 0);
    gpu.precision = p;
    Trainer t(model, gpu);
    EXPECT_NEAR(t.step(batch).total.item<double>(), ref, tolerance * std::abs(ref)) << to_string(p);
    for (const auto& q : t.model()->parameters()) EXPECT_TRUE(at::isfinite(q).all().item<bool>()) << to_string(p);
  }
}
