// Issue 26, items 3 and 4, through the command line: a folder of instance labels trains the
// measured best target without --mask-encoding or --classes (and says so), index and binary masks
// still read as before, resume and evaluate read the data as train did; on a CPU a plain `train`
// takes the small preset (explicit options win); progress lines from the first step; small images
// train in resize mode.
#include "test_support.h"

#include "unet/data/image_io.h"
#include "unet/model/checkpoint.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <filesystem>

using unet::test::expect_one_line_error;
using unet::test::read_file;
using unet::test::run_unet;
using unet::test::TempDir;
namespace fs = std::filesystem;

namespace {

/// The tiny network, not quiet: the tests read the stderr lines.
const std::string kTiny = " --depth 2 --filters 4 --input-size 60 --threads 1 --batch-size 2 --device cpu ";

/// Writes the synthetic nuclei folder (16-bit instance labels) of `count` images into `data`.
void write_nuclei(const std::string& data, int count = 6) {
  const auto r = run_unet("demo --max-steps 0 --synthetic-kind nuclei --synthetic-size 64 --synthetic-count " +
                          std::to_string(count) + " --write-data " + data);
  ASSERT_EQ(r.exit_code, 0) << r.err;
}

/// A folder layout of `count` 8-bit images of `width` x `height` and masks made by `mask_of`.
template <typename MaskOf>
void write_folder(const std::string& data, int count, int64_t width, int64_t height, MaskOf mask_of) {
  fs::create_directories(data + "/images");
  fs::create_directories(data + "/masks");
  for (int i = 0; i < count; ++i) {
    const at::Tensor mask = mask_of(i);
    const at::Tensor image = (mask.to(at::kInt) * 60 + at::randint(0, 60, {1, height, width}, at::kInt)).clamp(0, 255).to(at::kByte);
    unet::write_png(data + "/images/s" + std::to_string(i) + ".png", image);
    unet::write_png(data + "/masks/s" + std::to_string(i) + ".png", mask);
  }
}

nlohmann::json data_record(const std::string& model) {
  return nlohmann::json::parse(unet::read_checkpoint_info(unet::checkpoint_path(model)).data_record);
}

}  // namespace

TEST(FirstHourData, InstanceMasksTrainInteriorBoundaryAndSaySo) {
  TempDir dir;
  const std::string data = dir.file("nuclei"), model = dir.file("m");
  write_nuclei(data, 24);  // 24 images, 24 masks and the test images: a folder worth announcing
  auto r = run_unet("train" + kTiny + "--max-steps 1 --data-dir " + data + " --model-dir " + model);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("unet train: reading "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("unet train: the masks of " + data + " are instance labels ("), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("training 3 classes, background/interior/boundary, the best target for touching objects; "
                       "--classes 2 trains objects parted by background"), std::string::npos) << r.err;
  const auto info = unet::read_checkpoint_info(unet::checkpoint_path(model));
  EXPECT_EQ(info.model.classes(), 3);
  EXPECT_EQ(info.model.scheme(), unet::ClassScheme::kInteriorBoundary);
  EXPECT_EQ(data_record(model)["mask_encoding"], "instances");  // resume reads the data the same way
  // evaluate, without any data flag but the directory, reads instance labels for this model.
  r = run_unet("evaluate --threads 1 --device cpu --data-dir " + data + " --model-dir " + model);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto results = nlohmann::json::parse(read_file(model + "/eval_results.json"));
  EXPECT_EQ(results["class_names"], nlohmann::json({"background", "interior", "boundary"}));
  EXPECT_TRUE(results.contains("objects")) << results.dump();
  // resume alone: the same classes and encoding, no second choice announced.
  r = run_unet("train --threads 1 --device cpu --resume --max-steps 2 --model-dir " + model);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err.find("are instance labels"), std::string::npos) << r.err;
  EXPECT_EQ(unet::read_checkpoint_info(unet::checkpoint_path(model)).step, 2);
  EXPECT_EQ(data_record(model)["mask_encoding"], "instances");
  // cross-validate trains too: the same recognition and classes.
  r = run_unet("cross-validate" + kTiny + "--quiet --max-steps 1 --folds 0 --data-dir " + data + " --model-dir " + dir.file("cv"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(unet::read_checkpoint_info(unet::checkpoint_path(dir.file("cv/fold-0"))).model.scheme(),
            unet::ClassScheme::kInteriorBoundary);
  EXPECT_EQ(data_record(dir.file("cv/fold-0"))["mask_encoding"], "instances");
}

TEST(FirstHourData, GivenClassesTwoKeepsObjectsPartedByBackground) {
  TempDir dir;
  const std::string data = dir.file("nuclei"), model = dir.file("m");
  write_nuclei(data);
  auto r = run_unet("train" + kTiny + "--max-steps 1 --classes 2 --data-dir " + data + " --model-dir " + model);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("are instance labels ("), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("training 2 classes, objects parted by background; --classes 3"), std::string::npos) << r.err;
  const auto info = unet::read_checkpoint_info(unet::checkpoint_path(model));
  EXPECT_EQ(info.model.classes(), 2);
  EXPECT_EQ(info.model.scheme(), unet::ClassScheme::kPlain);
  // evaluate reads them as instances too (objects parted by background), not as bad class indices.
  r = run_unet("evaluate --threads 1 --device cpu --quiet --data-dir " + data + " --model-dir " + model);
  ASSERT_EQ(r.exit_code, 0) << r.err;
}

TEST(FirstHourData, IndexAndBinaryMasksStayIndexAndBinary) {
  TempDir dir;
  at::manual_seed(0);
  // Class indices 0/1/2 in noise: every class in many places, not instance labels.
  write_folder(dir.file("index"), 6, 48, 40, [](int) { return at::randint(0, 3, {1, 40, 48}, at::kByte); });
  auto r = run_unet("train" + kTiny + "--quiet --max-steps 1 --classes 3 --data-dir " + dir.file("index") +
                    " --model-dir " + dir.file("m3"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(data_record(dir.file("m3"))["mask_encoding"], "index");
  EXPECT_EQ(unet::read_checkpoint_info(unet::checkpoint_path(dir.file("m3"))).model.scheme(), unet::ClassScheme::kPlain);
  // Without --classes they are neither two classes nor instance labels: one line saying why.
  expect_one_line_error(run_unet("train" + kTiny + "--max-steps 1 --data-dir " + dir.file("index") + " --model-dir " +
                                 dir.file("m2")),
                        "unexpected mask values {0, 1, 2}; expected 0/255, class indices below 2 (more classes: 3 for "
                        "these), or instance labels, one connected region per object");
  EXPECT_FALSE(fs::exists(dir.file("m2/checkpoint.pt")));
  // Binary 0/255 masks (one blob each) stay binary: two classes.
  write_folder(dir.file("binary"), 6, 48, 40, [](int i) {
    at::Tensor m = at::zeros({1, 40, 48}, at::kByte);
    m.narrow(1, 5 + i, 20).narrow(2, 10, 20).fill_(255);
    return m;
  });
  r = run_unet("train" + kTiny + "--quiet --max-steps 1 --data-dir " + dir.file("binary") + " --model-dir " + dir.file("mb"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(data_record(dir.file("mb"))["mask_encoding"], "binary");
  EXPECT_EQ(unet::read_checkpoint_info(unet::checkpoint_path(dir.file("mb"))).model.classes(), 2);
}

TEST(FirstHourData, CpuPresetIsSmallAndGivenOptionsWin) {
  TempDir dir;
  const std::string data = " --synthetic --synthetic-size 64 --synthetic-count 6 --threads 1 --device cpu ";
  auto r = run_unet("train" + data + "--max-steps 1 --filters 8 --model-dir " + dir.file("m"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("unet train: preset small (auto on a CPU): depth 3, filters 8, input 220 (tile), batch 4, "
                       "learning rate 0.001, 1 steps; --preset reference trains the reference's network"),
            std::string::npos) << r.err;
  const auto info = unet::read_checkpoint_info(unet::checkpoint_path(dir.file("m")));
  EXPECT_EQ(info.model.depth(), 3);
  EXPECT_EQ(info.model.filters(), 8);  // given: overrides the preset's 16
  EXPECT_EQ(info.input_size, 220);
  EXPECT_EQ(info.input_mode, unet::InputMode::kTile);
  // The first step's duration and an estimate of the run, after a line before it.
  EXPECT_NE(r.err.find("step 1 of 1 under way"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("step 1 of 1 took "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(" for the whole run at this pace (the first steps are slower)"), std::string::npos) << r.err;
  // --preset reference asks for the reference's sizes; given ones still win (tiny here).
  r = run_unet("train" + data + kTiny + "--max-steps 1 --preset reference --model-dir " + dir.file("r"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("unet train: preset reference: depth 2, filters 4, input 60 (resize), batch 2, learning rate "
                       "0.0001, 1 steps; --preset small"), std::string::npos) << r.err;
  EXPECT_EQ(unet::read_checkpoint_info(unet::checkpoint_path(dir.file("r"))).input_mode, unet::InputMode::kResize);
  // A resumed run keeps its checkpoint's network: no preset applies, nothing contradicts it.
  r = run_unet("train --threads 1 --device cpu --resume --max-steps 2 --model-dir " + dir.file("r"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err.find("preset"), std::string::npos) << r.err;
  EXPECT_EQ(unet::read_checkpoint_info(unet::checkpoint_path(dir.file("r"))).model.filters(), 4);
}

TEST(FirstHourData, SmallImagesTrainInResizeMode) {
  TempDir dir;
  // 40x30 images, below the tiny network's 44-pixel input: resizing makes them fit.
  write_folder(dir.file("small"), 6, 40, 30, [](int i) {
    at::Tensor m = at::zeros({1, 30, 40}, at::kByte);
    m.narrow(1, 5, 15).narrow(2, 5 + i, 20).fill_(255);
    return m;
  });
  const std::string model = dir.file("m");
  auto r = run_unet("train" + kTiny + "--quiet --max-steps 2 --input-mode resize --data-dir " + dir.file("small") +
                    " --model-dir " + model);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = run_unet("evaluate --threads 1 --device cpu --quiet --data-dir " + dir.file("small") + " --model-dir " + model);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("(1 images)"), std::string::npos) << r.out;
}
