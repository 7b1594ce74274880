// Direction classes from instance labels: each object's centre and the sector of the way to it
// (against a brute-force definition), the objects followed back to their centres (touching discs
// split, an elongated and a bent nucleus whole, objects cut by the image's edge whole, from one-hot
// and from blurred maps), training tiles whose directions are derived after the flips (a flipped
// tile's directions still lead to its objects' centres), the views of test-time augmentation turned
// back, and the commands end to end with
// `--instance-targets directions`.
#include "test_support.h"

#include "unet/data/instance_targets.h"
#include "unet/data/loader.h"
#include "unet/data/preprocess.h"
#include "unet/data/synthetic.h"
#include "unet/eval/instances.h"
#include "unet/eval/objects.h"
#include "unet/infer/predictor.h"
#include "unet/infer/tiled.h"
#include "unet/model/checkpoint.h"
#include "unet/model/unet.h"

#include <ATen/ATen.h>

#include <array>
#include <cmath>
#include <limits>

using namespace unet;

namespace {

using unet::test::blurred;
using unet::test::ellipses;
using unet::test::rim_pixels;

/// The definition, by brute force: the centre is the object's pixel nearest its centroid (the
/// first in raster order among equals); the class is 1 within 1.5 pixels of it, else 2 + the
/// sector of the angle to it, measured in degrees counter-clockwise from +x with y up, sectors
/// 45 degrees wide centred on 0, 45, ..., 315.
at::Tensor brute_direction_classes(const at::Tensor& labels) {
  const int64_t h = labels.size(0), w = labels.size(1);
  const auto l = labels.accessor<int64_t, 2>();
  at::Tensor out = at::zeros({h, w}, at::kLong);
  for (int64_t k = 1; k <= labels.max().item<int64_t>(); ++k) {
    double sy = 0, sx = 0, n = 0;
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x)
        if (l[y][x] == k) sy += y, sx += x, n += 1;
    if (n == 0) continue;
    int64_t cy = -1, cx = -1;
    double best = std::numeric_limits<double>::infinity();
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x)
        if (l[y][x] == k && std::hypot(y - sy / n, x - sx / n) < best) best = std::hypot(y - sy / n, x - sx / n), cy = y, cx = x;
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x) {
        if (l[y][x] != k) continue;
        if (std::hypot(double(cy - y), double(cx - x)) <= 1.5) {
          out[y][x] = 1;
          continue;
        }
        double degrees = std::atan2(double(y - cy), double(cx - x)) * 180.0 / M_PI;  // y up: -(cy - y)
        if (degrees < 0) degrees += 360.0;
        out[y][x] = 2 + static_cast<int64_t>(std::floor((degrees + 22.5) / 45.0)) % 8;
      }
  }
  return out;
}

at::Tensor decoded(const at::Tensor& labels) {
  return objects_of(one_hot_maps(direction_classes(labels), kDirectionClasses), ClassScheme::kDirections);
}

}  // namespace

TEST(DirectionTargets, ClassesPointToEachObjectsCentre) {
  const at::Tensor labels = ellipses(30, 40, {{{14, 12, 8, 8, 1}}, {{14, 30, 4, 9, 2}}, {{3, 36, 3, 3, 3}}});
  const at::Tensor classes = direction_classes(labels);
  EXPECT_TRUE(at::equal(classes, brute_direction_classes(labels)));
  EXPECT_TRUE(at::equal(classes == 0, labels == 0));
  // The disc's centre, and the way to it from four sides: east from its left, north from below,
  // west from its right, south from above, south-east from its upper left.
  const at::Tensor centres = object_centres(labels);
  EXPECT_EQ(centres[1][0].item<int64_t>(), 14);
  EXPECT_EQ(centres[1][1].item<int64_t>(), 12);
  EXPECT_EQ(classes[14][12].item<int64_t>(), 1);
  EXPECT_EQ(classes[14][5].item<int64_t>(), 2);   // east
  EXPECT_EQ(classes[20][12].item<int64_t>(), 4);  // north
  EXPECT_EQ(classes[14][19].item<int64_t>(), 6);  // west
  EXPECT_EQ(classes[8][12].item<int64_t>(), 8);   // south
  EXPECT_EQ(classes[9][7].item<int64_t>(), 9);    // south-east
  EXPECT_EQ(centres[0][0].item<int64_t>(), -1);   // the background has none
  // Random touching discs of every size, against the definition.
  std::mt19937_64 rng(11);
  for (int trial = 0; trial < 4; ++trial) {
    std::vector<std::array<double, 5>> list;
    for (int k = 1; k <= 7; ++k) {
      const double r = 1.0 + double(rng() % 80) / 10.0;
      list.push_back({double(rng() % 25), double(rng() % 33), r, r * (0.6 + double(rng() % 9) / 10.0), double(k)});
    }
    const at::Tensor random = ellipses(25, 33, list);
    EXPECT_TRUE(at::equal(direction_classes(random), brute_direction_classes(random))) << "trial " << trial;
  }
  EXPECT_EQ(direction_classes(at::zeros({0, 4}, at::kLong)).numel(), 0);
}

TEST(DirectionTargets, FlippedLabelsHaveMirroredDirections) {
  // Mirroring left-right turns east into west and north-east into north-west (sector k -> 4 - k);
  // what the loader relies on when it derives the classes after the flips.
  const at::Tensor labels = ellipses(25, 31, {{{12, 10, 7, 6, 1}}, {{12, 21, 6, 5, 2}}});
  const at::Tensor flipped = direction_classes(labels.flip({1}));
  at::Tensor mirrored = direction_classes(labels).flip({1});
  const at::Tensor sector = mirrored - 2;
  mirrored = at::where(mirrored >= 2, at::remainder(4 - sector, 8) + 2, mirrored);
  // Equal but where the flip moves a centre by a pixel (the nearest pixel to a centroid that lies
  // between two): at most the few pixels next to the centres.
  EXPECT_LE((flipped != mirrored).sum().item<int64_t>(), 6);
}

TEST(DirectionTargets, ViewsTurnTheirDirectionsBack) {
  // The directions predicted for each flip and rotation of an image, turned back, are the image's
  // own (test-time augmentation averages them); the maps of other schemes only move back.
  const at::Tensor labels = ellipses(33, 33, {{{12, 10, 7, 5, 1}}, {{20, 22, 5, 9, 2}}, {{4, 28, 3, 4, 3}}});
  const at::Tensor truth = direction_classes(labels);
  for (int k = 0; k < 8; ++k) {
    const at::Tensor view = one_hot_maps(direction_classes(dihedral(labels, k, false)), kDirectionClasses).unsqueeze(0);
    const at::Tensor back = dihedral_maps(view, k, ClassScheme::kDirections);
    // Equal but where the view moves a centre by a pixel (a centroid between two pixels).
    EXPECT_LE((back[0].argmax(0) != truth).sum().item<int64_t>(), 12) << "view " << k;
    EXPECT_TRUE(at::equal(dihedral_maps(view, k, ClassScheme::kInteriorBoundary), dihedral(view, k, true)));
  }
}

TEST(DirectionTargets, TouchingObjectsSplitBentAndLongOnesDoNot) {
  // Two discs overlapping by a third of a radius (the later paints over the earlier); a long
  // ellipse; a bent nucleus (a kidney: a disc with a bite out of one side).
  const at::Tensor touching = ellipses(40, 60, {{{20, 18, 10, 10, 1}}, {{20, 37, 10, 10, 2}}});
  const at::Tensor long_one = ellipses(30, 70, {{{15, 35, 5, 30, 1}}});
  at::Tensor kidney = ellipses(40, 40, {{{20, 20, 14, 14, 1}}});
  kidney.masked_fill_(ellipses(40, 40, {{{20, 38, 8, 8, 1}}}) > 0, 0);
  for (const at::Tensor& truth : {touching, long_one, kidney}) {
    const at::Tensor one_hot = one_hot_maps(direction_classes(truth), kDirectionClasses);
    for (const at::Tensor& maps : {one_hot, blurred(one_hot)}) {
      const ObjectScores s = object_scores(truth, objects_of(maps, ClassScheme::kDirections));
      EXPECT_EQ(s.predicted_objects, s.truth_objects);
      EXPECT_GE(s.f1(5), 1.0) << s.truth_objects << " objects, " << s.predicted_objects << " found";  // IoU above 0.75
    }
  }
}

TEST(DirectionTargets, ObjectsCutByTheImageEdgeStayWhole) {
  const at::Tensor labels = ellipses(30, 30, {{{15, 0, 9, 9, 1}}, {{15, 22, 6, 6, 2}}, {{0, 0, 5, 5, 3}}});
  EXPECT_EQ(object_scores(labels, decoded(labels)).f1(9), 1.0);  // IoU above 0.95 for all three
}

TEST(DirectionTargets, SyntheticNucleiDecodeFromTheirDirectionClasses) {
  SyntheticOptions o;
  o.kind = SyntheticKind::kNuclei;
  for (int64_t i = 0; i < 3; ++i) {
    const at::Tensor truth = synthetic_nuclei(o, i).second;
    const ObjectScores s = object_scores(truth, decoded(truth));
    EXPECT_GE(s.f1(5), 0.97) << "image " << i << ": " << s.truth_objects << " objects, " << s.predicted_objects << " decoded";
  }
}

TEST(DirectionTargets, FlowFollowsAndGathers) {
  // A flow pointing right everywhere on a row: every pixel ends at the right edge, one object.
  at::Tensor flow = at::zeros({2, 3, 9}, at::kFloat);
  flow[0].fill_(1.0f);
  at::Tensor objects = at::zeros({3, 9}, at::kBool);
  objects[1].fill_(true);
  const at::Tensor ends = follow_flow(flow, objects, 20);
  EXPECT_TRUE((ends[1] == 1 * 9 + 8).all().item<bool>());
  EXPECT_TRUE((ends[0] == -1).all().item<bool>());
  const at::Tensor labels = gather_at_ends(ends, 2);
  EXPECT_TRUE((labels[1] == 1).all().item<bool>());
  EXPECT_EQ(labels.sum().item<int64_t>(), 9);
  // Half a step per step: after 4 steps 2 pixels on.
  EXPECT_EQ(follow_flow(flow * 0.5f, objects, 4)[1][3].item<int64_t>(), 1 * 9 + 5);
}

TEST(DirectionTargets, ObjectsGrowOverPixelsMoreLikelyObjectThanBackground) {
  // One row: object 1 at x 1-2, object 2 at x 8-9. Background's probability: 0.4 at x 3-4 (more
  // likely object: 1 grows there), 0.7 at x 5 (stays background, so 1 stops), 0.3 at x 6-7 (2
  // grows there), 0.6 at x 0; an island at 0.2 on row 2 that touches no object stays background.
  at::Tensor labels = at::zeros({3, 12}, at::kLong);
  labels[0].slice(0, 1, 3).fill_(1);
  labels[0].slice(0, 8, 10).fill_(2);
  at::Tensor background = at::ones({3, 12}, at::kFloat);
  background[0].slice(0, 1, 3).fill_(0.1f);
  background[0].slice(0, 8, 10).fill_(0.1f);
  background[0][0] = 0.6f;
  background[0].slice(0, 3, 5).fill_(0.4f);
  background[0][5] = 0.7f;
  background[0].slice(0, 6, 8).fill_(0.3f);
  background[2].slice(0, 4, 7).fill_(0.2f);
  const at::Tensor grown = grow_objects(labels, background);
  const std::vector<int64_t> row(grown[0].data_ptr<int64_t>(), grown[0].data_ptr<int64_t>() + 12);
  EXPECT_EQ(row, (std::vector<int64_t>{0, 1, 1, 1, 1, 0, 2, 2, 2, 2, 0, 0}));
  EXPECT_EQ(grown[1].abs().sum().item<int64_t>(), 0);
  EXPECT_EQ(grown[2].abs().sum().item<int64_t>(), 0);
  EXPECT_EQ(grow_objects(at::zeros({3, 12}, at::kLong), background).abs().sum().item<int64_t>(), 0);
  // Two objects reach the same gap: the most likely pixels first, so they meet where background is
  // most probable (x 3 at 0.45), not halfway (a flood in the order pixels were reached gives x 4
  // to 1).
  at::Tensor two = at::zeros({1, 9}, at::kLong);
  two[0].slice(0, 0, 3).fill_(1);
  two[0].slice(0, 6, 9).fill_(2);
  at::Tensor gap = at::full({1, 9}, 0.1f);
  gap[0][3] = 0.45f;
  gap[0][4] = 0.2f;
  gap[0][5] = 0.3f;
  const at::Tensor met = grow_objects(two, gap);
  EXPECT_EQ(std::vector<int64_t>(met.data_ptr<int64_t>(), met.data_ptr<int64_t>() + 9),
            (std::vector<int64_t>{1, 1, 1, 1, 2, 2, 2, 2, 2}));
}

TEST(DirectionTargets, ObjectsGrowToTheirThreshold) {
  // One row, background probabilities 0.6 | objects 1 and 2 with 0.4, 0.7 and 0.3 between them:
  // at 0.5 each object takes what is more likely object; at 0.35 the 0.6 pixel joins object 1
  // (0.7 still parts them); at 0.65 object 1 loses its 0.4 pixels and object 2 keeps its 0.3.
  at::Tensor labels = at::zeros({1, 10}, at::kLong);
  labels[0].slice(0, 1, 3).fill_(1);
  labels[0].slice(0, 8, 10).fill_(2);
  const at::Tensor background = at::tensor({0.6f, 0.1f, 0.1f, 0.4f, 0.4f, 0.7f, 0.3f, 0.3f, 0.1f, 0.1f}).view({1, 10});
  auto row = [&](double threshold) {
    const at::Tensor grown = grow_objects(labels, background, threshold);
    return std::vector<int64_t>(grown.data_ptr<int64_t>(), grown.data_ptr<int64_t>() + 10);
  };
  EXPECT_EQ(row(0.5), (std::vector<int64_t>{0, 1, 1, 1, 1, 0, 2, 2, 2, 2}));
  EXPECT_EQ(row(0.35), (std::vector<int64_t>{1, 1, 1, 1, 1, 0, 2, 2, 2, 2}));
  EXPECT_EQ(row(0.65), (std::vector<int64_t>{0, 1, 1, 0, 0, 0, 2, 2, 2, 2}));
  // The rule carries it to every scheme's objects: a model's recorded threshold, else 0.5.
  EXPECT_DOUBLE_EQ(object_rule(ObjectRecord{}).object_threshold, kObjectThreshold);
  EXPECT_DOUBLE_EQ(object_rule(ObjectRecord{400, 0.35}).object_threshold, 0.35);
  // With the model's smallest mean object probability (none: 0); the options' auto values keep
  // both, given values replace them (0 too).
  const ObjectRecord recorded{400, 0.35, 0.7};
  EXPECT_DOUBLE_EQ(object_rule(ObjectRecord{400, 0.35}).min_probability, 0.0);
  EXPECT_DOUBLE_EQ(object_rule(recorded).min_probability, 0.7);
  InferenceOptions options;
  EXPECT_DOUBLE_EQ(object_rule(recorded, options).min_probability, 0.7);
  EXPECT_DOUBLE_EQ(object_rule(recorded, options).object_threshold, 0.35);
  options.min_object_probability = 0.0;
  options.object_threshold = 0.6;
  EXPECT_DOUBLE_EQ(object_rule(recorded, options).min_probability, 0.0);
  EXPECT_DOUBLE_EQ(object_rule(recorded, options).object_threshold, 0.6);
}

TEST(DirectionTargets, ObjectsKeepTheirRimsWhereTheDirectionIsUncertain) {
  // Two touching discs whose rims (object pixels next to background) have background at 0.3 and
  // the other 0.7 shared by the eight directions: background is the most probable single class
  // there, yet the rims are more likely object. The objects keep them, at the maps' own scale and
  // cut at twice it (where the rims are grown at the maps' pixels).
  const at::Tensor truth = ellipses(40, 60, {{{20, 18, 10, 10, 1}}, {{20, 37, 10, 10, 2}}});
  at::Tensor maps = one_hot_maps(direction_classes(truth), kDirectionClasses);
  const at::Tensor rim = rim_pixels(truth);
  ASSERT_GT(rim.sum().item<int64_t>(), 100);
  maps.masked_fill_(rim.unsqueeze(0), 0.0f);
  maps[0].masked_fill_(rim, 0.3f);
  maps.slice(0, 2).masked_fill_(rim.unsqueeze(0), 0.7f / 8.0f);
  // Cut without the growth (what the object size is measured on), the rims are missing.
  EXPECT_LT((cut_objects(maps, ClassScheme::kDirections, InstanceMethod::kComponents, ObjectRule{}) > 0).sum().item<int64_t>(),
            (truth > 0).sum().item<int64_t>() - 100);
  ObjectRule twice;
  twice.scale = 2.0;
  for (const ObjectRule& rule : {ObjectRule{}, twice}) {
    const at::Tensor found = objects_of(maps, ClassScheme::kDirections, InstanceMethod::kComponents, rule);
    const ObjectScores s = object_scores(truth, found);
    EXPECT_EQ(s.predicted_objects, 2) << "scale " << rule.scale;
    EXPECT_EQ((found > 0).sum().item<int64_t>(), (truth > 0).sum().item<int64_t>()) << "scale " << rule.scale;
    EXPECT_GE(s.f1(9), 1.0) << "scale " << rule.scale;  // IoU above 0.95 for both
  }
}

// One cut, several thresholds (evaluate --object-thresholds): each threshold's objects are those
// objects_at_scale cuts at it, at the maps' own scale and cut at twice it; the rims (object 0.7)
// belong to the objects below 0.7 and not above, so the thresholds' objects differ.
TEST(DirectionTargets, ObjectsAtSeveralThresholdsEqualEachThresholdsOwn) {
  const at::Tensor truth = ellipses(40, 60, {{{20, 18, 10, 10, 1}}, {{20, 37, 10, 10, 2}}});
  at::Tensor maps = one_hot_maps(direction_classes(truth), kDirectionClasses);
  const at::Tensor rim = rim_pixels(truth);
  maps.masked_fill_(rim.unsqueeze(0), 0.0f);
  maps[0].masked_fill_(rim, 0.3f);
  maps.slice(0, 2).masked_fill_(rim.unsqueeze(0), 0.7f / 8.0f);
  const std::vector<double> thresholds = {0.35, 0.5, 0.8};
  ObjectRule twice;
  twice.scale = 2.0;
  for (const ObjectRule& rule : {ObjectRule{}, twice}) {
    const std::vector<at::Tensor> all =
        objects_at_thresholds(at::Tensor(), maps, ClassScheme::kDirections, InstanceMethod::kComponents, rule, thresholds);
    ASSERT_EQ(all.size(), thresholds.size());
    for (size_t k = 0; k < thresholds.size(); ++k) {
      ObjectRule at_k = rule;
      at_k.object_threshold = thresholds[k];
      EXPECT_TRUE(at::equal(all[k], objects_of(maps, ClassScheme::kDirections, InstanceMethod::kComponents, at_k)))
          << "threshold " << thresholds[k] << ", scale " << rule.scale;
    }
    // At 0.5 the rims are the objects'; at 0.8 not (cut at twice the scale and resized back, the
    // cut itself takes some of them).
    EXPECT_EQ((all[1] > 0).sum().item<int64_t>(), (truth > 0).sum().item<int64_t>()) << "scale " << rule.scale;
    EXPECT_LT((all[2] > 0).sum().item<int64_t>(), (all[1] > 0).sum().item<int64_t>() - 20) << "scale " << rule.scale;
  }
  // With levels (smallest mean object probabilities), threshold-major: each pair's objects are
  // those objects_of cuts with the rule's threshold and level set to them. The discs' means are
  // about 0.96 grown to 0.5 (their rims at 0.7) and 1 at 0.8: 0.97 drops them at 0.5 only.
  const std::vector<double> levels = {0.0, 0.97};
  const std::vector<at::Tensor> grid =
      objects_at_thresholds(at::Tensor(), maps, ClassScheme::kDirections, InstanceMethod::kComponents, ObjectRule{}, {0.5, 0.8}, levels);
  ASSERT_EQ(grid.size(), 4u);
  for (size_t k = 0; k < grid.size(); ++k) {
    ObjectRule at_k;
    at_k.object_threshold = k < 2 ? 0.5 : 0.8;
    at_k.min_probability = levels[k % 2];
    EXPECT_TRUE(at::equal(grid[k], objects_of(maps, ClassScheme::kDirections, InstanceMethod::kComponents, at_k))) << k;
  }
  EXPECT_EQ(grid[0].max().item<int64_t>(), 2);
  EXPECT_EQ(grid[1].max().item<int64_t>(), 0);
  EXPECT_EQ(grid[3].max().item<int64_t>(), 2);
  const at::Tensor at_08 =
      objects_at_thresholds(at::Tensor(), maps, ClassScheme::kDirections, InstanceMethod::kComponents, ObjectRule{}, {0.8})[0];
  EXPECT_EQ((at_08 > 0).sum().item<int64_t>(), (truth > 0).sum().item<int64_t>() - rim.sum().item<int64_t>());
  // A threshold outside (0, 1) from a library caller is a unet::Error, not an internal check.
  ObjectRule zero;
  zero.object_threshold = 0.0;
  EXPECT_THROW(objects_of(maps, ClassScheme::kDirections, InstanceMethod::kComponents, zero), Error);
}

// Objects whose mean object probability is under the rule's go, the rest renumbered: object 1
// averages 0.9, object 2 0.6 (0.8 and 0.4 on its two pixels).
TEST(DirectionTargets, UnlikelyObjectsAreDropped) {
  const at::Tensor labels = at::tensor({0, 1, 1, 0, 2, 2}, at::kLong).view({1, 6});
  const at::Tensor background = at::tensor({0.9f, 0.1f, 0.1f, 0.9f, 0.2f, 0.6f}).view({1, 6});
  auto row = [&](double level) {
    const at::Tensor kept = drop_unlikely_objects(labels, background, level);
    return std::vector<int64_t>(kept.data_ptr<int64_t>(), kept.data_ptr<int64_t>() + 6);
  };
  EXPECT_EQ(row(0.0), (std::vector<int64_t>{0, 1, 1, 0, 2, 2}));
  EXPECT_EQ(row(0.55), (std::vector<int64_t>{0, 1, 1, 0, 2, 2}));
  EXPECT_EQ(row(0.65), (std::vector<int64_t>{0, 1, 1, 0, 0, 0}));
  EXPECT_EQ(row(0.95), (std::vector<int64_t>{0, 0, 0, 0, 0, 0}));
  // The first object goes and the labels (with a gap) are renumbered; a mean equal to the level stays.
  const at::Tensor gapped = at::tensor({0, 3, 3, 0, 7, 7}, at::kLong).view({1, 6});
  const at::Tensor halves = at::tensor({0.9f, 0.25f, 0.75f, 0.9f, 0.1f, 0.1f}).view({1, 6});  // 3: mean 0.5, 7: 0.9
  auto kept = [&](double level) {
    const at::Tensor k = drop_unlikely_objects(gapped, halves, level);
    return std::vector<int64_t>(k.data_ptr<int64_t>(), k.data_ptr<int64_t>() + 6);
  };
  EXPECT_EQ(kept(0.5), (std::vector<int64_t>{0, 1, 1, 0, 2, 2}));
  EXPECT_EQ(kept(0.6), (std::vector<int64_t>{0, 0, 0, 0, 1, 1}));
  EXPECT_THROW(drop_unlikely_objects(gapped, halves, 1.0), Error);
  // Where the rule asks for it, last (after the objects grow): one disc of two made dim (object
  // 0.8) with a rim that only the growth takes (background 0.4, the most probable class there;
  // object 0.6) averages 0.71 once grown: it survives at 0.5 and 0.7 and goes at 0.75 (0.8
  // before the growth).
  const at::Tensor truth = ellipses(40, 60, {{{20, 15, 9, 9, 1}}, {{20, 42, 9, 9, 2}}});
  at::Tensor maps = one_hot_maps(direction_classes(truth), kDirectionClasses);
  const at::Tensor dim = (truth == 2).unsqueeze(0);
  const at::Tensor rim = (ellipses(40, 60, {{{20, 42, 12, 12, 1}}}) > 0) & (truth == 0);
  maps.masked_fill_(dim, 0.0f);
  maps[0].masked_fill_(dim[0], 0.2f);
  maps[1].masked_fill_(dim[0], 0.8f);
  maps.masked_fill_(rim.unsqueeze(0), 0.0f);
  maps[0].masked_fill_(rim, 0.4f);
  maps.slice(0, 2).masked_fill_(rim.unsqueeze(0), 0.6f / 8.0f);
  ObjectRule rule;
  const at::Tensor grown = objects_of(maps, ClassScheme::kDirections, InstanceMethod::kComponents, rule);
  ASSERT_EQ((grown == grown[20][42]).sum().item<int64_t>(), ((truth == 2) | rim).sum().item<int64_t>());
  for (const auto& [level, objects] : std::vector<std::pair<double, int64_t>>{{0.0, 2}, {0.5, 2}, {0.7, 2}, {0.75, 1}}) {
    rule.min_probability = level;
    EXPECT_EQ(objects_of(maps, ClassScheme::kDirections, InstanceMethod::kComponents, rule).max().item<int64_t>(), objects)
        << "level " << level;
  }
}

// Moved as classes, the directions of a flipped tile would lead away from its objects' centres and
// shatter them (a loader that moves the precomputed classes fails this).
TEST(DirectionTargets, TrainingTilesDeriveTheirDirectionsAfterTheFlips) {
  SyntheticOptions o;
  o.kind = SyntheticKind::kNuclei;
  o.size = 96;
  o.train_count = 2;
  o.test_count = 0;
  const DataSet data = synthetic_dataset(o, kDirectionClasses, {ClassScheme::kDirections, 2});
  ASSERT_TRUE(data.has_instances());
  // The same tiles of the instance labels themselves (flips move labels as they are).
  std::vector<Sample> as_labels = data.train;
  for (Sample& s : as_labels) s.mask = s.instances;
  const Geometry tile{92, 52, true};
  LoaderOptions options;
  options.batch_size = 2;
  options.augment = AugmentOptions{};
  options.augment->crop = 0.0;
  options.augment->elastic = false;
  options.augment->brightness = 0.0;
  for (int64_t step = 0; step < 6; ++step) {
    options.scheme = ClassScheme::kDirections;
    const Batch batch = make_batch(data.train, tile, kDirectionClasses, options, step);
    options.scheme = ClassScheme::kPlain;
    const Batch truth = make_batch(as_labels, tile, kDirectionClasses, options, step);
    for (int64_t i = 0; i < 2; ++i) {
      // Slivers of objects cut by the window (under 20 pixels) may join a neighbour: their centre
      // lies outside it, which whole images predicted in tiles never have.
      const at::Tensor objects = objects_of(one_hot_maps(batch.labels[i], kDirectionClasses), ClassScheme::kDirections);
      const ObjectScores s = object_scores(remove_small_objects(truth.labels[i], 20), remove_small_objects(objects, 20));
      EXPECT_GE(s.f1(0), 0.9) << "step " << step << " tile " << i << ": " << s.truth_objects << " objects, "
                              << s.predicted_objects << " decoded";
    }
  }
}

TEST(DirectionTargets, TilesAtTheImageEdgeKeepEachObjectsOwnCentre) {
  // An image as large as the output window (the tile's origin is 0), mirrored into the margin: a
  // disc 3 pixels from the left edge has a copy of its own there and keeps its centre; a disc on
  // the top edge joins its copy, as prediction's mirrored tiles show it.
  const Geometry tile{92, 52, true};
  Sample s;
  s.image = at::zeros({1, 52, 52}, at::kFloat);
  s.instances = ellipses(52, 52, {{{26, 6, 3, 3, 5}}, {{0, 30, 6, 6, 9}}});
  s.mask = direction_classes(s.instances);
  LoaderOptions options;
  options.batch_size = 1;
  options.scheme = ClassScheme::kDirections;
  const at::Tensor labels = make_batch({s}, tile, kDirectionClasses, options, 0).labels[0];
  EXPECT_EQ(labels[26][6].item<int64_t>(), 1);   // the disc's own centre
  EXPECT_EQ(labels[26][3].item<int64_t>(), 2);   // its left rim points east, to it
  EXPECT_EQ(labels[26][9].item<int64_t>(), 6);   // its right rim west
  EXPECT_EQ(labels[0][30].item<int64_t>(), 1);   // the half disc's centre lies on the edge
  EXPECT_EQ(labels[5][30].item<int64_t>(), 4);   // and its pixels point north, to it
}

TEST(DirectionTargets, CommandsTrainEvaluateAndPredict) {
  const unet::test::TempDir dir;
  SyntheticOptions o;
  o.kind = SyntheticKind::kNuclei;
  o.size = 64;
  o.train_count = 4;
  o.test_count = 1;
  write_synthetic_nuclei(dir.file("data"), o);
  const std::string net = " --depth 2 --filters 4 --input-size 60 --input-mode tile --batch-size 2 --quiet";
  const std::string model = dir.file("model");
  auto r = unet::test::run_unet("train --data-dir " + dir.file("data") + " --instance-targets directions --model-dir " +
                                model + net + " --max-steps 2 --augment");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const CheckpointInfo info = read_checkpoint_info(checkpoint_path(model));
  EXPECT_EQ(info.model.scheme(), ClassScheme::kDirections);
  EXPECT_EQ(info.model.classes(), kDirectionClasses);
  r = unet::test::run_unet("evaluate --data-dir " + dir.file("data") + " --model-dir " + model + " --quiet");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("objects (directions followed to centres) truth 4"), std::string::npos) << r.out;
  r = unet::test::run_unet("predict --input " + dir.file("data/test") + " --model-dir " + model + " --output-dir " +
                           dir.file("out") + " --no-overlays --instances --quiet");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(read_tiff(dir.file("out/nuclei-004_instances.tif")).size(), 1u);
  r = unet::test::run_unet("predict --input " + dir.file("data/test") + " --model-dir " + model + " --output-dir " +
                           dir.file("out2") + " --no-overlays --instances --tta --quiet");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(read_tiff(dir.file("out2/nuclei-004_instances.tif")).size(), 1u);
  unet::test::expect_one_line_error(
      unet::test::run_unet("train --data-dir " + dir.file("data") + " --instance-targets directions --classes 3 --model-dir " +
                           dir.file("m3") + net + " --max-steps 1"),
      "10 classes as direction targets");
  unet::test::expect_one_line_error(
      unet::test::run_unet("train --synthetic --instance-targets directions --model-dir " + dir.file("m2") + net +
                           " --max-steps 1"),
      "directions needs instance masks");
  EXPECT_THROW(UNetOptions().classes(5).scheme(ClassScheme::kDirections).validate(), OptionError);
  EXPECT_EQ(default_class_naming(kDirectionClasses, ClassScheme::kDirections, false).name(4), "north");
  EXPECT_TRUE(has_objects(kDirectionClasses, ClassScheme::kDirections));
}
