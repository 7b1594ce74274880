// Training targets from instance labels: what separates touching objects. Two classes with a
// background line between touching objects (the U-Net paper's masks, for its border weights), or
// three classes, background / interior / boundary (Caicedo et al., Cytometry A 2019, on BBBC039).
#pragma once

#include "unet/data/image_io.h"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>

namespace unet {

/// Instance labels int64 [H, W] from a mask file's pixels (8- or 16-bit, unsigned or signed, one
/// channel or equal channels): 0 background, every other value one object. Throws `unet::Error`
/// naming `where` for float, multi-channel or MinIsWhite masks and negative labels
/// (`label_values`).
at::Tensor decode_instance_mask(const RawImage& mask, const std::string& where);

/// Two classes from instance labels [H, W]: 1 on the objects, 0 on the background and on every
/// object pixel with an 8-neighbour of another object, so that touching objects are parted by a
/// background line two pixels wide (and become separate connected components).
at::Tensor separated_objects(const at::Tensor& labels);

/// Three classes from instance labels [H, W]: 0 background, 2 boundary (object pixels within
/// `width` pixels, Chebyshev distance, of a pixel with another label, background included), 1 the
/// objects' interior. The image's edge is not a boundary (objects cut by it keep their interior).
at::Tensor interior_boundary(const at::Tensor& labels, int64_t width);

/// Throws `OptionError` unless instance masks can train a model of `classes` classes (2 or 3) with
/// boundaries `boundary_width` pixels wide (at least 1).
void require_instance_targets(int64_t classes, int64_t boundary_width);

/// The targets of a model of `classes` classes: 2 `separated_objects`, 3 `interior_boundary`
/// (`require_instance_targets` first).
at::Tensor instance_targets(const at::Tensor& labels, int64_t classes, int64_t boundary_width);

}  // namespace unet
