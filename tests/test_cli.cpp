// Tests of the unet command line: the main workflows end to end, and every kind of bad input.
#include "test_support.h"

#include "unet/data/image_io.h"
#include "unet/data/synthetic.h"
#include "unet/model/checkpoint.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

using namespace unet;
using unet::test::read_file;
using unet::test::run_unet;
using unet::test::TempDir;
namespace fs = std::filesystem;

namespace {

const std::string kSmallNet = " --depth 2 --filters 4 --input-size 60 --threads 2 ";

/// A small synthetic data set in the ISBI layout: 10 labelled and 2 test slices of 64x64.
void make_isbi(const std::string& dir, int64_t size = 64) {
  SyntheticOptions s;
  s.train_count = 10;
  s.test_count = 2;
  s.size = size;
  write_synthetic_isbi(dir, s);
}

/// A bad-input run: non-zero exit, exactly one stderr line, naming `expected`.
void expect_clear_error(const std::string& arguments, const std::string& expected) {
  SCOPED_TRACE(arguments);
  unet::test::expect_one_line_error(run_unet(arguments), expected);
}

}  // namespace

TEST(Cli, TrainEvaluatePredictBenchmarkWorkflow) {
  TempDir dir;
  make_isbi(dir.file("data"));
  const std::string model = dir.file("model");
  // snake_case spellings of the reference are accepted.
  auto r = run_unet("train --data_dir " + dir.file("data") + " --model_dir " + model + kSmallNet +
                    "--batch_size 2 --max_steps 3 --log_every 1 --augment --fold 1");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("membrane Dice"), std::string::npos) << r.out;
  EXPECT_TRUE(fs::exists(checkpoint_path(model)));
  // Every logged step and the evaluation are JSON lines.
  std::istringstream log(read_file(model + "/log.jsonl"));
  int train_lines = 0, eval_lines = 0;
  for (std::string line; std::getline(log, line);) {
    const auto j = nlohmann::json::parse(line);
    train_lines += j["type"] == "train";
    eval_lines += j["type"] == "eval";
  }
  EXPECT_EQ(train_lines, 3);
  EXPECT_EQ(eval_lines, 1);

  r = run_unet("train --data-dir " + dir.file("data") + " --model-dir " + model + kSmallNet +
               "--batch-size 2 --max-steps 5 --fold 1 --resume --quiet");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(read_checkpoint_info(checkpoint_path(model)).step, 5);

  r = run_unet("evaluate --data-dir " + dir.file("data") + " --model-dir " + model + " --fold 1");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto eval = nlohmann::json::parse(read_file(model + "/eval_results.json"));
  EXPECT_EQ(eval["images"], 2);
  EXPECT_GE(eval["dice_score"].get<double>(), 0.0);
  EXPECT_LE(eval["dice_score"].get<double>(), 1.0);

  r = run_unet("predict --data-dir " + dir.file("data") + " --model-dir " + model + " --mask-encoding index --output-dir " +
               dir.file("index"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_LE(read_tiff(dir.file("index/test-masks.tif"))[0].pixels.max().item<int>(), 1);
  r = run_unet("predict --data-dir " + dir.file("data") + " --model-dir " + model);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto masks = read_tiff(model + "/predictions/test-masks.tif");
  ASSERT_EQ(masks.size(), 2u);
  EXPECT_EQ(masks[0].pixels.sizes(), (std::vector<int64_t>{1, 64, 64}));
  EXPECT_TRUE(((masks[0].pixels == 0) | (masks[0].pixels == 255)).all().item<bool>());
  const auto probs = read_tiff(model + "/predictions/test-probabilities.tif");
  ASSERT_EQ(probs.size(), 2u);
  EXPECT_EQ(probs[0].format, SampleFormat::kFloat32);
  EXPECT_GE(probs[0].pixels.min().item<float>(), 0.0f);
  EXPECT_LE(probs[0].pixels.max().item<float>(), 1.0f);
  // Masks are the thresholded probabilities (255 where p(non-membrane) >= 0.5).
  EXPECT_TRUE(at::equal(masks[1].pixels == 255, probs[1].pixels >= 0.5f));
  EXPECT_TRUE(fs::exists(model + "/predictions/overlays/test-volume_0.png"));

  for (const std::string mode : {"train", "predict", "loader"}) {
    r = run_unet("benchmark --exec-mode " + mode + " --data-dir " + dir.file("data") + kSmallNet +
                 "--batch-size 2 --warmup-steps 1 --max-steps 3 --output " + dir.file(mode + ".json"));
    ASSERT_EQ(r.exit_code, 0) << mode << ": " << r.err;
    const auto j = nlohmann::json::parse(read_file(dir.file(mode + ".json")));
    EXPECT_EQ(j["steps"], 3);
    EXPECT_GT(j["images_per_second"].get<double>(), 0.0);
    EXPECT_LE(j["latency_ms_p50"].get<double>(), j["latency_ms_p99"].get<double>());
  }
  r = run_unet("benchmark --synthetic --exec_mode predict" + kSmallNet + "--batch-size 1 --warmup-steps 0 --max-steps 2 --output " +
               dir.file("s.json"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
}

TEST(Cli, BadInputGivesOneClearLineAndLeavesFilesAlone) {
  TempDir dir;
  const std::string data = dir.file("data"), model = dir.file("model");
  make_isbi(data);
  // A model directory with a checkpoint and predictions that no failing command may touch.
  auto r = run_unet("train --data-dir " + data + " --model-dir " + model + kSmallNet + "--batch-size 2 --max-steps 1 --quiet");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = run_unet("predict --data-dir " + data + " --model-dir " + model + " --no-overlays");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string checkpoint = read_file(checkpoint_path(model));
  const std::string predictions = read_file(model + "/predictions/test-masks.tif");

  const std::string train = "train --model-dir " + model + kSmallNet + "--max-steps 1 --data-dir ";
  expect_clear_error(train + dir.file("nowhere"), dir.file("nowhere") + ": no such data directory");

  fs::create_directories(dir.file("text"));
  unet::test::write_file(dir.file("text/train-volume.tif"), "not a tiff\n");
  fs::copy_file(data + "/train-labels.tif", dir.file("text/train-labels.tif"));
  expect_clear_error(train + dir.file("text"), dir.file("text/train-volume.tif") + ": not a TIFF file");

  fs::create_directories(dir.file("missing"));
  fs::copy_file(data + "/train-volume.tif", dir.file("missing/train-volume.tif"));
  expect_clear_error(train + dir.file("missing"), dir.file("missing/train-labels.tif") + ": no such file");

  auto variant = [&](const std::string& name, const std::vector<at::Tensor>& labels) {
    fs::create_directories(dir.file(name));
    fs::copy_file(data + "/train-volume.tif", dir.file(name + "/train-volume.tif"));
    write_tiff(dir.file(name + "/train-labels.tif"), labels, false);
    return dir.file(name);
  };
  std::vector<at::Tensor> labels;
  for (const auto& p : read_tiff(data + "/train-labels.tif")) labels.push_back(p.pixels);
  expect_clear_error(train + variant("count", std::vector<at::Tensor>(labels.begin(), labels.end() - 1)), "9 pages");
  std::vector<at::Tensor> small = labels;
  small[4] = small[4].narrow(2, 0, 60).contiguous();
  expect_clear_error(train + variant("size", small), "mask is 60x64");
  std::vector<at::Tensor> grey = labels;
  grey[2][0][0][0] = 128;
  expect_clear_error(train + variant("values", grey), "unexpected mask values {0, 128, 255}");


  const std::string ok = "train --data-dir " + data + kSmallNet + "--max-steps 1 ";
  expect_clear_error(ok + "--model-dir " + model + " --batch-size 0", "--batch-size must be at least 1");
  expect_clear_error(ok + "--model-dir " + model + " --fold 7", "--fold 7");
  expect_clear_error(ok + "--model-dir " + model + " --input-size 61", "input size 61 is not legal");
  expect_clear_error(ok + "--model-dir " + model + " --precision fp8", "--precision: expected fp32, tf32, fp16, bf16, auto or int8");
  expect_clear_error(ok + "--model-dir " + model + " --graphs maybe", "--graphs: expected auto, on or off");
  expect_clear_error(ok + "--model-dir " + model + " --fused yes", "--fused: expected on or off");
  expect_clear_error(ok + "--model-dir " + model + " --lr-schedule linear", "--lr-schedule: expected constant or cosine, got 'linear'");
  expect_clear_error(ok + "--model-dir " + model + " --lr-schedule cosine --final-lr-factor 2", "--final-lr-factor must lie in [0, 1]");
  expect_clear_error(ok + "--model-dir " + checkpoint_path(model) + "/sub", "cannot create model directory");
  expect_clear_error(ok + "--model-dir " + model, "a checkpoint is already there");

  fs::create_directories(dir.file("trunc"));
  unet::test::write_file(checkpoint_path(dir.file("trunc")), checkpoint.substr(0, checkpoint.size() / 2));
  expect_clear_error("evaluate --data-dir " + data + " --model-dir " + dir.file("trunc"), "not a unet checkpoint");
  fs::create_directories(dir.file("foreign"));
  fs::copy_file(data + "/train-volume.tif", checkpoint_path(dir.file("foreign")));
  expect_clear_error("predict --data-dir " + data + " --model-dir " + dir.file("foreign"), "not a unet checkpoint");
  expect_clear_error("evaluate --data-dir " + data + " --model-dir " + dir.file("empty"), "no such file");
  expect_clear_error("predict --input " + dir.file("text/train-volume.tif") + " --model-dir " + model,
                     "not a TIFF or PNG image");
  expect_clear_error("predict --data-dir " + data + " --model-dir " + model + " --input-mode tile --tile-size 61",
                     "input size 61 is not legal");
  {
    // A zero-width TIFF page is rejected by name.
    unet::test::write_file(dir.file("zero.tif"), std::string("II*\0\x08\0\0\0", 8) + std::string(2, '\0'));
    expect_clear_error("predict --input " + dir.file("zero.tif") + " --model-dir " + model, dir.file("zero.tif"));
  }

  EXPECT_EQ(read_file(checkpoint_path(model)), checkpoint);
  EXPECT_EQ(read_file(model + "/predictions/test-masks.tif"), predictions);
}

TEST(Cli, OptionValuesAreCheckedAtParseTimeAndNamedByTheirFlags) {
  TempDir dir;
  const std::string fresh = dir.file("fresh");
  const std::string train = "train --model-dir " + fresh + kSmallNet + "--max-steps 1 ";
  // Library fields reach the user as the flags that set them, before anything is read or written.
  expect_clear_error(train + "--lr-warmup-steps -1", "--lr-warmup-steps must not be negative (got -1)");
  expect_clear_error(train + "--border-weights --border-sigma 0", "--border-sigma must be positive (got 0)");
  expect_clear_error(train + "--no-border-class-balance", "--border-class-balance is part of the border weights: add --border-weights");
  expect_clear_error(train + "--up-kernel 4", "--up-kernel must be 2 or 3 (got 4)");
  expect_clear_error(train + "--checkpoint-every -5", "--checkpoint-every must not be negative (got -5)");
  expect_clear_error(train + "--learning-rate inf", "--learning-rate must be positive and finite (got inf)");
  expect_clear_error(train + "--augment maybe", "--augment: expected on or off, got 'maybe'");
  expect_clear_error(train + "--device gpu", "--device: 'gpu' is not a device");
  expect_clear_error("predict --input " + dir.file("x.png") + " --model-dir " + fresh + " --tile-batch 0",
                     "--tile-batch must be at least 1 (got 0)");
  // Every switch takes the one style: --x, --x on|off, --x=on|off, --no-x (and the reference's aliases).
  for (const std::string forms : {"--augment", "--augment off", "--no-augment", "--augment=on", "--channels-last off",
                                  "--no-channels-last", "--graphs auto", "--graphs=off", "--xla", "--fused off",
                                  "--amp", "--use_amp", "--elastic off", "--deterministic", "--resume_training"})
    expect_clear_error(train + forms + " --batch-size 0", "--batch-size must be at least 1 (got 0)");
  EXPECT_FALSE(fs::exists(fresh));
}

TEST(Cli, RgbImagesWithThreeClassesEndToEnd) {
  TempDir dir;
  for (const std::string sub : {"images", "masks", "test"}) fs::create_directories(dir.file("data/" + sub));
  for (int i = 0; i < 6; ++i) {
    const at::Tensor mask = at::randint(0, 3, {1, 48, 40}, at::kByte);
    // Each class has its own colour, plus noise: learnable, and the channels matter.
    at::Tensor rgb = at::stack({(mask[0] == 0), (mask[0] == 1), (mask[0] == 2)}).to(at::kByte) * 180 +
                     at::randint(0, 60, {3, 48, 40}, at::kByte);
    write_png(dir.file("data/images/s" + std::to_string(i) + ".png"), rgb);
    write_png(dir.file("data/masks/s" + std::to_string(i) + ".png"), mask);
    if (i < 2) write_png(dir.file("data/test/t" + std::to_string(i) + ".png"), rgb);
  }
  const std::string model = dir.file("model");
  auto r = run_unet("train --data-dir " + dir.file("data") + " --classes 3 --depth 2 --filters 4 --input-mode tile "
                    "--input-size 60 --batch-size 2 --max-steps 3 --quiet --model-dir " + model);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(read_checkpoint_info(checkpoint_path(model)).model.in_channels(), 3);
  r = run_unet("predict --data-dir " + dir.file("data") + " --model-dir " + model + " --tta");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // A folder in gives a folder out: one mask per test file, in its format, and its probabilities.
  for (const std::string t : {"t0", "t1"}) {
    const RawImage mask = read_png(model + "/predictions/" + t + ".png");
    EXPECT_EQ(mask.pixels.sizes(), (std::vector<int64_t>{1, 48, 40}));
    EXPECT_LE(mask.pixels.max().item<int>(), 2);  // class indices, not 0/255
    const auto maps = read_tiff(model + "/predictions/" + t + "_probabilities.tif");
    ASSERT_EQ(maps.size(), 3u);  // one page per class
    const at::Tensor p = at::cat({maps[0].pixels, maps[1].pixels, maps[2].pixels});  // [3, H, W]
    EXPECT_TRUE(at::allclose(p.sum(0), at::ones({48, 40}), 1e-4, 1e-4));
    EXPECT_TRUE(at::equal(p.argmax(0).to(at::kByte), mask.pixels[0]));  // the mask is the argmax
  }
  EXPECT_FALSE(fs::exists(model + "/predictions/test-masks.tif"));
  // Neither an object threshold nor a smallest mean object probability applies to a model without
  // objects: export and evaluate's sweep refuse them, and nothing is written.
  expect_clear_error("export --model-dir " + model + " --format checkpoint --object-threshold 0.4",
                     "--object-threshold: a model of 3 plain classes has no objects");
  expect_clear_error("export --model-dir " + model + " --format checkpoint --min-object-probability 0.5",
                     "--min-object-probability: a model of 3 plain classes has no objects");
  EXPECT_FALSE(fs::exists(model + "/model-only"));
  expect_clear_error("evaluate --data-dir " + dir.file("data") + " --model-dir " + model + " --min-object-probabilities 0.5",
                     "--min-object-probabilities: a model of 3 plain classes has no objects");
  expect_clear_error("predict --data-dir " + dir.file("data") + " --model-dir " + model + " --min-object-probability 0.5",
                     "--min-object-probability: a model of 3 plain classes has no objects");
  // Instances are class 1's objects of a two-class model.
  expect_clear_error("predict --data-dir " + dir.file("data") + " --model-dir " + model + " --instances",
                     "--instances cuts out the objects of class 1 of a two-class model, or of a model trained on "
                     "interior/boundary classes; this model has 3 classes");
  // A grayscale image for an RGB model is one clear error.
  write_png(dir.file("gray.png"), at::zeros({1, 20, 20}, at::kByte));
  expect_clear_error("predict --input " + dir.file("gray.png") + " --model-dir " + model, "the model expects 3");
}

TEST(Cli, PredictFolderWritesOneOutputPerFileInItsFormat) {
  TempDir dir;
  const std::string model = dir.file("model");
  ASSERT_EQ(run_unet("train --model-dir " + model + kSmallNet + "--synthetic-size 64 --synthetic-count 4 --batch-size 2 --max-steps 1 --quiet").exit_code, 0);
  fs::create_directories(dir.file("in"));
  write_png(dir.file("in/a.png"), at::randint(0, 256, {1, 70, 50}, at::kByte));
  write_tiff(dir.file("in/b.tif"), {at::randint(0, 256, {1, 64, 64}, at::kByte), at::randint(0, 256, {1, 64, 64}, at::kByte)});
  auto r = run_unet("predict --model-dir " + model + " --input " + dir.file("in") + " --output-dir " + dir.file("out"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const RawImage a = read_png(dir.file("out/a.png"));
  EXPECT_EQ(a.pixels.sizes(), (std::vector<int64_t>{1, 70, 50}));
  EXPECT_TRUE(((a.pixels == 0) | (a.pixels == 255)).all().item<bool>());
  EXPECT_EQ(read_tiff(dir.file("out/b.tif")).size(), 2u);  // a stack in, a stack out
  EXPECT_EQ(read_tiff(dir.file("out/a_probabilities.tif")).size(), 1u);  // p(class 1)
  EXPECT_EQ(read_tiff(dir.file("out/b_probabilities.tif")).size(), 2u);
  EXPECT_TRUE(fs::exists(dir.file("out/overlays/b_1.png")));
  // The mask is the thresholded probability.
  const at::Tensor p = read_tiff(dir.file("out/a_probabilities.tif"))[0].pixels;
  EXPECT_TRUE(at::equal((p >= 0.5).to(at::kByte) * 255, a.pixels));
  // --instances: 16-bit label images of the cells, one page per input page; labels 1..n.
  r = run_unet("predict --model-dir " + model + " --input " + dir.file("in") + " --output-dir " + dir.file("inst") +
               " --no-overlays --instances watershed");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto labels = read_tiff(dir.file("inst/a_instances.tif"));
  ASSERT_EQ(labels.size(), 1u);
  EXPECT_EQ(labels[0].format, SampleFormat::kUInt16);
  const at::Tensor l = labels[0].pixels[0];
  EXPECT_TRUE(at::equal(l > 0, read_png(dir.file("inst/a.png")).pixels[0] == 255));  // objects = the cell mask
  EXPECT_EQ(read_tiff(dir.file("inst/b_instances.tif")).size(), 2u);
  r = run_unet("predict --model-dir " + model + " --input " + dir.file("in/a.png") + " --output-dir " + dir.file("inst1") +
               " --no-overlays --instances");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(at::equal(read_tiff(dir.file("inst1/test-instances.tif"))[0].pixels[0] > 0, l > 0));
  // --no-probabilities writes the masks only.
  r = run_unet("predict --model-dir " + model + " --input " + dir.file("in") + " --output-dir " + dir.file("out2") + " --no-probabilities --no-overlays");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(fs::exists(dir.file("out2/a.png")));
  EXPECT_FALSE(fs::exists(dir.file("out2/a_probabilities.tif")));
  // Predicting into the input folder would replace the inputs: refused, inputs intact.
  const std::string before = read_file(dir.file("in/a.png"));
  expect_clear_error("predict --model-dir " + model + " --input " + dir.file("in") + " --output-dir " + dir.file("in"),
                     "is an input of this command");
  EXPECT_EQ(read_file(dir.file("in/a.png")), before);
  // Two inputs that would write one file: refused before predicting.
  write_png(dir.file("in/b.png"), at::zeros({1, 64, 64}, at::kByte));
  expect_clear_error("predict --model-dir " + model + " --input " + dir.file("in") + " --output-dir " + dir.file("out3"),
                     "two input files would write it");
  EXPECT_FALSE(fs::exists(dir.file("out3")));
}

TEST(Cli, EvaluateOnANucleusFolderNamesTheForegroundAndCountsObjects) {
  // A folder data set of separate bright disks (the nuclei) on a dark background: 0 background,
  // 255 nucleus, as nucleus masks are stored.
  TempDir dir;
  for (const std::string sub : {"images", "masks"}) fs::create_directories(dir.file("nuclei/" + sub));
  int64_t disks = 0;
  for (int i = 0; i < 3; ++i) {
    at::Tensor mask = at::zeros({64, 64}, at::kByte);
    for (int k = 0; k < 3 + i; ++k, ++disks) {
      const int64_t cy = 10 + 20 * (k % 3), cx = 10 + 22 * (k / 3) + 4 * i;
      for (int64_t y = cy - 5; y <= cy + 5; ++y)
        for (int64_t x = cx - 5; x <= cx + 5; ++x)
          if ((y - cy) * (y - cy) + (x - cx) * (x - cx) <= 25) mask[y][x] = 255;
    }
    const at::Tensor image = (mask.to(at::kFloat) * 0.7 + at::rand({64, 64}) * 60).clamp(0, 255).to(at::kByte);
    write_png(dir.file("nuclei/images/n" + std::to_string(i) + ".png"), image.unsqueeze(0));
    write_png(dir.file("nuclei/masks/n" + std::to_string(i) + ".png"), mask.unsqueeze(0));
  }
  const std::string model = dir.file("model");
  ASSERT_EQ(run_unet("train --data-dir " + dir.file("nuclei") + kSmallNet + "--input-mode tile --batch-size 2 --max-steps 2 "
                     "--fold none --quiet --model-dir " + model).exit_code, 0);
  auto r = run_unet("evaluate --data-dir " + dir.file("nuclei") + " --model-dir " + model + " --fold none --class-names background,nucleus");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("nucleus Dice (hard, original size)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("nucleus objects (4-connected)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("truth " + std::to_string(disks) + ","), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("membrane Dice"), std::string::npos) << r.out;
  const auto j = nlohmann::json::parse(read_file(model + "/eval_results.json"));
  EXPECT_EQ(j["headline"]["class"], "nucleus");
  EXPECT_EQ(j["headline"]["dice"], j["class_dice"][1]);
  EXPECT_EQ(j["class_names"], (std::vector<std::string>{"background", "nucleus"}));
  EXPECT_EQ(j["objects"]["truth"], disks);
  // A two-class model's objects are components, not grown to a threshold: none is recorded for
  // them, and a sweep of levels shows none ("-"); a sweep of thresholds is refused.
  EXPECT_FALSE(j["object_rule"].contains("object_threshold")) << j["object_rule"].dump();
  r = run_unet("evaluate --data-dir " + dir.file("nuclei") + " --model-dir " + model + " --fold none --min-object-probabilities 0,0.5");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("\n            -       0  "), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("--object-threshold"), std::string::npos) << r.out;
  const auto swept = nlohmann::json::parse(read_file(model + "/eval_results.json"));
  ASSERT_EQ(swept["object_sweep"].size(), 2u) << swept.dump();
  EXPECT_FALSE(swept["object_sweep"][0].contains("object_threshold"));
  EXPECT_EQ(swept["object_sweep"][1]["min_probability"], 0.5);
  EXPECT_FALSE(swept.contains("best_object_threshold"));
  EXPECT_TRUE(swept.contains("best_min_object_probability"));
  expect_clear_error("evaluate --data-dir " + dir.file("nuclei") + " --model-dir " + model + " --fold none --object-thresholds 0.4",
                     "--object-thresholds: a two-class model's objects are the components of class 1");
  expect_clear_error("export --model-dir " + model + " --format checkpoint --object-threshold 0.4",
                     "--object-threshold: a two-class model's objects are the components of class 1");
  EXPECT_FALSE(fs::exists(model + "/model-only"));  // the default output's folder is not made either
  // Given to evaluate or predict, a threshold is refused too rather than ignored.
  expect_clear_error("evaluate --data-dir " + dir.file("nuclei") + " --model-dir " + model + " --fold none --object-threshold 0.4",
                     "--object-threshold: a two-class model's objects are the components of class 1");
  expect_clear_error("predict --input " + dir.file("nuclei/images/n0.png") + " --model-dir " + model + " --instances --object-threshold 0.4",
                     "--object-threshold: a two-class model's objects are the components of class 1");
  r = run_unet("export --model-dir " + model + " --format checkpoint --min-object-probability 0.5 -o " + dir.file("y/checkpoint.pt"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("smallest mean object probability: 0.5"), std::string::npos) << r.out;
  // Without names, folder data calls its objects the foreground; the wrong number of names is an option error.
  r = run_unet("evaluate --data-dir " + dir.file("nuclei") + " --model-dir " + model + " --fold none");
  EXPECT_NE(r.out.find("foreground Dice (hard, original size)"), std::string::npos) << r.out;
  expect_clear_error("evaluate --data-dir " + dir.file("nuclei") + " --model-dir " + model + " --class-names a,b,c",
                     "--class-names needs one name per class (2)");
}

TEST(Cli, CrossValidateRunsChosenFoldsAndResumesThem) {
  TempDir dir;
  make_isbi(dir.file("data"));
  const std::string model = dir.file("cv");
  const std::string base = "cross-validate --data-dir " + dir.file("data") + " --model-dir " + model + kSmallNet +
                           "--batch-size 2 --max-steps 2 --quiet ";
  expect_clear_error(base + "--folds 1,7", "--folds: expected 'all' or distinct folds 0-4");
  expect_clear_error(base + "--folds 1,1", "--folds");
  auto r = run_unet(base + "--folds 3,1");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(fs::exists(model + "/fold-1/checkpoint.pt"));
  EXPECT_TRUE(fs::exists(model + "/fold-3/checkpoint.pt"));
  EXPECT_FALSE(fs::exists(model + "/fold-0"));
  auto results = nlohmann::json::parse(read_file(model + "/cv_results.json"));
  ASSERT_EQ(results["folds"].size(), 2u);
  EXPECT_EQ(results["folds"][0]["fold"], 3);
  EXPECT_EQ(results["folds"][1]["fold"], 1);
  // The learning curves and TensorBoard events of each fold sit in its directory.
  EXPECT_TRUE(fs::exists(model + "/fold-1/log.jsonl"));
  bool events = false;
  for (const auto& e : fs::directory_iterator(model + "/fold-1"))
    events = events || e.path().filename().string().rfind("events.out.tfevents.", 0) == 0;
  EXPECT_TRUE(events);
  // A finished fold resumes without training and is evaluated again to the same numbers.
  const double dice = results["folds"][1]["dice_score"].get<double>();
  r = run_unet(base + "--folds 1 --resume");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  results = nlohmann::json::parse(read_file(model + "/cv_results.json"));
  ASSERT_EQ(results["folds"].size(), 1u);
  EXPECT_EQ(results["folds"][0]["steps"], 0);
  EXPECT_NEAR(results["folds"][0]["dice_score"].get<double>(), dice, 1e-9);
}

TEST(Cli, BenchmarkProfileListsTheHeaviestOperatorsAndWritesATrace) {
  TempDir dir;
  const auto r = run_unet("benchmark --exec-mode train --synthetic" + kSmallNet +
                          "--batch-size 2 --warmup-steps 1 --max-steps 2 --output " + dir.file("b.json") +
                          " --profile " + dir.file("trace/t.json"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("profile of 5 steps on cpu"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("ConvolutionBackward0"), std::string::npos) << r.out;  // the backward convolutions are there
  EXPECT_EQ(r.err.find("ERROR"), std::string::npos) << r.err;
  const auto trace = nlohmann::json::parse(read_file(dir.file("trace/t.json")));
  EXPECT_GT(trace["traceEvents"].size(), 100u);
}
