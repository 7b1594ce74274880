// Numbers as unet's messages and help texts print them.
#pragma once

#include <string>

namespace unet {

/// `v` as printf's %g prints it (0.5, 0.65, 1e-05): option errors, help texts, descriptions.
std::string number_text(double v);

}  // namespace unet
