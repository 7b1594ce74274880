// Tests of checkpoints: round trip, exact resume, reproducibility, and rejection of bad files.
#include "test_support.h"

#include "unet/data/image_io.h"
#include "unet/data/synthetic.h"
#include "unet/infer/segmenter.h"
#include "unet/model/checkpoint.h"
#include "unet/runtime/error.h"
#include "unet/runtime/signals.h"
#include "unet/train/trainer.h"

#include <ATen/ATen.h>

#include <csignal>

#include <filesystem>

using namespace unet;
using unet::test::TempDir;

namespace {

std::vector<Sample> small_data() {
  SyntheticOptions s;
  s.train_count = 6;
  s.test_count = 0;
  s.size = 64;
  return synthetic_dataset(s).train;
}

TrainOptions small_train(const std::string& model_dir, int64_t steps) {
  TrainOptions t;
  t.batch_size = 2;
  t.max_steps = steps;
  t.learning_rate = 1e-3;
  t.input_size = 60;  // depth 2 -> output 20
  t.model_dir = model_dir;
  t.augment = true;   // augmentation and dropout both draw random numbers: resume must replay them
  t.checkpoint_every = 0;
  return t;
}

UNetOptions small_model() { return UNetOptions().depth(2).filters(4); }

void expect_same_weights(UNet& a, UNet& b) {
  const auto pa = a->named_parameters(), pb = b->named_parameters();
  ASSERT_EQ(pa.size(), pb.size());
  for (const auto& item : pa) EXPECT_TRUE(at::equal(item.value(), pb[item.key()])) << item.key();
}

/// Copies of `model`'s parameters, in order.
std::vector<at::Tensor> snapshot(const UNet& model) {
  std::vector<at::Tensor> out;
  for (const auto& p : model->parameters()) out.push_back(p.detach().clone());
  return out;
}

/// How many of `model`'s parameters differ from `before`'s.
size_t changed(const UNet& model, const std::vector<at::Tensor>& before) {
  const auto now = model->parameters();
  size_t n = 0;
  for (size_t i = 0; i < now.size(); ++i) n += at::equal(now[i], before[i]) ? 0 : 1;
  return n;
}

}  // namespace

TEST(Checkpoint, RoundTripRestoresWeightsAndHeader) {
  TempDir dir;
  UNet a(small_model());
  CheckpointInfo info{small_model(), 60, 17, InputMode::kTile, 30, 40, "{\"x\":1}"};
  info.normalisation = {IntensityMode::kPercentile, 2.0, 99.5};
  save_checkpoint(dir.file("c.pt"), a, nullptr, info);
  const CheckpointInfo read = read_checkpoint_info(dir.file("c.pt"));
  EXPECT_TRUE(read.model == small_model());
  EXPECT_EQ(read.step, 17);
  EXPECT_EQ(read.input_size, 60);
  EXPECT_EQ(read.input_mode, InputMode::kTile);
  EXPECT_EQ(read.image_height, 30);
  EXPECT_EQ(read.image_width, 40);
  EXPECT_TRUE(read.normalisation == info.normalisation) << read.normalisation.describe();
  EXPECT_NE(read.training_record.find("\"x\":1"), std::string::npos) << read.training_record;
  at::manual_seed(99);  // b starts with other weights
  UNet b(small_model());
  load_checkpoint(dir.file("c.pt"), b, nullptr, false);
  expect_same_weights(a, b);
}

TEST(Checkpoint, ResumedRunEqualsUninterruptedRunExactly) {
  const auto data = small_data();
  TempDir straight_dir, resumed_dir;
  Trainer straight(small_model(), small_train(straight_dir.path(), 8), unet::test::quiet_context());
  const auto initial = snapshot(straight.model());
  straight.fit(data, {});
  std::vector<at::Tensor> at_step_5;
  {
    Trainer first(small_model(), small_train(resumed_dir.path(), 5), unet::test::quiet_context());
    first.fit(data, {});
    at_step_5 = snapshot(first.model());
  }
  // Disturb the global generator: resume must restore it from the checkpoint.
  at::manual_seed(12345);
  TrainOptions more = small_train(resumed_dir.path(), 8);
  more.resume = true;
  Trainer second(small_model(), more, unet::test::quiet_context());
  const TrainResult r = second.fit(data, {});
  EXPECT_EQ(r.first_step, 5);
  EXPECT_EQ(second.global_step(), 8);
  expect_same_weights(straight.model(), second.model());
  // Both halves trained: every parameter moved in the first 5 steps and again in the last 3 (a
  // trainer that never updates, or a resume that starts over, fails here).
  const size_t parameters = initial.size();
  EXPECT_EQ(changed(straight.model(), initial), parameters);
  EXPECT_EQ(changed(second.model(), at_step_5), parameters);
  for (size_t i = 0; i < parameters; ++i) EXPECT_FALSE(at::equal(at_step_5[i], initial[i])) << "parameter " << i;
}

// A cosine schedule with warm-up continues through a stop and a resume: the run stopped at step 5
// of 8 (as by Ctrl-C) and resumed ends where the uninterrupted run does; the schedule is not a
// no-op (a constant one ends elsewhere).
TEST(Checkpoint, CosineScheduleResumedAfterAStopEqualsTheUninterruptedRun) {
  const auto data = small_data();
  const auto cosine = [](const std::string& dir) {
    TrainOptions t = small_train(dir, 8);
    t.schedule.kind = ScheduleKind::kCosine;
    t.schedule.warmup_steps = 2;
    t.schedule.final_factor = 0.1;
    t.log_every = 1;
    return t;
  };
  TempDir straight_dir, resumed_dir, constant_dir;
  Trainer straight(small_model(), cosine(straight_dir.path()), unet::test::quiet_context());
  straight.fit(data, {});
  {
    StopScope scope;  // the stop request ends with it
    TrainOptions first = cosine(resumed_dir.path());
    first.on_log = [](const TrainProgress& p) {
      if (p.step == 5) request_stop(SIGINT);  // seen at the end of this step or the next
    };
    Trainer stopped(small_model(), first, unet::test::quiet_context());
    EXPECT_THROW(stopped.fit(data, {}), Stopped);
  }
  // The stop ends the run at the step it was asked in, or the next one (it is seen once per step).
  const int64_t stopped_at = read_checkpoint_info(checkpoint_path(resumed_dir.path())).step;
  EXPECT_GE(stopped_at, 5);
  EXPECT_LT(stopped_at, 8);
  at::manual_seed(12345);
  TrainOptions more = cosine(resumed_dir.path());
  more.resume = true;
  Trainer second(small_model(), more, unet::test::quiet_context());
  EXPECT_EQ(second.fit(data, {}).first_step, stopped_at);
  expect_same_weights(straight.model(), second.model());
  TrainOptions constant = cosine(constant_dir.path());
  constant.schedule = LrSchedule{};
  Trainer flat(small_model(), constant, unet::test::quiet_context());
  flat.fit(data, {});
  EXPECT_FALSE(at::equal(flat.model()->parameters()[0], straight.model()->parameters()[0])) << "the schedule changed nothing";
}

TEST(Checkpoint, SameSeedGivesIdenticalWeightsAndOtherSeedDoesNot) {
  const auto data = small_data();
  TempDir a, b, c;
  Trainer ta(small_model(), small_train(a.path(), 4), unet::test::quiet_context());
  const auto initial = snapshot(ta.model());
  ta.fit(data, {});
  EXPECT_EQ(changed(ta.model(), initial), initial.size()) << "training left parameters as they were";
  Trainer tb(small_model(), small_train(b.path(), 4), unet::test::quiet_context());
  tb.fit(data, {});
  expect_same_weights(ta.model(), tb.model());
  TrainOptions other = small_train(c.path(), 4);
  other.seed = 1;
  Trainer tc(small_model(), other, unet::test::quiet_context());
  tc.fit(data, {});
  EXPECT_FALSE(at::equal(ta.model()->parameters()[0], tc.model()->parameters()[0]));
}

TEST(Checkpoint, ForeignTruncatedAndMismatchedFilesAreClearErrors) {
  TempDir dir;
  UNet a(small_model());
  save_checkpoint(dir.file("good.pt"), a, nullptr, CheckpointInfo{small_model(), 60, 1});
  const std::string bytes = unet::test::read_file(dir.file("good.pt"));
  unet::test::write_file(dir.file("truncated.pt"), bytes.substr(0, bytes.size() / 2));
  unet::test::write_file(dir.file("foreign.pt"), "PK\x03\x04 not really a zip");
  // A valid LibTorch archive that is not ours.
  {
    torch::serialize::OutputArchive other;
    other.write("weights", at::ones({2}));
    other.save_to(dir.file("other.pt"));
  }
  for (const std::string name : {"truncated.pt", "foreign.pt", "other.pt", "missing.pt"}) {
    try {
      read_checkpoint_info(dir.file(name));
      ADD_FAILURE() << name << " must be rejected";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(dir.file(name)), std::string::npos) << e.what();
    }
  }
  UNet wider(UNetOptions().depth(2).filters(8));
  try {
    load_checkpoint(dir.file("good.pt"), wider, nullptr, false);
    FAIL() << "architecture mismatch must be rejected";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("filters 4"), std::string::npos) << e.what();
  }
}

TEST(Checkpoint, FreshRunRefusesToReplaceAnExistingCheckpoint) {
  const auto data = small_data();
  TempDir dir;
  Trainer first(small_model(), small_train(dir.path(), 2), unet::test::quiet_context());
  first.fit(data, {});
  const std::string before = unet::test::read_file(checkpoint_path(dir.path()));
  Trainer again(small_model(), small_train(dir.path(), 2), unet::test::quiet_context());
  EXPECT_THROW(again.fit(data, {}), Error);
  EXPECT_EQ(unet::test::read_file(checkpoint_path(dir.path())), before);
}

TEST(Compatibility, CheckpointAndExportOfAnEarlierVersionLoadAndPredictAsThen) {
  // tests/data/main-1c3b4bb: files written by unet before the one-way architecture (see its README).
  const std::string old = std::string(UNET_TEST_DATA_DIR) + "/main-1c3b4bb";
  const CheckpointInfo info = read_checkpoint_info(old + "/checkpoint.pt");
  EXPECT_TRUE(info.model == UNetOptions().depth(2).filters(4));
  EXPECT_EQ(info.step, 2);
  EXPECT_EQ(info.input_size, 60);
  EXPECT_TRUE(info.scaler_state.defined());  // trained in fp16
  EXPECT_EQ(info.input_mode, InputMode::kTile);
  EXPECT_EQ(info.image_height, 64);
  EXPECT_EQ(info.image_width, 64);
  EXPECT_NE(info.training_record.find("\"precision\":\"fp16\""), std::string::npos) << info.training_record;

  // `predict` with that checkpoint writes the probabilities it wrote then.
  TempDir out;
  const auto r = unet::test::run_unet("predict --input " + old + "/input.png --model-dir " + old + " --output-dir " +
                                      out.path() + " --no-overlays --threads 1");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const at::Tensor then = read_tiff(old + "/probabilities.tif")[0].pixels;
  const at::Tensor now = read_tiff(out.file("test-probabilities.tif"))[0].pixels;
  ASSERT_EQ(now.sizes(), then.sizes());
  EXPECT_LT((now - then).abs().max().item<float>(), 1e-5f);

  // The export of the same weights loads and segments like the checkpoint.
  const Segmenter from_checkpoint = Segmenter::from_checkpoint(old + "/checkpoint.pt");
  const Segmenter from_export = Segmenter::from_export(old + "/unet.torchscript.pt");
  const at::Tensor image = read_png(old + "/input.png").pixels;
  const at::Tensor a = from_checkpoint.segment(image).probabilities, b = from_export.segment(image).probabilities;
  EXPECT_LT((a - b).abs().max().item<float>(), 1e-5f);
  EXPECT_LT((a[1] - then[0]).abs().max().item<float>(), 1e-5f);
}
