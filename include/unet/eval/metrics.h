// Evaluation metrics: the reference's Dice score and cross-entropy, hard membrane Dice/IoU, pixel error.
#pragma once

#include "unet/eval/instances.h"
#include "unet/eval/isbi.h"
#include "unet/eval/objects.h"
#include "unet/model/scheme.h"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace unet {

struct Metrics {
  /// The reference's eval_dice_score: 1 - soft Dice loss (both classes) at the network's output size.
  double dice_score = 0.0;
  /// Mean softmax cross-entropy at the network's output size.
  double cross_entropy = 0.0;
  /// Hard Dice and IoU of the membrane class (`kMembraneClass`, unet/data/dataset.h) and the fraction of misclassified pixels, at the
  /// images' original size (probabilities resized back, class by threshold/argmax), pooled over
  /// every pixel of every image.
  double membrane_dice = 0.0;
  double membrane_iou = 0.0;
  double pixel_error = 0.0;
  /// The ISBI 2012 challenge's scores (unet/eval/isbi.h), each the mean over images at a threshold
  /// of the non-membrane probability. Thinned: the challenge's own (boundaries thinned to one
  /// pixel by a watershed; its leaderboard ranks by `v_rand_thinned`), the best over
  /// `challenge_thresholds()` with the threshold that gave it. Unthinned (segments = connected
  /// components), for comparison: at threshold 0.5, and the best over the same thresholds.
  double v_rand_thinned = 0.0;
  double v_rand_thinned_threshold = 0.0;
  double v_info_thinned = 0.0;
  double v_info_thinned_threshold = 0.0;
  double v_rand = 0.0;
  double v_info = 0.0;
  double v_rand_best = 0.0;
  double v_rand_threshold = 0.0;
  double v_info_best = 0.0;
  double v_info_threshold = 0.0;
  /// Hard Dice and IoU of every class (index = class), at the original size, pooled over every
  /// pixel of every image (`membrane_dice` is `class_dice[0]`).
  std::vector<double> class_dice;
  std::vector<double> class_iou;
  /// Objects, for two-class models: the 4-connected components of class 1 (ISBI's cells, the
  /// nuclei of a nucleus set) in the truth and in the prediction; for interior/boundary models
  /// `objects_of` (unet/eval/instances.h); matched per image and pooled.
  bool has_objects = false;
  ObjectScores objects;
  int64_t images = 0;
};

/// The true objects of a labelled image whose mask [H, W] holds `classes` classes of `scheme`: its
/// own instance labels `instances` (int64 [H, W]) where defined, else the objects of the mask's
/// classes (`objects_of` its one-hot maps; nothing dropped or split). What the object scores match
/// predictions against.
at::Tensor objects_of_truth(const at::Tensor& mask, const at::Tensor& instances, int64_t classes, ClassScheme scheme);

/// Accumulates metrics batch by batch.
class MetricAccumulator {
 public:
  /// For a model of `classes` classes (per-class scores; objects when there are two, or three
  /// interior/boundary classes).
  explicit MetricAccumulator(int64_t classes = 2, ClassScheme scheme = ClassScheme::kPlain);
  /// Network-size terms for logits [N, C, h, w] against labels [N, h, w].
  void add_network_output(const at::Tensor& logits, const at::Tensor& labels);
  /// Original-size terms for probabilities [C, H, W] against the original mask [H, W].
  /// `truth_objects` (int64 [H, W], 0 background; optional): the truth's own instance labels, for
  /// the object scores instead of the objects of the mask itself. `predicted_objects` (the same,
  /// optional): the prediction's instance labels instead of the objects of `probabilities`.
  void add_original(const at::Tensor& probabilities, const at::Tensor& mask, const at::Tensor& truth_objects = {},
                    const at::Tensor& predicted_objects = {});
  /// Soft Dice and cross-entropy from probabilities [C, H, W] (tile mode has no network-size
  /// logits: these terms are then taken at the original size).
  void add_probabilities(const at::Tensor& probabilities, const at::Tensor& mask);
  Metrics result() const;
  /// How predicted objects are cut out (`objects_of`'s rule: the smallest kept, the necks split;
  /// the truth's objects are all counted, never split). None of either by default.
  void use_object_rule(const ObjectRule& rule) { object_rule_ = rule; }

  /// The running sums, so that accumulators of several processes can be added up (all-reduce
  /// the tensor, then `set_state`): float64 [6 + 4 x thresholds + 3 x classes + 7 + object
  /// thresholds].
  at::Tensor state() const;
  void set_state(const at::Tensor& state);
  /// Adds another accumulator's sums (of the same number of classes) to these.
  void add(const MetricAccumulator& other);

 private:
  ObjectRule object_rule_;
  double soft_dice_sum_ = 0.0;  // sum over images of the per-image mean-over-classes Dice
  double cross_entropy_sum_ = 0.0;
  int64_t network_images_ = 0;
  double wrong_ = 0.0, pixels_ = 0.0;
  int64_t original_images_ = 0;
  /// Per threshold of `challenge_thresholds()`: sums over images of V_Rand, V_Info, and both thinned.
  /// Per class: true positive, false positive and false negative pixels.
  std::vector<double> class_tp_, class_fp_, class_fn_;
  ClassScheme scheme_;
  ObjectScores objects_;
  std::vector<double> v_rand_sums_ = zeros(), v_info_sums_ = zeros(), v_rand_thinned_sums_ = zeros(),
                      v_info_thinned_sums_ = zeros();
  static std::vector<double> zeros() { return std::vector<double>(challenge_thresholds().size(), 0.0); }
};

}  // namespace unet
