// Object-level scores: how many of the objects a user counts were found, as the nucleus and cell
// segmentation benchmarks report them (Data Science Bowl 2018, StarDist, Cellpose).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace unet {

/// Matches between the objects of two instance-label maps.
struct ObjectScores {
  int64_t truth_objects = 0;
  int64_t predicted_objects = 0;
  /// IoU thresholds 0.50, 0.55, ..., 0.95; a truth and a predicted object match at t when their
  /// IoU is strictly above t (above 0.5 a match is unique, so no assignment problem arises).
  std::vector<double> thresholds;
  std::vector<int64_t> true_positives;  // matched pairs per threshold
  /// Truth objects of which two or more predicted objects each have at least half of their
  /// pixels inside (split), and predicted objects with two or more truth objects each at least
  /// half inside (merged).
  int64_t split = 0;
  int64_t merged = 0;
  /// The IoU summed over the pairs matched at 0.5 (for panoptic quality).
  double matched_iou = 0.0;
  /// Images scored, and their panoptic qualities summed (each image's own `panoptic_quality`).
  int64_t images = 0;
  double image_panoptic_quality = 0.0;
  /// Aggregated Jaccard index (Kumar et al. 2017, the MoNuSeg challenge's score): each truth
  /// object with the predicted object of highest IoU with it; its intersection summed into
  /// `jaccard_intersection`, its union into `jaccard_union`, with every truth object that meets
  /// none and every predicted object never chosen added to the union whole. Summed over the images
  /// added, and each image's own index summed into `image_jaccard`.
  double jaccard_intersection = 0.0;
  double jaccard_union = 0.0;
  double image_jaccard = 0.0;

  int64_t false_positives(size_t k) const { return predicted_objects - true_positives[k]; }
  int64_t false_negatives(size_t k) const { return truth_objects - true_positives[k]; }
  /// 2 TP / (2 TP + FP + FN); 1 when neither map has objects.
  double f1(size_t k) const;
  /// The Data Science Bowl 2018's "average precision" at one threshold: TP / (TP + FP + FN).
  double average_precision(size_t k) const;
  /// Its mean over the thresholds (the Bowl's score of an image).
  double mean_average_precision() const;
  /// Panoptic quality at IoU 0.5 (Kirillov et al. 2019, as histology papers report it):
  /// PQ = SQ x RQ, SQ the mean IoU of the matched pairs, RQ = TP / (TP + FP/2 + FN/2) (F1 at 0.5);
  /// pooled over the images added. 1 when neither map has objects.
  double panoptic_quality() const;
  double segmentation_quality() const;
  /// PQ of each image, averaged over the images (HoVer-Net's "bPQ" for binary nucleus maps).
  double mean_image_panoptic_quality() const;
  /// The aggregated Jaccard index pooled over the images added (their intersections over their
  /// unions); 1 when neither map has objects. A predicted object may be the best of several truth
  /// objects (a merge then counts its area in each union), as in the original definition.
  double aggregated_jaccard_index() const;
  /// Each image's index averaged over the images (how the MoNuSeg 2018 challenge ranked entries).
  double mean_image_aggregated_jaccard_index() const;

  /// Adds another image's counts (pooled scores over a set of images).
  void add(const ObjectScores& other);
};

/// The IoU thresholds of `ObjectScores`.
std::vector<double> object_iou_thresholds();

/// Scores of predicted objects against truth objects, both int64 [H, W] label maps (0 =
/// background, every other value one object; labels need not be consecutive).
ObjectScores object_scores(const at::Tensor& truth, const at::Tensor& predicted);

}  // namespace unet
