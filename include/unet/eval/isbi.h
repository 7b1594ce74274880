// The ISBI 2012 challenge's segmentation scores: foreground-restricted Rand (V_Rand) and information (V_Info).
#pragma once

#include <ATen/core/Tensor.h>

#include <vector>

namespace unet {

struct SegmentationScores {
  double v_rand = 0.0;
  double v_info = 0.0;
};

/// Scores of a proposed segmentation against the ground truth, both int64 label maps [H, W] with 0
/// for boundary (membrane). As in the challenge: only pixels inside ground-truth segments count;
/// with p_ij the joint distribution of (truth label i, proposed label j) over them, s_i and t_j
/// its marginals, V_Rand = sum p_ij^2 / (0.5 sum s_i^2 + 0.5 sum t_j^2) and
/// V_Info = I(S; T) / (0.5 H(S) + 0.5 H(T)). Proposed boundary pixels inside a true segment count
/// as one-pixel segments of their own (so thick predicted membranes cost splits). Both are 1 for a
/// perfect segmentation; V_Info is 1 when the entropies are 0 and the segmentations agree.
SegmentationScores segmentation_scores(const at::Tensor& truth, const at::Tensor& proposal);

/// Thresholds of the non-membrane probability swept by evaluation: 0.1, 0.2, ..., 0.9.
std::vector<double> score_thresholds();

}  // namespace unet
