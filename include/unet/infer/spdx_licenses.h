// The SPDX license identifiers that bioimage.io packages accept (the SPDX License List as
// bioimageio.spec validates it), for checking `BioimageioOptions::license` before a package is written.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace unet {

/// Whether `id` is an SPDX license identifier, current or deprecated, spelt exactly: bioimageio.spec
/// compares them case-sensitively ("MIT", not "mit"), and a package with any other license text fails it.
bool is_spdx_license(std::string_view id);

/// Up to `count` current identifiers nearest to `id`, nearest first: edit distance (with
/// transpositions) ignoring case, where an identifier that begins with `id` counts as one edit
/// ("MTI" -> MIT; "cc-by" -> CC-BY-1.0, ...). For error messages.
std::vector<std::string> nearest_spdx_licenses(std::string_view id, size_t count = 3);

/// The tables, each sorted in byte order: current and deprecated identifiers.
std::span<const std::string_view> spdx_license_ids();
std::span<const std::string_view> deprecated_spdx_license_ids();

}  // namespace unet
