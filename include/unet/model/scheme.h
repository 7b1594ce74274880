// What a network's output classes stand for: light enough for the data part's headers.
#pragma once

#include "unet/runtime/error.h"

#include <string>

namespace unet {

/// What a network's classes stand for, so that objects can be cut out of its output.
enum class ClassScheme {
  kPlain,             ///< the masks' own classes (two classes: 0 background or membrane, 1 the objects)
  kInteriorBoundary,  ///< derived from instance labels: 0 background, 1 object interior, 2 object boundary
};
/// "plain", "interior-boundary".
const EnumNames<ClassScheme>& class_scheme_names();
std::string to_string(ClassScheme scheme);
/// Throws `OptionError` (field "class_scheme") for other names.
ClassScheme parse_class_scheme(const std::string& text);

}  // namespace unet
