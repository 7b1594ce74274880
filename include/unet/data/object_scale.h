// Object size: images and their instance labels rescaled so that their objects have one size.
#pragma once

#include "unet/data/dataset.h"
#include "unet/data/instance_targets.h"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace unet {

/// The diameter of a disc of the median object area of instance labels [H, W] (0 background),
/// pixels: 2 * sqrt(median area / pi), Cellpose's measure of an image's object size; 0 when there
/// are no objects.
double median_object_diameter(const at::Tensor& labels);

/// A side of `side` pixels scaled by `scale`: rounded, at least 1.
int64_t scaled_side(int64_t side, double scale);

/// An image [C, H, W] (float) resized to height x width: bilinear with half-pixel centres,
/// smoothed (antialiased) when shrunk, so that a shrunk image keeps its mean brightness.
at::Tensor resize_image(const at::Tensor& image, int64_t height, int64_t width);

/// Labels [H, W] (integer) resized to height x width by the nearest pixel (half-pixel centres):
/// every output label is an input label.
at::Tensor resize_labels(const at::Tensor& labels, int64_t height, int64_t width);

/// Rescales a sample with instance labels (`Sample::instances`) so that its median object is
/// `diameter` pixels across: image, labels and any weights resized by diameter / its median
/// object diameter, its classes derived again from the resized labels (`attach_instances` with
/// `classes` and `targets`). A sample without objects keeps its size. Returns the scale (1 for
/// those). Throws `unet::Error` naming the sample when it has no instance labels, when the scale
/// is beyond `kLargestRescale` either way, or the rescaled image beyond `max_image_pixels`.
double rescale_to_object_diameter(Sample& sample, double diameter, int64_t classes, const InstanceTargets& targets);

/// `rescale_to_object_diameter` of every sample; returns their scales.
std::vector<double> rescale_to_object_diameter(std::vector<Sample>& samples, double diameter, int64_t classes,
                                               const InstanceTargets& targets);

/// The largest factor an image may be rescaled by for its object size, either way: beyond it the
/// objects measure as specks or the image outgrows memory (a 4000 x 4000 image at 16x holds 4 G pixels).
constexpr double kLargestRescale = 16.0;

/// The smallest and largest object diameter `--object-diameter` accepts, pixels.
constexpr double kMinObjectDiameter = 2.0;
constexpr double kMaxObjectDiameter = 4096.0;

}  // namespace unet
