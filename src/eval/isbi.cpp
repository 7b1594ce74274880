// The ISBI 2012 challenge's foreground-restricted Rand and information scores.
#include "unet/eval/isbi.h"

#include <ATen/ATen.h>

#include <cmath>
#include <map>
#include <unordered_map>

namespace unet {

SegmentationScores segmentation_scores(const at::Tensor& truth_in, const at::Tensor& proposal_in) {
  const at::Tensor truth = truth_in.to(at::kLong).cpu().contiguous();
  const at::Tensor proposal = proposal_in.to(at::kLong).cpu().contiguous();
  const int64_t n_pixels = truth.numel();
  const int64_t* s = truth.data_ptr<int64_t>();
  const int64_t* t = proposal.data_ptr<int64_t>();
  // Joint counts over pixels inside true segments; proposed boundary pixels become singletons.
  std::map<std::pair<int64_t, int64_t>, double> joint;
  std::unordered_map<int64_t, double> rows, cols;
  int64_t next_singleton = -1;
  double n = 0;
  for (int64_t i = 0; i < n_pixels; ++i) {
    if (s[i] == 0) continue;
    const int64_t j = t[i] == 0 ? next_singleton-- : t[i];
    joint[{s[i], j}] += 1;
    rows[s[i]] += 1;
    cols[j] += 1;
    n += 1;
  }
  SegmentationScores scores;
  if (n == 0) {
    scores.v_rand = scores.v_info = 1.0;
    return scores;
  }
  double sum_p2 = 0, sum_s2 = 0, sum_t2 = 0, h_s = 0, h_t = 0, mutual = 0;
  for (const auto& [key, c] : rows) sum_s2 += (c / n) * (c / n), h_s -= (c / n) * std::log(c / n);
  for (const auto& [key, c] : cols) sum_t2 += (c / n) * (c / n), h_t -= (c / n) * std::log(c / n);
  for (const auto& [key, c] : joint) {
    const double p = c / n;
    sum_p2 += p * p;
    mutual += p * std::log(p / ((rows[key.first] / n) * (cols[key.second] / n)));
  }
  scores.v_rand = sum_p2 / (0.5 * sum_s2 + 0.5 * sum_t2);
  const double denominator = 0.5 * h_s + 0.5 * h_t;
  scores.v_info = denominator > 0 ? mutual / denominator : 1.0;
  return scores;
}

std::vector<double> score_thresholds() { return {0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9}; }

}  // namespace unet
