// Object size (`train --object-diameter`, `predict/evaluate --object-diameter`): the median
// diameter measured, images and labels resized without drift, training samples rescaled to one
// object size, predictions rescaled and mapped back, objects cut at the model's size, and the
// diameter recorded by checkpoints and exports and refused where it cannot apply.
#include "test_support.h"

#include "unet/data/components.h"
#include "unet/data/dataset.h"
#include "unet/data/image_io.h"
#include "unet/data/object_scale.h"
#include "unet/eval/instances.h"
#include "unet/infer/export.h"
#include "unet/infer/output.h"
#include "unet/infer/predictor.h"
#include "unet/infer/segmenter.h"
#include "unet/model/checkpoint.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <nlohmann/json.hpp>

#include <array>
#include <cmath>
#include <filesystem>

using unet::test::ellipses;
using unet::test::expect_one_line_error;
using unet::test::run_unet;
using unet::test::TempDir;
namespace fs = std::filesystem;

namespace unet {
namespace {

TEST(ObjectScale, MedianDiameterIsTheDiscOfTheMedianArea) {
  at::Tensor labels = at::zeros({60, 60}, at::kLong);
  labels.slice(0, 0, 10).slice(1, 0, 10).fill_(1);    // 100 pixels
  labels.slice(0, 20, 40).slice(1, 0, 20).fill_(2);   // 400
  labels.slice(0, 30, 60).slice(1, 30, 60).fill_(7);  // 900 (labels need not be consecutive)
  EXPECT_NEAR(median_object_diameter(labels), 2 * std::sqrt(400 / M_PI), 1e-9);
  labels.masked_fill_(labels == 2, 0);  // two objects: the mean of the middle two areas, as numpy's median
  EXPECT_NEAR(median_object_diameter(labels), 2 * std::sqrt(500 / M_PI), 1e-9);
  EXPECT_EQ(median_object_diameter(at::zeros({8, 8}, at::kLong)), 0.0);
}

TEST(ObjectScale, LabelsResizeByTheNearestPixelWithHalfPixelCentres) {
  const at::Tensor small = at::tensor({1, 2, 3, 4}, at::kLong).view({2, 2});
  const at::Tensor big = resize_labels(small, 4, 6);
  EXPECT_TRUE(at::equal(big, small.repeat_interleave(2, 0).repeat_interleave(3, 1)));
  // Shrinking 4 -> 2 picks the pixels whose centres are nearest the output's: 1 and 3, not 0 and 2.
  const at::Tensor ramp = at::arange(16, at::kLong).view({4, 4});
  EXPECT_TRUE(at::equal(resize_labels(ramp, 2, 2), at::tensor({5, 7, 13, 15}, at::kLong).view({2, 2})));
}

TEST(ObjectScale, ShrunkImagesAreSmoothedNotSampled) {
  // One bright column in four: sampling every fourth pair of columns would miss it (all 0); the
  // image's mean brightness is a quarter.
  at::Tensor image = at::zeros({1, 16, 16});
  image.select(2, 0).fill_(1);
  image.select(2, 4).fill_(1);
  image.select(2, 8).fill_(1);
  image.select(2, 12).fill_(1);
  const at::Tensor small = resize_image(image, 4, 4);
  ASSERT_EQ(small.sizes(), (at::IntArrayRef{1, 4, 4}));
  EXPECT_NEAR(small.mean().item<double>(), 0.25, 0.02);
  EXPECT_LT((small - 0.25).abs().max().item<double>(), 0.1);
  const at::Tensor flat = at::full({2, 5, 7}, 0.3);
  EXPECT_TRUE(at::allclose(resize_image(flat, 12, 3), at::full({2, 12, 3}, 0.3)));
}

TEST(ObjectScale, SamplesAreRescaledToTheDiameterWithTheirClassesDerivedAgain) {
  InstanceTargets targets;
  targets.scheme = ClassScheme::kInteriorBoundary;
  Sample s;
  s.instances = ellipses(50, 60, {{12, 12, 8, 8, 1}, {30, 40, 8, 8, 2}, {38, 14, 8, 8, 3}});
  s.image = (s.instances > 0).to(at::kFloat).unsqueeze(0) * 2 - 1;
  s.source = "discs.png";
  attach_instances(s, s.instances, 3, targets);
  const double own = median_object_diameter(s.instances);
  const double scale = rescale_to_object_diameter(s, 40.0, 3, targets);
  EXPECT_NEAR(scale, 40.0 / own, 1e-9);
  EXPECT_EQ(s.image.sizes(), (at::IntArrayRef{1, scaled_side(50, scale), scaled_side(60, scale)}));
  EXPECT_EQ(s.instances.sizes(), s.image.sizes().slice(1));
  EXPECT_NEAR(median_object_diameter(s.instances), 40.0, 1.0);
  EXPECT_EQ(s.instances.max().item<int64_t>(), 3);
  // The classes are those of the resized labels (a boundary of the configured width at the new
  // size), not the old classes stretched.
  at::Tensor expected = instance_targets(s.instances, 3, targets);
  EXPECT_TRUE(at::equal(s.mask, expected));
  // The image follows its labels: bright where the objects are.
  EXPECT_GT(s.image[0].index({s.instances > 0}).mean().item<double>(), 0.9);

  Sample empty;
  empty.instances = at::zeros({20, 30}, at::kLong);
  empty.image = at::zeros({1, 20, 30});
  EXPECT_EQ(rescale_to_object_diameter(empty, 40.0, 3, targets), 1.0);
  EXPECT_EQ(empty.image.sizes(), (at::IntArrayRef{1, 20, 30}));
  // A speck as the median object would blow the image up past any sense: refused, naming it.
  Sample specks;
  specks.instances = at::zeros({20, 30}, at::kLong);
  specks.instances[5][5] = 1;
  specks.image = at::zeros({1, 20, 30});
  specks.source = "specks.png";
  try {
    rescale_to_object_diameter(specks, 40.0, 3, targets);
    ADD_FAILURE() << "a 35x rescale was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("specks.png: its median object is 1.13 pixels across"), std::string::npos) << e.what();
  }
  Sample classes_only;
  classes_only.image = at::zeros({1, 20, 30});
  classes_only.mask = at::zeros({20, 30}, at::kLong);
  classes_only.source = "plain.png";
  EXPECT_THROW(rescale_to_object_diameter(classes_only, 40.0, 3, targets), Error);
}

TEST(ObjectScale, ObjectsAreCutAtTheModelsSizeAndMappedBack) {
  // A 5 x 6 object (30 pixels) in one-hot maps: a model that drops objects under 100 of its
  // pixels drops it at scale 1 and keeps it at scale 2 (120 pixels there); the labels come back
  // at the maps' size, the object where it was.
  at::Tensor object = at::zeros({40, 40}, at::kLong);
  object.slice(0, 10, 15).slice(1, 20, 26).fill_(1);
  const at::Tensor maps = one_hot_maps(object, 2);
  ObjectRule rule;
  rule.min_area = 100;
  EXPECT_EQ(objects_of(maps, ClassScheme::kPlain, InstanceMethod::kComponents, rule).max().item<int64_t>(), 0);
  rule.scale = 2.0;
  const at::Tensor found = objects_of(maps, ClassScheme::kPlain, InstanceMethod::kComponents, rule);
  ASSERT_EQ(found.sizes(), object.sizes());
  EXPECT_TRUE(at::equal(found, object)) << "the object was not mapped back where it was";
  // Two touching discs part at any scale the same way as at their own.
  const at::Tensor discs = ellipses(48, 64, {{24, 20, 12, 12, 1}, {24, 43, 12, 12, 2}});
  rule = ObjectRule{};
  rule.scale = 0.5;
  const at::Tensor parted = objects_of(one_hot_maps(instance_targets(discs, 3, InstanceTargets{}), 3),
                                       ClassScheme::kInteriorBoundary, InstanceMethod::kComponents, rule);
  EXPECT_EQ(parted.max().item<int64_t>(), 2);
}

/// Two squares one pixel apart (labels 1 and 2) as predicted at scale 2 (`at_two`, `scaled`: one-hot
/// maps 40x40) and those maps halved to the image's 20x20 (`maps`), where the gap is gone.
struct TwoSquares {
  at::Tensor at_two = at::zeros({40, 40}, at::kLong);
  at::Tensor scaled, maps;
  TwoSquares() {
    at_two.slice(0, 10, 30).slice(1, 6, 19).fill_(1);
    at_two.slice(0, 10, 30).slice(1, 20, 33).fill_(2);
    scaled = one_hot_maps((at_two > 0).to(at::kLong), 2);
    maps = resize_image(scaled, 20, 20);
  }
};

TEST(ObjectScale, ObjectsAreCutFromTheMapsAsPredictedAtTheModelsSize) {
  // Two squares one pixel apart in maps predicted at scale 2: halved to the image's size the gap
  // is gone, so maps resized there and back join them; cut from the maps as predicted they stay two,
  // and come back at the image's size.
  const TwoSquares sq;
  const at::Tensor &at_two = sq.at_two, &scaled = sq.scaled, &maps = sq.maps;
  ObjectRule rule;
  rule.scale = 2.0;
  EXPECT_EQ(objects_of(maps, ClassScheme::kPlain, InstanceMethod::kComponents, rule).max().item<int64_t>(), 1);
  const at::Tensor found = objects_at_scale(scaled, maps, ClassScheme::kPlain, InstanceMethod::kComponents, rule);
  ASSERT_EQ(found.sizes(), (at::IntArrayRef{20, 20}));
  EXPECT_EQ(found.max().item<int64_t>(), 2);
  EXPECT_TRUE(at::equal(found, resize_labels(at_two, 20, 20)));
  // Without the maps as predicted, `objects_at_scale` resizes as `objects_of` does.
  EXPECT_TRUE(at::equal(objects_at_scale(at::Tensor(), maps, ClassScheme::kPlain, InstanceMethod::kComponents, rule),
                        objects_of(maps, ClassScheme::kPlain, InstanceMethod::kComponents, rule)));
}

TEST(ObjectScale, PredictWritesTheObjectsCutFromTheMapsAsPredicted) {
  // `predict --instances`' writer: the same two squares, with and without the maps at scale 2.
  const TwoSquares sq;
  const at::Tensor &scaled = sq.scaled, &maps = sq.maps;
  Sample s;
  s.image = at::zeros({1, 20, 20});
  s.source = "a.tif";
  PredictionFiles files;
  files.instances = true;
  files.object_scales = {2.0};
  const TempDir dir;
  const auto objects_written = [&](const std::string& sub) {
    write_predictions(dir.file(sub), {s}, {maps}, files);
    return read_tiff(dir.file(sub + "/test-instances.tif")).front().pixels.to(at::kLong).max().item<int64_t>();
  };
  EXPECT_EQ(objects_written("resized"), 1);
  files.scaled_probabilities = {scaled};
  EXPECT_EQ(objects_written("as-predicted"), 2);
}

TEST(ObjectScale, PredictorRescalesTheImageAndMapsItsProbabilitiesBack) {
  at::manual_seed(3);
  UNet net(test::tiny_options());
  net->eval();
  Sample s;
  s.image = at::rand({1, 24, 30}) * 2 - 1;
  TileOptions tiles;
  tiles.input = 60;
  const auto predictor = [&](double scale) {
    Predictor p(net, geometry_of(net->options(), 60), c10::Device(c10::kCPU), 1, /*channels_last=*/false);
    p.use_tiles(tiles);
    p.use_object_scale(scale);
    return p;
  };
  const at::Tensor got = predictor(1.5).predict({s})[0];
  ASSERT_EQ(got.sizes(), (at::IntArrayRef{2, 24, 30}));
  Sample big = s;
  big.image = resize_image(s.image, 36, 45);
  const at::Tensor expected = resize_image(predictor(1.0).predict({big})[0], 24, 30);
  EXPECT_TRUE(at::allclose(got, expected, 1e-5, 1e-6)) << (got - expected).abs().max().item<double>();
  EXPECT_GT((got - predictor(1.0).predict({s})[0]).abs().max().item<double>(), 1e-4) << "the scale changed nothing";
  std::vector<double> scales;
  std::vector<at::Tensor> scaled;
  predictor(1.5).predict({s}, &scales, &scaled);
  EXPECT_EQ(scales, std::vector<double>{1.5});  // the scale its objects are cut at
  ASSERT_EQ(scaled.size(), 1u);  // and the probabilities as predicted there, to cut them from
  ASSERT_EQ(scaled[0].sizes(), (at::IntArrayRef{2, 36, 45}));
  EXPECT_TRUE(at::allclose(scaled[0], predictor(1.0).predict({big})[0], 1e-5, 1e-6));
  predictor(1.0).predict({s}, &scales, &scaled);
  EXPECT_FALSE(scaled.at(0).defined());  // at scale 1 the probabilities themselves
  EXPECT_THROW(predictor(0.0), OptionError);
}

/// A "model" that sees bright pixels as objects (two classes, valid padding as `tiny_options`: a
/// tile of 60 gives the middle 20), so that the objects it cuts have the image's sizes exactly.
LoadedExport threshold_model() {
  LoadedExport m;
  m.options = test::tiny_options();
  m.input_size = 60;
  m.forward = [](const at::Tensor& x) {
    const at::Tensor middle = x.slice(2, 20, 40).slice(3, 20, 40) * 20;
    return at::cat({-middle, middle}, 1);
  };
  return m;
}

TEST(ObjectScale, MeasuredScaleBringsTheImagesObjectsToTheModelsDiameter) {
  // Discs 20 pixels across: a model trained at 10 wants them at half size; measured from a
  // quarter (5 pixels across there), one more pass gets there.
  std::vector<std::array<double, 5>> discs;
  for (int k = 0; k < 6; ++k) discs.push_back({20.0 + 30 * (k / 3), 20.0 + 30 * (k % 3), 10, 10, k + 1.0});
  const at::Tensor truth = ellipses(80, 90, discs);
  Sample s;
  s.image = (truth > 0).to(at::kFloat).unsqueeze(0) * 2 - 1;
  Predictor p(threshold_model(), c10::Device(c10::kCPU), 1);
  TileOptions tiles;
  tiles.input = 60;
  p.use_tiles(tiles);
  p.measure_object_scale(10.0);
  std::vector<double> scales;
  const at::Tensor probs = p.predict({s}, &scales)[0];
  ASSERT_EQ(scales.size(), 1u);
  EXPECT_NEAR(scales[0], 0.5, 0.05);
  ASSERT_EQ(probs.sizes(), (at::IntArrayRef{2, 80, 90}));
  ObjectRule rule = p.object_rule();
  rule.scale = scales[0];
  const at::Tensor found = objects_of(probs, ClassScheme::kPlain, InstanceMethod::kComponents, rule);
  EXPECT_EQ(found.max().item<int64_t>(), 6);
  EXPECT_NEAR(median_object_diameter(found), median_object_diameter(truth), 1.5);
  // An image without objects is looked at again at its own size, and stays there.
  Sample dark;
  dark.image = at::full({1, 40, 40}, -1.0);
  p.predict({dark}, &scales);
  EXPECT_EQ(scales[0], 1.0);
  // Objects already at the model's size, under its smallest kept area at the first scale (a
  // sixteenth of their area there, a tenth kept): found at their own size, and all kept.
  Predictor same(threshold_model(), c10::Device(c10::kCPU), 1);
  same.use_tiles(tiles);
  same.use_object_rule(object_rule(ObjectRecord{std::llround(M_PI * 10 * 10)}));
  same.measure_object_scale(20.0);
  const at::Tensor kept = same.predict({s}, &scales)[0];
  EXPECT_NEAR(scales[0], 1.0, 0.1);
  ObjectRule same_rule = same.object_rule();
  same_rule.scale = scales[0];
  EXPECT_EQ(objects_of(kept, ClassScheme::kPlain, InstanceMethod::kComponents, same_rule).max().item<int64_t>(), 6);
  // Objects far larger than the model's are measured down to the smallest scale, not beyond.
  p.measure_object_scale(2.0);
  p.predict({s}, &scales);
  EXPECT_EQ(scales[0], kSmallestObjectScale);
}

/// A "model" that shatters objects larger than its own, as trained networks do: each bright piece
/// of its input more than 1.3 times `diameter` across (by its area) is cut in two by a background
/// column through its middle. Valid padding as `threshold_model` (20 pixels each side).
LoadedExport shattering_model(double diameter) {
  LoadedExport m = threshold_model();
  m.forward = [diameter](const at::Tensor& x) {
    at::Tensor bright = x > 0;  // [B, 1, H, W]
    const int64_t h = x.size(2), w = x.size(3);
    const at::Tensor columns = at::arange(w).expand({h, w});
    for (int64_t b = 0; b < x.size(0); ++b) {
      at::Tensor plane = bright[b][0];
      const at::Tensor pieces = connected_components(plane);
      const at::Tensor areas = at::bincount(pieces.reshape({-1}));
      for (int64_t k = 1; k < areas.numel(); ++k) {
        if (2.0 * std::sqrt(areas[k].item<double>() / M_PI) <= 1.3 * diameter) continue;
        const at::Tensor piece = pieces == k;
        const int64_t middle = std::lround(columns.masked_select(piece).to(at::kDouble).mean().item<double>());
        plane.masked_fill_(piece & (columns == middle), false);
      }
    }
    const at::Tensor kept = (bright.slice(2, 20, h - 20).slice(3, 20, w - 20).to(at::kFloat) * 2 - 1) * 20;
    return at::cat({-kept, kept}, 1);
  };
  return m;
}

TEST(ObjectScale, MeasuredScaleIsConfirmedFromBelow) {
  // Discs 120 pixels across for a model of 20: their scale is 1/6. From the first scale (0.25)
  // they are 30 pixels across, shattered into halves 21 pixels across (by area), within the
  // tolerance of 20: the measure alone would stop there. At 0.7 of it they are 21 pixels across,
  // whole, and imply 1/6, confirmed at 0.7 of that (14 pixels, whole).
  std::vector<std::array<double, 5>> discs;
  for (int k = 0; k < 4; ++k) discs.push_back({75.0 + 150 * (k / 2), 75.0 + 150 * (k % 2), 60, 60, k + 1.0});
  Sample s;
  s.image = (ellipses(300, 300, discs) > 0).to(at::kFloat).unsqueeze(0) * 2 - 1;
  Predictor p(shattering_model(20.0), c10::Device(c10::kCPU), 1);
  TileOptions tiles;
  tiles.input = 140;  // the image in one tile at every scale measured
  p.use_tiles(tiles);
  p.measure_object_scale(20.0);
  std::vector<double> scales;
  std::vector<at::Tensor> scaled;
  p.predict({s}, &scales, &scaled);
  ASSERT_EQ(scales.size(), 1u);
  EXPECT_NEAR(scales[0], 1.0 / 6, 0.01);
  ObjectRule rule = p.object_rule();
  const at::Tensor found = cut_objects(scaled.at(0), ClassScheme::kPlain, InstanceMethod::kComponents, rule);
  EXPECT_EQ(found.max().item<int64_t>(), 4);  // whole discs, not halves
}

TEST(ObjectScale, DiameterIsResolvedForTheModelAndTheInputMode) {
  constexpr double kAuto = InferenceOptions::kMeasuredObjectDiameter;
  EXPECT_EQ(InferenceOptions().object_diameter, kAuto);  // the default
  EXPECT_EQ(resolved_object_diameter(kAuto, 30, InputMode::kTile), kAuto);
  EXPECT_EQ(resolved_object_diameter(kAuto, 0, InputMode::kTile), 0.0);     // a model without a size
  EXPECT_EQ(resolved_object_diameter(kAuto, 30, InputMode::kResize), 0.0);  // whole images resized
  EXPECT_EQ(resolved_object_diameter(60, 30, InputMode::kTile), 60.0);
  const auto fresh = [] { return Predictor(threshold_model(), c10::Device(c10::kCPU), 1); };
  Predictor given = fresh();
  use_object_diameter(given, 60, 30, InputMode::kTile);
  EXPECT_DOUBLE_EQ(given.object_scale(), 0.5);  // the model's diameter over the images'
  EXPECT_FALSE(given.measures_object_scale());
  Predictor measured = fresh();
  use_object_diameter(measured, kAuto, 30, InputMode::kTile);
  EXPECT_TRUE(measured.measures_object_scale());
  Predictor as_they_are = fresh();
  use_object_diameter(as_they_are, kAuto, 0, InputMode::kTile);
  EXPECT_FALSE(as_they_are.measures_object_scale());
  EXPECT_EQ(as_they_are.object_scale(), 1.0);
  Predictor refused = fresh();
  EXPECT_THROW(use_object_diameter(refused, 60, 0, InputMode::kTile), OptionError);  // no size to rescale to
  EXPECT_THROW(use_object_diameter(refused, 60, 30, InputMode::kResize), OptionError);
  EXPECT_THROW(require_tiles_for_object_scale(InputMode::kResize, true), OptionError);
  EXPECT_NO_THROW(require_tiles_for_object_scale(InputMode::kResize, false));
  InferenceOptions options;
  options.object_diameter = 1;
  EXPECT_THROW(options.validate(), OptionError);
}

const std::string kTiny = " --depth 2 --filters 4 --input-size 60 --threads 1 --batch-size 2 --quiet ";

TEST(ObjectScale, TrainRecordsTheDiameterAndPredictExportAndErrorsFollowIt) {
  TempDir dir;
  const std::string data = dir.file("data"), model = dir.file("m"), plain = dir.file("plain");
  ASSERT_EQ(run_unet("demo --max-steps 0 --synthetic-kind nuclei --synthetic-size 64 --synthetic-count 6 --write-data " + data).exit_code, 0);
  auto r = run_unet("train" + kTiny + "--data-dir " + data + " --mask-encoding instances --classes 3 --fold none --max-steps 2 "
                    "--object-diameter 20 --model-dir " + model);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const CheckpointInfo info = read_checkpoint_info(checkpoint_path(model));
  EXPECT_EQ(info.object_diameter, 20.0);
  EXPECT_EQ(info.input_mode, InputMode::kTile);  // implied
  // Predict at another object size: outputs at the images' own size.
  const std::string image = unet::image_files(data + "/test").front();
  r = run_unet("predict --threads 1 --instances --object-diameter 10 --input " + image + " --model-dir " + model +
               " --output-dir " + dir.file("out"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const RawImage in = read_image_file(image).front();
  const RawImage labels = read_tiff(dir.file("out/test-instances.tif")).front();
  EXPECT_EQ(labels.height(), in.height());
  EXPECT_EQ(labels.width(), in.width());
  // Measured per image (auto, the default for such a model): said per image, outputs at the image's size.
  r = run_unet("predict --threads 1 --instances --input " + data + "/test --model-dir " + model +
               " --output-dir " + dir.file("auto"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find(fs::path(image).filename().string() + ": predicted at scale "), std::string::npos) << r.out;
  EXPECT_EQ(read_tiff(dir.file("auto/" + fs::path(image).stem().string() + "_instances.tif")).front().height(), in.height());
  // evaluate scores the objects at each image's measured size and records how they were cut.
  r = run_unet("evaluate --threads 1 --data-dir " + data + " --fold none --object-diameter auto --model-dir " + model);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto results = nlohmann::json::parse(test::read_file(model + "/eval_results.json"));
  EXPECT_EQ(results["object_rule"]["object_diameter"], "auto");
  EXPECT_EQ(results["object_rule"]["model_object_diameter"], 20.0);
  EXPECT_EQ(results["object_rule"]["min_area"], smallest_object_area(info.objects.median_area));
  // Each image's measured scale, by name, and their range said in one line.
  ASSERT_TRUE(results["object_rule"].contains("image_scales")) << r.out;
  const auto& scales = results["object_rule"]["image_scales"];
  EXPECT_EQ(scales.size(), results["evaluated_images"].size());
  EXPECT_NE(r.out.find("object size: images rescaled by "), std::string::npos) << r.out;
  for (const auto& name : results["evaluated_images"]) EXPECT_GT(scales.at(name.get<std::string>()).get<double>(), 0.0);
  // The export's contract carries the diameter, and prediction from it rescales as the checkpoint's.
  r = run_unet("export --model-dir " + model + " --output " + dir.file("m.pt"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(load_export(dir.file("m.pt"), c10::Device(c10::kCPU)).object_diameter, 20.0);
  // The embedding API's short constructors measure each image's size as predict's default does
  // (they took every image at its own size): the probabilities of `load` with predict's defaults,
  // not those at the model's scale.
  {
    const RawImage raw = read_image_file(image).front();
    const at::Tensor measured = Segmenter::load(model, InferenceOptions{}, RunContext{}).segment(raw, false).probabilities;
    InferenceOptions unscaled;
    unscaled.object_diameter = 20;  // the model's own: scale 1
    const at::Tensor at_one = Segmenter::load(model, unscaled, RunContext{}).segment(raw, false).probabilities;
    ASSERT_EQ(measured.sizes(), at_one.sizes());
    EXPECT_FALSE(at::allclose(measured, at_one, 1e-4, 1e-4)) << "the image's measured scale is 1: no check";
    for (const bool exported : {false, true}) {
      const Segmenter s = exported ? Segmenter::from_export(dir.file("m.pt")) : Segmenter::from_checkpoint(checkpoint_path(model));
      EXPECT_TRUE(at::allclose(s.segment(raw, false).probabilities, measured, 1e-5, 1e-6)) << (exported ? "export" : "checkpoint");
    }
    // An export loaded with a stated size predicts at it (no measuring left from the export's default),
    // and in resize mode takes the image as it is.
    EXPECT_TRUE(at::allclose(Segmenter::load(dir.file("m.pt"), unscaled, RunContext{}).segment(raw, false).probabilities, at_one, 1e-5, 1e-6));
    InferenceOptions resize;
    resize.input_mode = InputMode::kResize;
    EXPECT_NO_THROW(Segmenter::load(dir.file("m.pt"), resize, RunContext{}).segment(raw, false));
  }
  // A model trained at the images' own sizes has no object size to rescale to: one line, nothing written.
  r = run_unet("train" + kTiny + "--data-dir " + data + " --mask-encoding instances --classes 3 --fold none --max-steps 1 "
               "--model-dir " + plain);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = run_unet("predict --threads 1 --object-diameter 10 --input " + image + " --model-dir " + plain + " --output-dir " +
               dir.file("out2"));
  expect_one_line_error(r, "--object-diameter rescales images to the object size a model was trained at");
  EXPECT_FALSE(fs::exists(dir.file("out2")));
  r = run_unet("predict --threads 1 --object-diameter 10 --input-mode resize --input " + image + " --model-dir " + model +
               " --output-dir " + dir.file("out3"));
  expect_one_line_error(r, "use --input-mode tile");
  EXPECT_FALSE(fs::exists(dir.file("out3")));
  // Masks of classes have no objects to measure.
  r = run_unet("train" + kTiny + "--synthetic --max-steps 1 --object-diameter 20 --model-dir " + dir.file("em"));
  expect_one_line_error(r, "--object-diameter needs instance labels");
}

}  // namespace
}  // namespace unet
