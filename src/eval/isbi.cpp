// The ISBI 2012 challenge's foreground-restricted Rand and information scores (Fiji's arithmetic).
#include "unet/eval/isbi.h"

#include "unet/data/components.h"

#include <ATen/ATen.h>

#include <cmath>
#include <cstdint>
#include <unordered_map>

namespace unet {
namespace {

/// Harmonic mean; 0 where both are 0 (Fiji: NaN).
double f_score(double precision, double recall) {
  return precision + recall > 0 ? 2.0 * precision * recall / (precision + recall) : 0.0;
}

double plogp(double p) { return p > 0 ? p * std::log(p) : 0.0; }

}  // namespace

SegmentationScores segmentation_scores(const at::Tensor& truth_in, const at::Tensor& proposal_in) {
  const at::Tensor truth = truth_in.to(at::kLong).cpu().contiguous();
  const at::Tensor proposal = proposal_in.to(at::kLong).cpu().contiguous();
  const int64_t pixels = truth.numel();
  const int64_t* a = truth.data_ptr<int64_t>();
  const int64_t* b = proposal.data_ptr<int64_t>();
  // Counts over the pixels inside truth segments: joint (i, j >= 1), rows (all j), columns (j >= 1),
  // and those on proposed boundaries (j = 0).
  std::unordered_map<uint64_t, double> joint;
  std::unordered_map<int64_t, double> rows, cols;
  double n = 0, on_boundary = 0;
  for (int64_t k = 0; k < pixels; ++k) {
    if (a[k] == 0) continue;
    n += 1;
    rows[a[k]] += 1;
    if (b[k] == 0) {
      on_boundary += 1;
      continue;
    }
    joint[(static_cast<uint64_t>(a[k]) << 32) ^ static_cast<uint64_t>(b[k])] += 1;
    cols[b[k]] += 1;
  }
  SegmentationScores s;
  if (n == 0) {
    s.v_rand = s.v_info = 1.0;
    return s;
  }
  const double aux = on_boundary / n;  // each boundary pixel: a segment of probability 1/n
  double sum_a2 = 0, sum_b2 = aux / n, sum_ab2 = aux / n;
  double sum_a = 0, sum_b = -aux * std::log(n), sum_ab = -aux * std::log(n);
  for (const auto& [i, c] : rows) sum_a2 += (c / n) * (c / n), sum_a += plogp(c / n);
  for (const auto& [j, c] : cols) sum_b2 += (c / n) * (c / n), sum_b += plogp(c / n);
  for (const auto& [ij, c] : joint) sum_ab2 += (c / n) * (c / n), sum_ab += plogp(c / n);

  // Rand: pair counts with n^2 normalisation.
  const double tp = n * n * sum_ab2, fp = n * n * sum_b2 - tp, fn = n * n * sum_a2 - tp;
  s.v_rand = f_score(fp == 0 ? 1.0 : tp / (tp + fp), fn == 0 ? 1.0 : tp / (tp + fn));
  // Information: H(A), H(B), H(A|B), H(B|A).
  const double ha = -sum_a, hb = -sum_b, hab = sum_b - sum_ab, hba = sum_a - sum_ab;
  double precision = 1.0, recall = 0.0;  // Fiji: H(B) = 0 decides first, then H(A) = 0
  if (hb != 0) {
    precision = ha != 0 ? (ha - hab) / ha : 0.0;
    recall = ha != 0 ? (hb - hba) / hb : 1.0;
  }
  s.v_info = f_score(precision, recall);
  return s;
}

std::vector<double> challenge_thresholds() {
  std::vector<double> t;
  for (double th = 0.0; th <= 1.0; th += 0.1) t.push_back(th);
  return t;
}

ThresholdScores challenge_scores(const at::Tensor& truth_cells, const at::Tensor& cell_probability) {
  const at::Tensor truth = connected_components(truth_cells.to(at::kBool));
  // Fiji compares the float pixel, widened to double, with the double threshold.
  const at::Tensor probability = cell_probability.to(at::kFloat).cpu().to(at::kDouble);
  ThresholdScores out;
  for (const double th : challenge_thresholds()) {
    const at::Tensor cells = probability > th;
    const SegmentationScores plain = segmentation_scores(truth, connected_components(cells));
    const SegmentationScores thinned = segmentation_scores(truth, thin_boundaries(cells));
    out.v_rand.push_back(plain.v_rand);
    out.v_info.push_back(plain.v_info);
    out.v_rand_thinned.push_back(thinned.v_rand);
    out.v_info_thinned.push_back(thinned.v_info);
  }
  return out;
}

}  // namespace unet
