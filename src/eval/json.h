// JSON forms of the evaluation part's types (private to the build: nlohmann stays out of public headers).
#pragma once

#include "unet/eval/metrics.h"

#include <nlohmann/json.hpp>

namespace unet {

/// The keys of log.jsonl's "eval" records, eval_results.json and cv_results.json. The ISBI scores:
/// `v_rand_thinned` / `v_info_thinned` are the challenge's (best over its thresholds, boundaries
/// thinned); `v_rand` / `v_info` (threshold 0.5) and `v_rand_best` / `v_info_best` are unthinned.
/// Object counts and matches: truth and predicted counts, F1 and the Data Science Bowl's precision
/// at IoU 0.5 and 0.75, its mean over 0.5-0.95, splits and merges, panoptic quality (pooled `pq`,
/// `sq`, `rq`; `pq_image_mean` averaged over images), the aggregated Jaccard index (pooled `aji`;
/// `aji_image_mean` averaged over images, as the MoNuSeg challenge ranked).
inline void to_json(nlohmann::json& j, const ObjectScores& o) {
  j = {{"truth", o.truth_objects},        {"predicted", o.predicted_objects},
       {"f1_50", o.f1(0)},                {"f1_75", o.f1(5)},
       {"ap_50", o.average_precision(0)}, {"ap_75", o.average_precision(5)},
       {"mean_ap", o.mean_average_precision()}, {"split", o.split},
       {"merged", o.merged},              {"pq", o.panoptic_quality()},
       {"sq", o.segmentation_quality()},  {"rq", o.f1(0)},
       {"pq_image_mean", o.mean_image_panoptic_quality()},
       {"aji", o.aggregated_jaccard_index()}, {"aji_image_mean", o.mean_image_aggregated_jaccard_index()}};
}

/// `class_dice` / `class_iou` are indexed by class (no class is named here: the commands add the
/// model's class names and headline, `class_record` in tools/ and `RunLogger::evaluation`); `objects` (two-class and interior/boundary
/// models) scores the objects (`Metrics::objects`).
inline void to_json(nlohmann::json& j, const Metrics& m) {
  j = {{"dice_score", m.dice_score},          {"cross_entropy", m.cross_entropy},
       {"pixel_error", m.pixel_error},        {"v_rand", m.v_rand},
       {"v_info", m.v_info},                  {"v_rand_best", m.v_rand_best},
       {"v_rand_threshold", m.v_rand_threshold}, {"v_info_best", m.v_info_best},
       {"v_info_threshold", m.v_info_threshold}, {"v_rand_thinned", m.v_rand_thinned},
       {"v_rand_thinned_threshold", m.v_rand_thinned_threshold}, {"v_info_thinned", m.v_info_thinned},
       {"v_info_thinned_threshold", m.v_info_thinned_threshold}, {"images", m.images},
       {"class_dice", m.class_dice},        {"class_iou", m.class_iou}};
  if (m.has_objects) j["objects"] = m.objects;
}

}  // namespace unet
