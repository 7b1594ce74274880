// GPU tests (label cuda): run only where a CUDA device is visible, skipped elsewhere.
#include "test_support.h"

#include "unet/data/synthetic.h"
#include "unet/infer/output.h"
#include "unet/infer/predictor.h"
#include "unet/model/loss.h"
#include "unet/runtime/device.h"
#include "unet/runtime/files.h"
#include "unet/runtime/graph.h"
#include "unet/train/prefetcher.h"
#include "unet/train/trainer.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <torch/cuda.h>

#include <limits>

using namespace unet;

namespace {
bool have_gpu() { return torch::cuda::is_available(); }
const c10::Device kCuda(c10::kCUDA, 0);
RunContext on_gpu(Precision p = Precision::kFP32) { return unet::test::quiet_context(kCuda, p); }
}  // namespace

TEST(Gpu_CUDA, Fp32TrainingStepMatchesTheCpu) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device visible; skipping";
  at::globalContext().setAllowTF32CuDNN(false);  // plain fp32 for a tight comparison
  at::globalContext().setAllowTF32CuBLAS(false);
  const UNetOptions model = UNetOptions().depth(2).filters(8).dropout(0.0);
  TrainOptions cpu;
  cpu.input_size = 60;
  cpu.batch_size = 2;
  cpu.exec.graphs = false;
  Trainer a(model, cpu, unet::test::quiet_context()), b(model, cpu, on_gpu());  // same seed: same initial weights
  Batch batch;
  batch.images = at::randn({2, 1, 60, 60});
  batch.labels = at::randint(2, {2, 20, 20}, at::kLong);
  const LossTerms la = a.step(batch), lb = b.step(batch);
  EXPECT_NEAR(la.total.item<double>(), lb.total.item<double>(), 1e-4);
  // The gradients agree to float32 summation order, measured against the largest gradient of the
  // network: a bias whose gradient is a sum that nearly cancels (1e-5 of the largest) differs by
  // the rounding of its terms, which its own size does not bound (the H200 run of 2026-12-04: 1e-8
  // apart). Adam's first step moves each weight by about lr * sign(gradient), so where a gradient
  // is near zero the two sides may step in opposite directions: the weights agree within 2 lr.
  const auto pa = a.model()->parameters(), pb = b.model()->parameters();
  double scale = 0.0;
  for (const auto& p : pa) scale = std::max(scale, p.grad().abs().max().item<double>());
  for (size_t i = 0; i < pa.size(); ++i) {
    const at::Tensor ga = pa[i].grad(), gb = pb[i].grad().cpu();
    EXPECT_TRUE(at::allclose(ga, gb, /*rtol=*/1e-3, /*atol=*/1e-4 * scale)) << "gradient " << i << " max diff "
                                                                          << (ga - gb).abs().max().item<double>();
    EXPECT_TRUE(at::allclose(pa[i], pb[i].cpu(), /*rtol=*/0, /*atol=*/2.05 * cpu.learning_rate)) << "parameter " << i;
  }
}

TEST(Gpu_CUDA, TrainingOnTheGpuLearnsSyntheticMembranes) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device visible; skipping";
  SyntheticOptions s;
  s.size = 192;
  const DataSet data = synthetic_dataset(s);
  const FoldSplit split = fold_split(30, 0, 0);
  TrainOptions t;
  t.input_size = 220;
  t.batch_size = 8;
  t.max_steps = 200;
  t.learning_rate = 1e-3;
  Trainer trainer(UNetOptions().depth(3).filters(16), t, on_gpu());
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
  cpu.exec.graphs = false;
  Trainer reference(model, cpu, unet::test::quiet_context());
  const double ref = reference.step(batch).total.item<double>();
  // Relative loss tolerances: TF32 (10-bit mantissa in products) 5e-3, fp16 5e-3, bf16 2e-2.
  for (auto [p, tolerance] : {std::pair{Precision::kTF32, 5e-3}, std::pair{Precision::kFP16, 5e-3}, std::pair{Precision::kBF16, 2e-2}}) {
    Trainer t(model, cpu, on_gpu(p));
    EXPECT_NEAR(t.step(batch).total.item<double>(), ref, tolerance * std::abs(ref)) << to_string(p);
    for (const auto& q : t.model()->parameters()) EXPECT_TRUE(at::isfinite(q).all().item<bool>()) << to_string(p);
  }
}

namespace {
Batch random_batch(int64_t n, int64_t input, int64_t output, uint64_t seed) {
  at::manual_seed(seed);
  Batch b;
  b.images = at::randn({n, 1, input, input});
  b.labels = at::randint(2, {n, output, output}, at::kLong);
  return b;
}
}  // namespace

TEST(Gpu_CUDA, GraphReplayedStepsGiveTheWeightsOfEagerSteps) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device visible; skipping";
  at::globalContext().setDeterministicCuDNN(true);  // the same convolution algorithms on both sides
  const UNetOptions model = UNetOptions().depth(2).filters(8).dropout(0.0);
  for (Precision p : {Precision::kFP32, Precision::kFP16, Precision::kBF16}) {
    TrainOptions eager;
    eager.input_size = 60;
    eager.batch_size = 2;
    eager.exec.graphs = false;
    TrainOptions graphs = eager;
    graphs.exec.graphs = true;
    graphs.graph_warmup = 2;
    Trainer a(model, eager, on_gpu(p)), b(model, graphs, on_gpu(p));
    for (int k = 0; k < 6; ++k) {
      const Batch batch = random_batch(2, 60, 20, 100 + k);
      const double la = a.step(batch).total.item<double>(), lb = b.step(batch).total.item<double>();
      EXPECT_NEAR(la, lb, 1e-4 * std::abs(la)) << to_string(p) << " step " << k;
    }
    EXPECT_TRUE(b.graph_captured()) << to_string(p);
    const auto pa = a.model()->parameters(), pb = b.model()->parameters();
    for (size_t i = 0; i < pa.size(); ++i)
      EXPECT_TRUE(at::allclose(pa[i], pb[i], /*rtol=*/1e-4, /*atol=*/1e-6)) << to_string(p) << " parameter " << i;
  }
  at::globalContext().setDeterministicCuDNN(false);
}

TEST(Gpu_CUDA, DropoutDrawsFreshMasksAtEveryReplay) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device visible; skipping";
  TrainOptions t;
  t.input_size = 60;
  t.batch_size = 2;
  t.learning_rate = 1e-12;  // weights stay put: loss changes can only come from dropout
  t.weight_decay = 0.0;
  t.exec.graphs = true;
  t.graph_warmup = 1;
  Trainer trainer(UNetOptions().depth(2).filters(8).dropout(0.5), t, on_gpu());
  const Batch batch = random_batch(2, 60, 20, 7);
  std::vector<double> losses;
  for (int k = 0; k < 5; ++k) losses.push_back(trainer.step(batch).total.item<double>());
  ASSERT_TRUE(trainer.graph_captured());
  // With lr 1e-12 the float32 weights do not change, and a replay is deterministic: the same mask
  // gives a bitwise-equal loss. (Dropout at the bottleneck of an untrained network moves the loss
  // only by about 1e-6, so the test asks for any difference, not a large one.)
  EXPECT_NE(losses[3], losses[2]) << "two replays drew the same dropout mask";
  EXPECT_NE(losses[4], losses[3]) << "two replays drew the same dropout mask";
}

TEST(Gpu_CUDA, Fp16SkipInsideTheGraphLeavesWeightsAndRecovers) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device visible; skipping";
  TrainOptions t;
  t.input_size = 60;
  t.batch_size = 2;
  t.exec.graphs = true;
  t.graph_warmup = 1;
  Trainer trainer(UNetOptions().depth(2).filters(8).dropout(0.0), t, on_gpu(Precision::kFP16));
  Batch good = random_batch(2, 60, 20, 3);
  trainer.step(good);
  trainer.step(good);  // captured and replayed
  ASSERT_TRUE(trainer.graph_captured());
  std::vector<at::Tensor> before;
  for (const auto& p : trainer.model()->parameters()) before.push_back(p.clone());
  Batch bad = good;
  bad.images = good.images.clone();
  bad.images[0][0][0][0] = std::numeric_limits<float>::infinity();  // inf activations: inf gradients
  trainer.step(bad);
  EXPECT_EQ(trainer.loss_scaler().skipped_steps(), 1);
  EXPECT_EQ(trainer.loss_scaler().current_scale(), 32768.0);
  const auto after = trainer.model()->parameters();
  for (size_t i = 0; i < after.size(); ++i) EXPECT_TRUE(at::equal(after[i], before[i])) << "skipped step changed " << i;
  trainer.step(good);
  EXPECT_FALSE(at::equal(trainer.model()->parameters()[0], before[0]));
  for (const auto& p : trainer.model()->parameters()) EXPECT_TRUE(at::isfinite(p).all().item<bool>());
}

TEST(Gpu_CUDA, GraphInferenceEqualsEagerInferencePerBatchSize) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device visible; skipping";
  at::manual_seed(5);
  UNet model(UNetOptions().depth(2).filters(8));
  const Geometry g{60, 20};
  const c10::Device cuda(c10::kCUDA, 0);
  Predictor eager(model, g, cuda, 4), graphs(model, g, cuda, 4);
  graphs.use_graphs(true);
  for (int64_t n : {4, 1, 4, 1, 4}) {
    const at::Tensor x = at::randn({n, 1, 60, 60});
    EXPECT_TRUE(at::allclose(eager.forward(x), graphs.forward(x), 1e-5, 1e-6)) << "batch " << n;
  }
}

TEST(Gpu_CUDA, PrefetchedBatchesArriveInOrderOnTheDevice) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device visible; skipping";
  int64_t counter = 0;
  DevicePrefetcher batches(
      [&counter] {
        Batch b;
        b.images = at::full({2, 1, 8, 8}, static_cast<float>(counter)).pin_memory();
        b.labels = at::full({2, 4, 4}, counter, at::kLong).pin_memory();
        b.step = counter++;
        return b;
      },
      c10::Device(c10::kCUDA, 0), /*channels_last=*/true);
  for (int64_t k = 0; k < 5; ++k) {
    const Batch b = batches.next();
    batches.prefetch();
    EXPECT_TRUE(b.images.is_cuda());
    EXPECT_TRUE(b.images.is_contiguous(at::MemoryFormat::ChannelsLast));
    EXPECT_EQ(b.step, k);
    EXPECT_EQ(b.images.min().item<float>(), static_cast<float>(k));
    EXPECT_EQ(b.labels.max().item<int64_t>(), k);
  }
}

TEST(Gpu_CUDA, DeterministicModeGivesIdenticalWeightsTwice) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device visible; skipping";
  configure_determinism(true);
  const UNetOptions model = UNetOptions().depth(3).filters(8).dropout(0.5);
  TrainOptions t;
  t.input_size = input_size_for_output(model, /*output=*/24);
  t.batch_size = 4;
  t.exec.graphs = true;
  t.graph_warmup = 2;
  std::vector<std::vector<at::Tensor>> runs;
  std::vector<at::Tensor> initial;
  for (int run = 0; run < 2; ++run) {
    Trainer trainer(model, t, on_gpu(Precision::kBF16));  // seeds everything
    if (run == 0)
      for (const auto& p : trainer.model()->parameters()) initial.push_back(p.detach().clone());
    const int64_t out = output_size(model, t.input_size);
    for (int k = 0; k < 6; ++k) trainer.step(random_batch(4, t.input_size, out, 50 + k));
    runs.push_back(trainer.model()->parameters());
  }
  configure_determinism(false);
  for (size_t i = 0; i < runs[0].size(); ++i) EXPECT_TRUE(at::equal(runs[0][i], runs[1][i])) << "parameter " << i;
  // The runs trained (a trainer that never updates would give identical weights too): every
  // parameter moved in 6 Adam steps.
  for (size_t i = 0; i < initial.size(); ++i) EXPECT_FALSE(at::equal(runs[0][i], initial[i])) << "parameter " << i << " never moved";
}
