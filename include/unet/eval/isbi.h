// The ISBI 2012 challenge's segmentation scores, computed as the challenge computes them: Fiji's
// Trainable_Segmentation metrics (foreground-restricted Rand and information scores, V_Rand and
// V_Info, over a threshold grid, with and without thinning the proposal's boundaries).
#pragma once

#include <ATen/core/Tensor.h>

#include <vector>

namespace unet {

struct SegmentationScores {
  double v_rand = 0.0;
  double v_info = 0.0;
};

/// Scores of a proposed segmentation against the ground truth, both int64 label maps [H, W] with 0
/// for boundary (membrane), as Fiji's `foregroundRestrictedStatsN2` and
/// `foregroundRestrictedFscore` compute them. Only pixels inside ground-truth segments count
/// (n of them); p_ij is the fraction of them in truth segment i and proposed segment j, a_i and
/// b_j its marginals; proposed boundary pixels inside a true segment count as one-pixel segments
/// of their own (so thick predicted membranes cost splits).
/// V_Rand is the F-score of precision sum p_ij^2 / sum b_j^2 and recall sum p_ij^2 / sum a_i^2;
/// V_Info the F-score of precision I / H(A) and recall I / H(B) (A the truth, B the proposal),
/// with Fiji's conventions: H(A) = 0 gives precision 0 and recall 1, H(B) = 0 gives precision 1 and
/// recall 0 (so a one-segment truth or proposal scores V_Info 0). Deviations from Fiji, whose
/// arithmetic gives NaN there: an F-score with precision + recall = 0 is 0, and a truth without
/// segments scores 1.
SegmentationScores segmentation_scores(const at::Tensor& truth, const at::Tensor& proposal);

/// The proposal's segments after thinning its boundaries to one pixel, as the challenge does:
/// the watershed (Vincent-Soille flooding, 4-connected, Fiji's pixel and neighbour order) of the
/// boundary mask of `foreground` (bool [H, W]); int64 labels 1..n, 0 on the one-pixel lines.
at::Tensor thin_boundaries(const at::Tensor& foreground);

/// The thresholds of the cell (non-membrane) probability at which the challenge binarises a
/// proposal (cell where probability > threshold, strictly): Fiji's loop `for (th = 0.0; th <= 1.0;
/// th += 0.1)` in double arithmetic, 11 values from 0 to 0.9999999999999999.
std::vector<double> challenge_thresholds();

/// One image's scores at every threshold of `challenge_thresholds()`.
struct ThresholdScores {
  std::vector<double> v_rand, v_info;                  // segments: 4-connected components
  std::vector<double> v_rand_thinned, v_info_thinned;  // segments: after `thin_boundaries`
};

/// Scores of a probability map of the cell class (float [H, W], in [0, 1]) against the truth's
/// cells (bool [H, W]: true outside membranes), at every challenge threshold. The challenge's
/// score of a stack is, per kind, the best over thresholds of the mean over slices; its
/// leaderboard ranks by the thinned V_Rand.
ThresholdScores challenge_scores(const at::Tensor& truth_cells, const at::Tensor& cell_probability);

}  // namespace unet
