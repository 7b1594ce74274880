// `unet quantize` through the command line: a trained model calibrated, checked and used in int8;
// a model that int8 would spoil refused with nothing written; bad input in one line.
#include "test_support.h"

#include "unet/infer/int8_engine.h"
#include "unet/infer/quantize.h"
#include "unet/infer/segmenter.h"
#include "unet/model/checkpoint.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <filesystem>

using namespace unet;
using unet::test::expect_one_line_error;
using unet::test::read_file;
using unet::test::run_unet;
using unet::test::snapshot;
using unet::test::TempDir;
namespace fs = std::filesystem;

namespace {

const std::string kTiny = " --depth 2 --filters 8 --input-size 60 --threads 1 --batch-size 2 --quiet ";

#define REQUIRE_INT8()                                                                              \
  if (!Int8Engine::available()) GTEST_SKIP() << "no int8 on this CPU or LibTorch (" << cpu_int8_units() << ")"

/// The synthetic nuclei folder in `data` and a tiny interior/boundary network trained on it.
void train_on_nuclei(const std::string& data, const std::string& model, int steps) {
  ASSERT_EQ(run_unet("demo --max-steps 0 --synthetic-kind nuclei --write-data " + data +
                     " --synthetic-size 64 --synthetic-count 8").exit_code, 0);
  const auto r = run_unet("train" + kTiny + "--max-steps " + std::to_string(steps) + " --data-dir " + data + " --model-dir " + model);
  ASSERT_EQ(r.exit_code, 0) << r.err;
}

/// Fraction of equal bytes of two files of the same size (0 when the sizes differ).
double same_bytes(const std::string& a, const std::string& b) {
  const std::string x = read_file(a), y = read_file(b);
  if (x.size() != y.size() || x.empty()) return 0.0;
  size_t same = 0;
  for (size_t i = 0; i < x.size(); ++i) same += x[i] == y[i];
  return static_cast<double>(same) / static_cast<double>(x.size());
}

}  // namespace

TEST(Quantize, CalibratesChecksAndPredictsInInt8LikeFp32) {
  REQUIRE_INT8();
  TempDir dir;
  const std::string data = dir.file("data"), model = dir.file("model");
  train_on_nuclei(data, model, 60);
  const auto q = run_unet("quantize --threads 1 --model-dir " + model);
  ASSERT_EQ(q.exit_code, 0) << q.err;
  // Every method tried on the held-out images, one chosen, the file written and named.
  for (const char* line : {"fp32 ", "minmax ", "percentile ", "mse ", "<- chosen", "object F1", "wrote ", "--precision int8"})
    EXPECT_NE(q.out.find(line), std::string::npos) << line << "\n" << q.out;
  ASSERT_TRUE(fs::exists(dir.file("model/int8.json")));
  const Int8Record record = read_int8_record(dir.file("model/int8.json"), read_checkpoint_info(model + "/checkpoint.pt").model);
  EXPECT_EQ(record.step, 60);
  EXPECT_NE(record.report_json.find("calibration_images"), std::string::npos);
  EXPECT_NE(record.report_json.find("\"held-out images\""), std::string::npos);
  // Same calibration again: the same scales (reproducible).
  ASSERT_EQ(run_unet("quantize --threads 1 --model-dir " + model).exit_code, 0);
  EXPECT_EQ(read_int8_record(dir.file("model/int8.json"), read_checkpoint_info(model + "/checkpoint.pt").model).scales.outputs,
            record.scales.outputs);
  // predict in int8 and fp32: the masks agree almost everywhere.
  ASSERT_EQ(run_unet("predict --threads 1 --quiet --model-dir " + model + " --precision int8 --input " + data +
                     "/test --output-dir " + dir.file("int8")).exit_code, 0);
  ASSERT_EQ(run_unet("predict --threads 1 --quiet --model-dir " + model + " --input " + data + "/test --output-dir " +
                     dir.file("fp32")).exit_code, 0);
  int masks = 0;
  for (const auto& e : fs::directory_iterator(dir.file("fp32")))
    if (e.path().extension() == ".png") {
      ++masks;
      EXPECT_GT(same_bytes(e.path().string(), dir.file("int8/" + e.path().filename().string())), 0.97) << e.path();
    }
  EXPECT_GT(masks, 0);
  // The C++ API in int8: the same masks as fp32 almost everywhere.
  at::manual_seed(3);
  const at::Tensor image = (at::rand({1, 90, 70}) * 255).to(at::kByte);
  const Segmentation s8 = Segmenter::from_checkpoint(model + "/checkpoint.pt", "cpu", "int8").segment(image);
  const Segmentation s32 = Segmenter::from_checkpoint(model + "/checkpoint.pt", "cpu", "fp32").segment(image);
  ASSERT_EQ(s8.mask.sizes(), s32.mask.sizes());
  EXPECT_GT(s8.mask.eq(s32.mask).to(at::kFloat).mean().item<double>(), 0.97);
  // evaluate in int8 keeps the model's own results and writes its own.
  const auto e = run_unet("evaluate --threads 1 --quiet --model-dir " + model + " --data-dir " + data + " --precision int8");
  ASSERT_EQ(e.exit_code, 0) << e.err;
  EXPECT_TRUE(fs::exists(dir.file("model/eval_results_int8.json")));
}

TEST(Quantize, RefusesAModelThatInt8WouldSpoilAndWritesNothing) {
  REQUIRE_INT8();
  TempDir dir;
  const std::string data = dir.file("data"), model = dir.file("model");
  train_on_nuclei(data, model, 60);
  // The same function, hard to quantize: one channel of the first layer 2000x larger, the next
  // layer's weights on it 2000x smaller (ReLU commutes with positive scaling), so one per-tensor
  // u8 scale must span it and leaves the other channels a few steps.
  const std::string ckpt = model + "/checkpoint.pt";
  const CheckpointInfo info = read_checkpoint_info(ckpt);
  UNet net = load_model(ckpt, info);
  {
    c10::InferenceMode guard;
    auto p = net->named_parameters();
    p["down.0.conv1.weight"][0].mul_(2000);
    p["down.0.conv1.bias"][0].mul_(2000);
    p["down.0.conv2.weight"].select(1, 0).div_(2000);
  }
  save_checkpoint(ckpt, net, nullptr, info);
  const auto before = snapshot(model);
  const auto r = run_unet("quantize --threads 1 --quiet --model-dir " + model);
  expect_one_line_error(r, "int8 loses too much accuracy");
  EXPECT_NE(r.err.find("nothing written"), std::string::npos) << r.err;
  EXPECT_EQ(snapshot(model), before);
  // --force writes it, saying so.
  const auto forced = run_unet("quantize --threads 1 --force --model-dir " + model);
  ASSERT_EQ(forced.exit_code, 0) << forced.err;
  EXPECT_NE(forced.out.find("forced past the accuracy check"), std::string::npos) << forced.out;
}

TEST(Quantize, BadInputGetsOneLine) {
  REQUIRE_INT8();
  TempDir dir;
  const std::string data = dir.file("data"), model = dir.file("model");
  // No model.
  expect_one_line_error(run_unet("quantize --threads 1 --model-dir " + dir.file("none")), "checkpoint");
  train_on_nuclei(data, model, 2);
  // No int8 calibration yet: predict says how to make one.
  expect_one_line_error(run_unet("predict --threads 1 --model-dir " + model + " --precision int8 --input " + data + "/test"),
                        "run unet quantize --model-dir");
  // A data folder without images.
  fs::create_directories(dir.file("empty"));
  const auto empty = run_unet("quantize --threads 1 --quiet --model-dir " + model + " --data-dir " + dir.file("empty"));
  EXPECT_NE(empty.exit_code, 0);
  EXPECT_EQ(std::count(empty.err.begin(), empty.err.end(), '\n'), 1) << empty.err;
  // Training in int8: refused.
  expect_one_line_error(run_unet("train" + kTiny + "--max-steps 1 --precision int8 --data-dir " + data + " --model-dir " +
                                 dir.file("m8")),
                        "int8 is for inference only");
  // Calibrated, then the weights change (training goes on): refused until quantized again.
  ASSERT_EQ(run_unet("quantize --threads 1 --force --model-dir " + model).exit_code, 0);
  ASSERT_EQ(run_unet("train --threads 1 --quiet --resume --max-steps 4 --model-dir " + model).exit_code, 0);
  expect_one_line_error(run_unet("predict --threads 1 --model-dir " + model + " --precision int8 --input " + data + "/test"),
                        "run unet quantize again");
}
