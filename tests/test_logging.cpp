// Tests of the run logs: TensorBoard event encoding (against bytes written by TensorBoard itself).
#include "test_support.h"

#include "unet/data/image_io.h"
#include "unet/runtime/error.h"
#include "unet/runtime/profile.h"
#include "unet/train/best.h"
#include "unet/train/logger.h"
#include "unet/train/options.h"
#include "unet/train/plot.h"
#include "unet/train/tensorboard.h"

#include <ATen/ATen.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

using namespace unet;
using unet::test::TempDir;
namespace fs = std::filesystem;

namespace {

std::string hex(const std::string& bytes) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out.push_back(digits[c >> 4]);
    out.push_back(digits[c & 15]);
  }
  return out;
}

template <typename T>
T read_le(const std::string& s, size_t at) {
  T v;
  std::memcpy(&v, s.data() + at, sizeof(T));
  return v;
}

/// The records of a TFRecord file, each frame's two CRCs checked.
std::vector<std::string> read_records(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  const std::string file((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> records;
  size_t at = 0;
  while (at < file.size()) {
    const auto length = read_le<uint64_t>(file, at);
    EXPECT_EQ(read_le<uint32_t>(file, at + 8), masked_crc32c(file.substr(at, 8))) << "length CRC of record " << records.size();
    const std::string data = file.substr(at + 12, length);
    EXPECT_EQ(read_le<uint32_t>(file, at + 12 + length), masked_crc32c(data)) << "data CRC of record " << records.size();
    records.push_back(data);
    at += 12 + length + 4;
  }
  EXPECT_EQ(at, file.size());
  return records;
}

}  // namespace

TEST(TensorBoard, Crc32cMatchesTheStandardCheckValueAndTensorBoardsMask) {
  EXPECT_EQ(crc32c("123456789"), 0xE3069283u);  // the CRC-32C check value
  EXPECT_EQ(crc32c(""), 0u);
  // tensorboard.compat.tensorflow_stub.pywrap_tensorflow.masked_crc32c(b"123456789")
  EXPECT_EQ(masked_crc32c("123456789"), 0xc78ab0e5u);
}

TEST(TensorBoard, EventsEncodeToTheBytesThatTensorBoardsProtosProduce) {
  // Event(wall_time=1.5, step=7, summary=Summary(value=[Value(tag="train/loss", simple_value=0.25)]))
  // .SerializeToString() with TensorBoard 2.21's event_pb2, and the same at step 0 with value 0.
  EXPECT_EQ(hex(encode_scalar_event(1.5, 7, "train/loss", 0.25f)),
            "09000000000000f83f10072a130a110a0a747261696e2f6c6f7373150000803e");
  EXPECT_EQ(hex(encode_scalar_event(1.5, 0, "a", 0.0f)), "09000000000000f83f2a0a0a080a01611500000000");
  EXPECT_EQ(hex(encode_file_version_event(1.5)), "09000000000000f83f1a0d627261696e2e4576656e743a32");
}

TEST(TensorBoard, RunLoggerWritesFramedEventsBesideTheJsonLog) {
  TempDir dir;
  {
    RunLogger log(dir.path(), /*enabled=*/true, /*total_steps=*/10, /*quiet=*/true);
    log.train_step(5, 0.5, 0.25, 100.0, 1e-4);
    log.train_step(10, 0.4, 0.20, 110.0, 1e-4, /*loss_scale=*/65536.0, /*skipped_steps=*/1);
  }
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(dir.path()))
    if (e.path().filename().string().rfind("events.out.tfevents.", 0) == 0) files.push_back(e.path().string());
  ASSERT_EQ(files.size(), 1u);
  const auto records = read_records(files[0]);
  // The version record, 5 scalars at step 5, 7 at step 10 (loss scale and skipped steps added).
  ASSERT_EQ(records.size(), 1u + 5u + 7u);
  EXPECT_NE(records[0].find("brain.Event:2"), std::string::npos);
  EXPECT_NE(records[1].find("train/total_loss"), std::string::npos);
  EXPECT_NE(records[12].find("train/skipped_steps"), std::string::npos);
  // The float of the first scalar (0.75) closes its record.
  EXPECT_EQ(read_le<float>(records[1], records[1].size() - 4), 0.75f);
  EXPECT_TRUE(fs::exists(dir.file("log.jsonl")));
}

TEST(TensorBoard, AnUnwritableDirectoryIsAClearError) {
  EXPECT_THROW(EventWriter("/proc/unet-no-such-dir"), Error);
}

TEST(Plot, NiceTicksAreRoundAndCoverTheRange) {
  const std::vector<double> unit = nice_ticks(0.0, 1.0), expected = {0.0, 0.2, 0.4, 0.6, 0.8, 1.0};
  ASSERT_EQ(unit.size(), expected.size());
  for (size_t i = 0; i < unit.size(); ++i) EXPECT_NEAR(unit[i], expected[i], 1e-12);
  EXPECT_EQ(nice_ticks(0.0, 6400.0), (std::vector<double>{0.0, 2000.0, 4000.0, 6000.0}));
  const auto t = nice_ticks(0.13, 0.91, 4);
  ASSERT_FALSE(t.empty());
  EXPECT_NEAR(t.front(), 0.2, 1e-12);
  EXPECT_NEAR(t.back(), 0.8, 1e-12);
}

TEST(Plot, TrainingLogBecomesAPngWithEveryPanelDrawn) {
  if (!plotting_available()) GTEST_SKIP() << "built without libgd; no plots";
  TempDir dir;
  {
    RunLogger log(dir.path(), /*enabled=*/true, /*total_steps=*/300, /*quiet=*/true,
                  default_class_naming(2, ClassScheme::kPlain, /*membranes=*/true));
    log.record(R"({"type": "config", "start_step": 0})");
    for (int step = 10; step <= 300; step += 10) log.train_step(step, 1.0 / step, 0.5 / step, 50.0, 1e-4 * (1.0 - step / 400.0));
    Metrics m;
    m.dice_score = 0.8;
    m.membrane_dice = 0.7;
    m.class_dice = {0.7, 0.9};  // the headline (membrane) Dice is what the plot draws
    m.class_iou = {0.55, 0.8};
    log.evaluation(150, m);
    m.dice_score = 0.85;
    log.evaluation(300, m);
  }
  const std::string path = plot_training_log(dir.path());
  EXPECT_EQ(path, dir.file("training_curves.png"));
  const RawImage png = read_png(path);
  ASSERT_EQ(png.pixels.size(0), 3);                  // RGB
  EXPECT_EQ(png.pixels.size(1), 400);                // panel height
  EXPECT_EQ(png.pixels.size(2), 3 * 520);            // three panels: loss, evaluation, learning rate
  // Each panel holds pixels of its first series' colour: the curves were drawn, not just the axes.
  const at::Tensor p = png.pixels.to(at::kInt);
  auto count = [&](int x0, int r, int g, int b) {
    const at::Tensor panel = p.narrow(2, x0, 520);
    return (panel[0].eq(r) & panel[1].eq(g) & panel[2].eq(b)).sum().item<int64_t>();
  };
  EXPECT_GT(count(0, 31, 119, 180), 100);     // train loss
  EXPECT_GT(count(520, 214, 39, 40), 20);     // membrane Dice markers
  EXPECT_GT(count(1040, 148, 103, 189), 100); // learning rate
}

TEST(Plot, LogTicksArePowersOfTenAndTheirHalvesOverShortRanges) {
  EXPECT_EQ(log_ticks(0.01, 10.0), (std::vector<double>{0.01, 0.1, 1.0, 10.0}));
  const auto t = log_ticks(0.3, 4.0);
  ASSERT_EQ(t.size(), 3u);
  EXPECT_NEAR(t[0], 0.5, 1e-12);
  EXPECT_NEAR(t[1], 1.0, 1e-12);
  EXPECT_NEAR(t[2], 2.0, 1e-12);
}

TEST(Plot, AConstantLearningRateGetsNoPanelAndTheBestEvaluationIsMarked) {
  if (!plotting_available()) GTEST_SKIP() << "built without libgd; no plots";
  TempDir dir;
  {
    RunLogger log(dir.path(), /*enabled=*/true, /*total_steps=*/300, /*quiet=*/true);
    log.record(R"({"type": "config", "start_step": 0})");
    for (int step = 10; step <= 300; step += 10) log.train_step(step, 10.0 / step, 0.5 / step, 50.0, 1e-4);
    log.record(R"({"type": "eval", "step": 150, "dice_score": 0.8, "pixel_error": 0.1, "cross_entropy": 0.3,)"
               R"( "headline_dice": 0.7, "headline_class": "nucleus", "objects": {"f1_50": 0.72}})");
    log.record(R"({"type": "best", "step": 150, "criterion": "objects F1 at IoU 0.5", "value": 0.72})");
    log.record(R"({"type": "eval", "step": 300, "dice_score": 0.8, "pixel_error": 0.1, "cross_entropy": 0.3,)"
               R"( "headline_dice": 0.6, "headline_class": "nucleus", "objects": {"f1_50": 0.61}})");
  }
  const RawImage png = read_png(plot_training_log(dir.path()));
  EXPECT_EQ(png.pixels.size(2), 2 * 520);  // loss and evaluation: the flat learning rate has no panel
  const at::Tensor p = png.pixels.to(at::kInt);
  auto count = [&](const at::Tensor& region, int r, int g, int b) {
    return (region[0].eq(r) & region[1].eq(g) & region[2].eq(b)).sum().item<int64_t>();
  };
  // The evaluation panel spans steps 10-300 over 434 pixels from x = 590: step 150 is column 800,
  // drawn dashed in dark grey from the top of the plot to its bottom (308 pixels, 4 of every 7).
  EXPECT_GT(count(p.narrow(2, 800, 1), 90, 90, 90), 150);
  EXPECT_GT(count(p.narrow(2, 520, 520), 214, 39, 40), 20);     // the headline class's Dice
  EXPECT_GT(count(p.narrow(2, 520, 520), 148, 103, 189), 20);   // the objects' F1
}

TEST(Training, EvaluationsComeAboutTenTimesPerRunAndRankByObjectsOrMeanDice) {
  TrainOptions o;
  EXPECT_EQ(o.evaluate_every, TrainOptions::kEvaluateAuto);
  EXPECT_EQ(o.evaluation_interval(), 640);  // the reference's 6,400 steps
  o.max_steps = 100;
  EXPECT_EQ(o.evaluation_interval(), 50);   // never more often than every 50 steps
  o.evaluate_every = 0;
  EXPECT_EQ(o.evaluation_interval(), 0);    // only at the end, as asked
  Metrics m;
  m.class_dice = {0.9, 0.5};
  EXPECT_EQ(selection_score(m).name, "mean Dice");
  EXPECT_DOUBLE_EQ(selection_score(m).value, 0.7);
  m.has_objects = true;
  m.objects.truth_objects = 4;
  m.objects.predicted_objects = 2;
  m.objects.thresholds = {0.5};
  m.objects.true_positives = {2};
  EXPECT_EQ(selection_score(m).name, "objects F1 at IoU 0.5");
  EXPECT_DOUBLE_EQ(selection_score(m).value, 4.0 / 6.0);  // 2 TP / (2 TP + 0 FP + 2 FN)
}

TEST(Plot, AMissingLogIsAClearError) {
  TempDir dir;
  try {
    plot_training_log(dir.file("none"));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("log.jsonl: cannot read the training log"), std::string::npos) << e.what();
  }
}

TEST(Profile, KernelNamesFallIntoTheirGroups) {
  EXPECT_EQ(kernel_group("sm90_xmma_wgrad_implicit_gemm_indexed_bf16bf16_bf16f32_f32_nhwckrsc_nhwc"), "conv wgrad");
  EXPECT_EQ(kernel_group("sm90_xmma_dgrad_implicit_gemm_bf16bf16_bf16f32_f32_nhwckrsc_nchw"), "conv dgrad");
  EXPECT_EQ(kernel_group("sm90_xmma_fprop_implicit_gemm_bf16bf16_bf16f32_f32_nhwckrsc_nhwc"), "conv fprop");
  EXPECT_EQ(kernel_group("void at::native::vectorized_elementwise_kernel<4, at::native::(anonymous)::launch_clamp_scalar>"),
            "elementwise");
  EXPECT_EQ(kernel_group("void at::native::reduce_kernel<512, 1, at::native::ReduceOp<float>>"), "reduction");
  EXPECT_EQ(kernel_group("void at::native::multi_tensor_apply_kernel<FusedAdamMathFunctor<float, 4>>"), "optimizer");
  EXPECT_EQ(kernel_group("Memcpy HtoD (Pinned -> Device)"), "copy");
  EXPECT_EQ(kernel_group("void unet::cuda::loss_backward_kernel<__nv_bfloat16>"), "loss");
  EXPECT_EQ(kernel_group("void unet::cuda::bias_relu_backward_kernel<__nv_bfloat16>"), "elementwise");
  EXPECT_EQ(kernel_group("something_else"), "other");
}

TEST(Progress, TimeLeftFollowsThisRunsStepsNotAResumedRunsEarlierOnes) {
  // A fresh run: 100 of 1,000 steps in 10 s leaves 900 steps at 0.1 s.
  EXPECT_DOUBLE_EQ(eta_seconds(10.0, 100, 0, 1000), 90.0);
  // Resumed at step 1,500 of 3,000: 100 steps in 10 s leave 1,400 steps at 0.1 s (the whole run's
  // fraction, 1,600 / 3,000, would give 8.75 s).
  EXPECT_DOUBLE_EQ(eta_seconds(10.0, 1600, 1500, 3000), 140.0);
  EXPECT_DOUBLE_EQ(eta_seconds(5.0, 1500, 1500, 3000), 0.0);  // no step of this run yet
  EXPECT_DOUBLE_EQ(eta_seconds(50.0, 3000, 1500, 3000), 0.0);  // done
}
