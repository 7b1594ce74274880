// The exports as bytes in memory, for writers that put them into other files (bioimage.io zips).
#pragma once

#include "unet/infer/export.h"

#include <string>

namespace unet {

/// A training record's (a checkpoint's) normalisation: `kRange` where it records none.
Normalisation recorded_normalisation(const std::string& training_record);
/// The normalisation as a formula for people (the contracts' "normalisation").
std::string normalisation_text(const Normalisation& normalisation);

/// The file `export_torchscript` would write, as bytes.
std::string torchscript_bytes(UNet& model, int64_t input_size, const std::string& training_record, ExportFormat format,
                              const ClassNaming& naming);

/// The file `export_onnx` would write, as bytes.
std::string onnx_bytes(UNet& model, int64_t input_size, ExportFormat format, const std::string& training_record,
                       const ClassNaming& naming, const Int8Scales* int8 = nullptr);

}  // namespace unet
