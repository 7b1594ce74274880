// Tests of the per-image intensity normalisation (`--normalize`): the statistics by hand, the one
// place each path applies them (training batches, prediction, the exports), and the records.
#include "test_support.h"

#include "unet/data/augment.h"
#include "unet/data/image_io.h"
#include "unet/eval/instances.h"
#include "unet/data/preprocess.h"
#include "unet/infer/bioimageio.h"
#include "unet/infer/export.h"
#include "unet/infer/predictor.h"
#include "unet/infer/segmenter.h"
#include "unet/model/checkpoint.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <cmath>
#include <cstdlib>
#include <random>
#include <filesystem>
#include <nlohmann/json.hpp>

using namespace unet;
using unet::test::read_file;
using unet::test::read_floats;
using unet::test::run_unet;
using unet::test::TempDir;

namespace {

const Normalisation kPercentile{IntensityMode::kPercentile, 1.0, 99.8};
const Normalisation kMeanStd{IntensityMode::kMeanStd};

UNetOptions tiny() { return UNetOptions().depth(2).filters(4); }

std::string save_tiny(const TempDir& dir, const Normalisation& n, const UNetOptions& options = tiny()) {
  at::manual_seed(3);
  UNet model(options);
  std::filesystem::create_directories(dir.file("model"));
  CheckpointInfo info{options, 60, 1};
  info.normalisation = n;
  save_checkpoint(checkpoint_path(dir.file("model")), model, nullptr, info);
  return dir.file("model");
}

/// A dim, uneven image [1, H, W] in [-1, 1], as `normalise` gives one: values in [-1, -0.6].
at::Tensor dim_image(int64_t h, int64_t w) {
  at::manual_seed(5);
  return at::rand({1, h, w}).mul(0.4).sub(1.0);
}

}  // namespace

TEST(Normalisation, StatisticsByHand) {
  // Channel 0: -1, -0.5, 0, 0.5, 1; channel 1: 0 .. 9 (numpy's linear percentiles).
  const at::Tensor image = at::stack({at::linspace(-1, 1, 10).view({2, 5}), at::arange(10, at::kFloat).view({2, 5})});
  at::Tensor a = normalisation_affine(image, {IntensityMode::kPercentile, 25.0, 75.0});
  // 25th and 75th of -1..1 in 10 steps: positions 2.25 and 6.75 -> -0.5 and 0.5.
  EXPECT_NEAR(a[0][0].item<double>(), 2.0 / (1.0 + 1e-6), 1e-5);
  EXPECT_NEAR(a[0][1].item<double>(), 0.0, 1e-5);
  // 0..9: 2.25 and 6.75 -> -1 and 1.
  const at::Tensor y = apply_affine(image, a);
  EXPECT_NEAR(y[1].flatten()[2].item<double>(), 2.0 * (2.0 - 2.25) / 4.5 - 1.0, 1e-5);
  EXPECT_NEAR(y[1].flatten()[9].item<double>(), 2.0 * (9.0 - 2.25) / 4.5 - 1.0, 1e-5);
  // 1st percentile of 0..9: position 0.09.
  a = normalisation_affine(image, {IntensityMode::kPercentile, 1.0, 100.0});
  EXPECT_NEAR(apply_affine(image, a)[1].flatten()[0].item<double>(), 2.0 * (0.0 - 0.09) / 8.91 - 1.0, 1e-5);
  // Zero mean and unit (population) variance per channel.
  const at::Tensor z = network_intensities(image, kMeanStd);
  for (int64_t c = 0; c < 2; ++c) {
    EXPECT_NEAR(z[c].mean().item<double>(), 0.0, 1e-6);
    EXPECT_NEAR(z[c].square().mean().item<double>(), 1.0, 1e-5);
  }
  // The reference's range: the image itself; one value: no division by zero.
  EXPECT_TRUE(at::equal(network_intensities(image, Normalisation{}), image));
  EXPECT_TRUE(at::isfinite(network_intensities(at::zeros({1, 4, 4}), kPercentile)).all().item<bool>());
  EXPECT_THROW((Normalisation{IntensityMode::kPercentile, 50.0, 50.0}.validate()), OptionError);
}

TEST(Normalisation, PredictionIsTheSameForADimAndABrightCopy) {
  // Percentile and mean/std models see an image and its brightened, contrast-stretched copy alike
  // (the network input is the same), in resize and in tile mode; the range model does not.
  at::manual_seed(4);
  UNet model(tiny());
  const Geometry g{60, output_size(tiny(), 60), false};
  Sample dim, bright;
  dim.image = dim_image(50, 70);
  bright.image = dim.image.add(1.0).mul(3.0).sub(0.9);  // [-0.9, 0.3]
  for (bool tiles : {false, true})
    for (const Normalisation& n : {kPercentile, kMeanStd, Normalisation{}}) {
      SCOPED_TRACE(n.describe() + (tiles ? ", tiles" : ", resize"));
      Predictor p(model, g, c10::Device(c10::kCPU), 1);
      p.use_normalisation(n);
      if (tiles) p.use_tiles(TileOptions{60});
      const auto out = p.predict({dim, bright});
      const double difference = (out[0] - out[1]).abs().max().item<double>();
      if (n.mode == IntensityMode::kRange) {
        EXPECT_GT(difference, 1e-4);
        continue;
      }
      EXPECT_LT(difference, 1e-4);
      // The statistics are the whole image's (not each tile's): as a plain predictor given the
      // image normalised beforehand.
      Predictor plain(model, g, c10::Device(c10::kCPU), 1);
      if (tiles) plain.use_tiles(TileOptions{60});
      Sample normalised;
      normalised.image = network_intensities(dim.image, n);
      EXPECT_TRUE(at::allclose(plain.predict({normalised})[0], out[0], 1e-5, 1e-6));
    }
}

TEST(Normalisation, AugmentationKeepsItsMeaningOnNormalisedImages) {
  // Training normalises each whole image first; the colour jitter then works on its intensities
  // and the result is normalised anew; the brightness shift leaves the outliers unclipped.
  const at::Tensor range = dim_image(44, 44);
  const at::Tensor affine = normalisation_affine(range, kPercentile);
  AugmentOptions o;
  o.flips = false;
  o.crop = 0.0;
  o.brightness = 0.0;
  o.elastic = false;
  o.color = true;
  o.normalisation = kPercentile;
  at::Tensor a = apply_affine(range, affine), b = range.clone(), mask_a = at::zeros({44, 44}, at::kLong), mask_b = mask_a.clone();
  std::mt19937_64 rng_a(7), rng_b(7);
  augment_sample(a, mask_a, 2, o, rng_a, nullptr, &affine);
  augment_sample(b, mask_b, 2, o, rng_b);
  EXPECT_FALSE(at::allclose(b, range, 1e-3, 1e-3));  // it did jitter
  const at::Tensor expected = network_intensities(b, kPercentile);
  EXPECT_TRUE(at::allclose(a, expected, 1e-4, 1e-4)) << (a - expected).abs().max().item<float>();
  o.color = false;
  o.brightness = 0.2;
  // Percentiles 1 and 80: a fifth of the pixels lie above 1, the brightest near 1.5.
  const at::Tensor affine_c = normalisation_affine(range, {IntensityMode::kPercentile, 1.0, 80.0});
  at::Tensor c = apply_affine(range, affine_c);
  const double top = c.max().item<double>();
  ASSERT_GT(top, 1.45);
  for (uint64_t seed = 0; seed < 4; ++seed) {
    at::Tensor x = c.clone(), m = at::zeros({44, 44}, at::kLong);
    std::mt19937_64 rng(seed);
    augment_sample(x, m, 2, o, rng, nullptr, &affine_c);  // as the loader passes a normalised sample
    EXPECT_GT(x.max().item<double>(), top - 0.2 - 1e-6);  // shifted by at most 0.2, not clipped at 1
    EXPECT_LE(x.max().item<double>(), top + 1e-6);
  }
}

TEST(Normalisation, ExportsAndTheEmbeddingApiRepeatIt) {
  TempDir dir;
  const std::string model = save_tiny(dir, kPercentile);
  EXPECT_TRUE(read_checkpoint_info(checkpoint_path(model)).normalisation == kPercentile);
  ASSERT_EQ(run_unet("export --model-dir " + model + " --output " + dir.file("m.pt")).exit_code, 0);
  const LoadedExport loaded = load_export(dir.file("m.pt"), c10::Device(c10::kCPU));
  EXPECT_TRUE(loaded.normalisation == kPercentile);
  EXPECT_NE(loaded.contract.find("percentiles 1 and 99.8"), std::string::npos) << loaded.contract;
  // The checkpoint and the export segment a dim 8-bit image and its stretched copy alike.
  Segmenter a = Segmenter::from_checkpoint(checkpoint_path(model)), b = Segmenter::from_export(dir.file("m.pt"));
  const at::Tensor dim = at::randint(10, 60, {1, 40, 50}, at::kByte);
  const at::Tensor bright = dim.to(at::kInt).sub(10).mul(5).to(at::kByte);  // 0 .. 245
  const at::Tensor pa = a.segment(dim).probabilities;
  EXPECT_TRUE(at::allclose(pa, b.segment(dim).probabilities, 1e-5, 1e-6));
  EXPECT_TRUE(at::allclose(pa, a.segment(bright).probabilities, 1e-4, 1e-5));
  if (bioimageio_available()) {  // ONNX: the contract in the file's metadata
    ASSERT_EQ(run_unet("export --model-dir " + model + " --format onnx --output " + dir.file("m.onnx")).exit_code, 0);
    EXPECT_NE(read_file(dir.file("m.onnx")).find("percentiles 1 and 99.8"), std::string::npos);
  }
}

TEST(Normalisation, BioimageioPackagesDeclareItAndPassBioimageioTest) {
  if (!bioimageio_available()) GTEST_SKIP() << "built without libzip or libonnx; skipping";
  const std::string python = unet::test::python_with("bioimageio.core, onnxruntime, torch");
  if (python.empty()) GTEST_SKIP() << "no UNET_TEST_PYTHON with bioimageio.core, onnxruntime and torch (scripts/run.sh test installs them); skipping";
  TempDir dir;
  at::manual_seed(6);
  // An 8-bit and a dim 16-bit sample (the operators' epsilon is in stored units).
  write_png(dir.file("dim.png"), at::randint(20, 90, {1, 100, 120}, at::kByte));
  write_png(dir.file("dim16.png"), at::randint(100, 1500, {1, 100, 120}, at::kInt));
  for (const Normalisation& n : {kPercentile, kMeanStd}) {
    SCOPED_TRACE(n.describe());
    const bool deep = n.mode == IntensityMode::kMeanStd;
    TempDir run;
    const std::string model = save_tiny(run, n);
    auto r = run_unet("export --model-dir " + model + " --format bioimageio --output " + run.file("p.zip") + " --sample " +
                      dir.file(deep ? "dim16.png" : "dim.png"));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const std::string test = "'" + python + "' -m bioimageio.core test " + run.file("p.zip") + " > " + run.file("log") + " 2>&1";
    EXPECT_EQ(std::system(test.c_str()), 0) << read_file(run.file("log"));
    // The rdf names the operator; the test output is unet's prediction of the normalised input.
    const std::string extract = "'" + python + "' -c \"import zipfile, io, numpy as np; z = zipfile.ZipFile('" +
        run.file("p.zip") + "'); open('" + run.file("rdf") + "', 'wb').write(z.read('rdf.yaml')); "
        "np.load(io.BytesIO(z.read('test_input.npy'))).astype('<f4').tofile('" + run.file("x.f32") + "'); "
        "np.load(io.BytesIO(z.read('test_output.npy'))).astype('<f4').tofile('" + run.file("p.f32") + "')\"";
    ASSERT_EQ(std::system(extract.c_str()), 0);
    EXPECT_NE(read_file(run.file("rdf")).find(n.mode == IntensityMode::kPercentile ? "scale_range" : "zero_mean_unit_variance"),
              std::string::npos);
    const at::Tensor x = read_floats(run.file("x.f32"), {1, 1, 100, 120});
    const at::Tensor p = read_floats(run.file("p.f32"), {1, 2, 100 - 40, 120 - 40});
    const CheckpointInfo info = read_checkpoint_info(checkpoint_path(model));
    UNet native = load_model(checkpoint_path(model), info);
    native->eval();
    c10::InferenceMode guard;
    const at::Tensor input = network_intensities((x / (deep ? 65535.0 : 255.0) * 2 - 1)[0], n).unsqueeze(0);
    const at::Tensor expected = at::softmax(native->forward(input), 1);
    EXPECT_TRUE(at::allclose(p, expected, 1e-5, 1e-6)) << (p - expected).abs().max().item<float>();
  }
}

TEST(Normalisation, TrainRecordsItAndResumeKeepsIt) {
  TempDir dir;
  const std::string base = "train --synthetic --synthetic-size 64 --synthetic-count 6 --quiet --depth 2 --filters 4 --input-size 60 --batch-size 2 --log-every 1 ";
  auto r = run_unet(base + "--max-steps 2 --model-dir " + dir.file("m") + " --percentiles 2,99");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE((read_checkpoint_info(checkpoint_path(dir.file("m"))).normalisation ==
               Normalisation{IntensityMode::kPercentile, 2.0, 99.0}));
  r = run_unet(base + "--max-steps 3 --model-dir " + dir.file("m") + " --resume --normalize meanstd");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("contradicts the checkpoint"), std::string::npos) << r.err;
  r = run_unet(base + "--max-steps 3 --model-dir " + dir.file("m") + " --resume --percentiles 1,99.8");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("trained with --normalize percentile 2-99"), std::string::npos) << r.err;
  r = run_unet(base + "--max-steps 3 --model-dir " + dir.file("m") + " --resume --percentiles 2,99");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(read_checkpoint_info(checkpoint_path(dir.file("m"))).step, 3);
  EXPECT_TRUE((read_checkpoint_info(checkpoint_path(dir.file("m"))).normalisation ==
               Normalisation{IntensityMode::kPercentile, 2.0, 99.0}));
  for (const std::string& bad : {"--percentiles 5", "--percentiles 60,40", "--normalize meanstd --percentiles 1,99",
                                 "--normalize minmax"}) {
    r = run_unet(base + "--max-steps 1 --model-dir " + dir.file("bad") + " " + bad);
    EXPECT_EQ(r.exit_code, 1) << bad;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << bad << ": " << r.err;
    EXPECT_FALSE(std::filesystem::exists(checkpoint_path(dir.file("bad")))) << bad;
  }
}

TEST(ObjectArea, TrainingRecordsItsObjectsAndPredictionDropsSpecks) {
  TempDir dir;
  auto r = run_unet("train --synthetic --synthetic-kind nuclei --synthetic-size 64 --synthetic-count 4 --quiet --depth 2 "
                    "--filters 4 --classes 3 --input-size 60 --batch-size 2 --max-steps 2 --model-dir " + dir.file("m"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const int64_t area = read_checkpoint_info(checkpoint_path(dir.file("m"))).objects.median_area;
  EXPECT_GT(area, 20);  // the synthetic nuclei's median, tens of pixels
  EXPECT_LT(area, 64 * 64);
  std::filesystem::create_directories(dir.file("in"));
  write_png(dir.file("in/a.png"), at::randint(0, 256, {1, 64, 64}, at::kByte));
  const int64_t smallest = std::llround(kSmallObjectFraction * static_cast<double>(area));
  for (const std::string& setting : {"auto", "0", "5000"}) {
    SCOPED_TRACE(setting);
    const std::string out = dir.file("out-" + setting);
    r = run_unet("predict --model-dir " + dir.file("m") + " --input " + dir.file("in") + " --output-dir " + out +
                 " --instances --no-overlays --quiet --min-object-area " + setting);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const at::Tensor labels = read_tiff(out + "/a_instances.tif").at(0).pixels.to(at::kLong).flatten();
    const at::Tensor areas = at::bincount(labels).slice(0, 1);
    if (setting == "auto" && areas.numel() > 0) EXPECT_GE(areas.min().item<int64_t>(), smallest);
    if (setting == "5000") EXPECT_EQ(labels.max().item<int64_t>(), 0);
  }
  r = run_unet("evaluate --synthetic --synthetic-kind nuclei --model-dir " + dir.file("m") + " --min-object-area -3");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("min-object-area"), std::string::npos) << r.err;
}
