// Tests of the graph-safe Adam: equality with LibTorch's Adam, the device-side skip, the schedule.
#include "test_support.h"

#include "unet/runtime/error.h"
#include "unet/train/optimizer.h"

#include <ATen/ATen.h>
#include <torch/serialize.h>

#include <sstream>

using namespace unet;

namespace {

/// A channels-last 4-D weight and a bias, like a convolution's.
std::vector<at::Tensor> make_parameters(uint64_t seed) {
  at::manual_seed(seed);
  at::Tensor w = at::randn({4, 3, 3, 3}).contiguous(at::MemoryFormat::ChannelsLast).requires_grad_();
  at::Tensor b = at::randn({4}).requires_grad_();
  return {w, b};
}

std::vector<at::Tensor> clone_parameters(const std::vector<at::Tensor>& ps) {
  std::vector<at::Tensor> out;
  for (const auto& p : ps) out.push_back(p.detach().clone(at::MemoryFormat::Preserve).requires_grad_());
  return out;
}

void set_gradients(const std::vector<at::Tensor>& ps, uint64_t seed) {
  at::manual_seed(seed);
  for (const auto& p : ps) p.mutable_grad() = at::randn_like(p, at::MemoryFormat::Preserve);
}

const auto kOptions = torch::optim::AdamOptions(1e-2).weight_decay(5e-4);

}  // namespace

TEST(GraphSafeAdam, MatchesLibTorchAdamWithWeightDecayOnChannelsLastWeights) {
  auto ours = make_parameters(1);
  auto theirs = clone_parameters(ours);
  GraphSafeAdam a(ours, kOptions);
  torch::optim::Adam b(theirs, kOptions);
  for (int step = 0; step < 6; ++step) {
    set_gradients(ours, 100 + step);
    set_gradients(theirs, 100 + step);
    a.update();
    b.step();
  }
  EXPECT_EQ(a.steps_taken(), 6);
  for (size_t i = 0; i < ours.size(); ++i) {
    EXPECT_TRUE(ours[i].is_contiguous(ours[i].dim() == 4 ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous));
    EXPECT_TRUE(at::allclose(ours[i], theirs[i], /*rtol=*/1e-5, /*atol=*/1e-6)) << "parameter " << i;
    // Six steps of 1e-2 must have moved every weight: a no-op optimizer would fail the first check.
    EXPECT_GT((ours[i] - make_parameters(1)[i]).abs().min().item<double>(), 1e-4);
  }
}

TEST(GraphSafeAdam, AnInfFlagLeavesWeightsMomentsAndStepUnchanged) {
  auto ours = make_parameters(2);
  auto reference = clone_parameters(ours);
  GraphSafeAdam a(ours, kOptions), r(reference, kOptions);
  const at::Tensor inf = at::ones({1}), clean = at::zeros({1});
  set_gradients(ours, 7);
  a.update(inf);
  EXPECT_EQ(a.steps_taken(), 0);
  for (size_t i = 0; i < ours.size(); ++i) EXPECT_TRUE(at::equal(ours[i], reference[i]));
  // The next clean step behaves as the very first one (moments still zero, bias correction of step 1).
  set_gradients(ours, 8);
  set_gradients(reference, 8);
  a.update(clean);
  r.update();
  EXPECT_EQ(a.steps_taken(), 1);
  for (size_t i = 0; i < ours.size(); ++i) EXPECT_TRUE(at::allclose(ours[i], reference[i], 1e-6, 1e-7));
}

TEST(GraphSafeAdam, TheDeviceScheduleFollowsWarmUpAndCosineDecay) {
  LrSchedule s;
  s.kind = ScheduleKind::kCosine;
  s.warmup_steps = 4;
  s.total_steps = 12;
  s.final_factor = 0.1;
  EXPECT_DOUBLE_EQ(s.factor(1), 0.25);
  EXPECT_DOUBLE_EQ(s.factor(4), 1.0);
  EXPECT_NEAR(s.factor(8), 0.1 + 0.9 * 0.5, 1e-12);  // half-way through the decay
  EXPECT_NEAR(s.factor(12), 0.1, 1e-12);
  EXPECT_NEAR(s.factor(50), 0.1, 1e-12);
  auto ps = make_parameters(3);
  GraphSafeAdam a(ps, torch::optim::AdamOptions(2e-3), s);
  for (int64_t k = 1; k <= 14; ++k) {
    set_gradients(ps, k);
    a.update();
    EXPECT_NEAR(a.learning_rate().item<double>(), 2e-3 * s.factor(k), 1e-9) << "step " << k;
  }
}

TEST(GraphSafeAdam, ResumingFromSavedStateContinuesIdentically) {
  auto ps = make_parameters(4);
  GraphSafeAdam a(ps, kOptions);
  for (int k = 0; k < 3; ++k) {
    set_gradients(ps, 20 + k);
    a.update();
  }
  std::stringstream stream;
  {
    torch::serialize::OutputArchive archive;
    a.save(archive);
    archive.save_to(stream);
  }
  auto copy = clone_parameters(ps);
  GraphSafeAdam b(copy, kOptions);
  torch::serialize::InputArchive archive;
  archive.load_from(stream);
  b.load(archive);
  EXPECT_EQ(b.steps_taken(), 3);
  set_gradients(ps, 30);
  set_gradients(copy, 30);
  a.update();
  b.update();
  for (size_t i = 0; i < ps.size(); ++i) EXPECT_TRUE(at::equal(ps[i], copy[i])) << "parameter " << i;
}

TEST(GraphSafeAdam, RejectsBadSchedules) {
  LrSchedule s;
  s.final_factor = 1.5;
  EXPECT_THROW(s.validate(), Error);
  s.final_factor = 0.0;
  s.warmup_steps = -1;
  EXPECT_THROW(s.validate(), Error);
  EXPECT_THROW(parse_schedule("linear"), Error);
}
