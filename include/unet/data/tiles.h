// Mirrored tiles: mirror-padding by index arithmetic, and random training crops at native resolution.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <random>
#include <utility>

namespace unet {

/// Index map of a mirrored axis: position p in [-before, size + after) -> an index in [0, size),
/// reflecting at the borders without repeating the edge pixel (any size, 1 included).
at::Tensor mirror_indices(int64_t size, int64_t start, int64_t length);

/// A random training crop at native resolution: input [C, input, input] around a random output
/// window [output, output] of the image, mirror-padded where it leaves the image, and that
/// window of the mask (and of `weights` [H, W] into `weights_window`, when both are given; and the
/// mask's whole input window [input, input], mirrored as the image, into `mask_input`, for
/// targets derived from whole objects).
std::pair<at::Tensor, at::Tensor> random_tile(const at::Tensor& image, const at::Tensor& mask, int64_t input,
                                              int64_t output, std::mt19937_64& rng, const at::Tensor& weights = {},
                                              at::Tensor* weights_window = nullptr, at::Tensor* mask_input = nullptr);

}  // namespace unet
