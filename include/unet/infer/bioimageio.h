// bioimage.io model packages: a trained U-Net as a zip that deepImageJ (Fiji), ilastik, napari
// and QuPath users can open, following the bioimage.io model specification 0.5.
#pragma once

#include "unet/model/checkpoint.h"
#include "unet/model/int8_ops.h"
#include "unet/model/unet.h"

#include <cstdint>
#include <string>
#include <vector>

namespace unet {

/// What a package says about its model beyond the network.
struct BioimageioOptions {
  /// The model's name (empty: "U-Net for 2D segmentation (<architecture>)").
  std::string name;
  /// One paragraph (empty: a description generated from the architecture and the training run).
  std::string description;
  /// Authors' names (empty: "unet user").
  std::vector<std::string> authors;
  /// An SPDX license identifier of the weights.
  std::string license = "CC-BY-4.0";
  /// A real image (TIFF, first page, or PNG) to make the test tensors and the cover from; its
  /// encoding (8-bit, 16-bit or float in [0, 1]) sets the preprocessing. Empty: an embedded
  /// synthetic EM-like slice (8-bit).
  std::string sample;
  /// One name per class (empty: the checkpoint's `class_naming`).
  std::vector<std::string> class_names;

  /// Throws `OptionError` naming the field when the package would fail the bioimage.io
  /// specification: a license that is not an SPDX identifier as spelt (case-sensitive; the
  /// message names the nearest), a name other than 5 to 128 letters, digits, spaces and _+-(),
  /// a description over 1024 characters, an author's name that is blank or holds a slash, blank
  /// or repeated class names, and in any text a control character (below 0x20, tabs and line breaks
  /// included, or 0x7f) or bytes that are not UTF-8. What needs the model (the number of class
  /// names) is checked by `export_bioimageio`.
  void validate() const;
};

/// What was written.
struct BioimageioPackage {
  std::vector<std::string> files;    ///< names inside the zip
  int64_t test_height = 0, test_width = 0;  ///< test input sides (the largest legal crop of the sample, at most 572)
  int64_t output_height = 0, output_width = 0;
  std::string sample;                ///< the sample's path or "synthetic"
};

/// Writes a bioimage.io model package (a zip, atomically) for `model`: rdf.yaml (as JSON, which is
/// YAML 1.2), ONNX weights (opset 17, the probabilities as the one output) and TorchScript weights
/// (forward gives the probabilities), test input and output tensors (.npy, float32; the output is
/// this model's probabilities for the input), a cover image, a README and the citations. Throws
/// `OptionError` for options that fail `validate()` or do not fit the model, and `unet::Error`
/// naming the file on a bad sample, an unwritable output or a build without libzip or libonnx;
/// nothing is written then.
///
/// With `int8` (the scales of `unet quantize`): the int8 model instead, ONNX weights only (the
/// QDQ file of `export --precision int8`, giving the probabilities), its test output from unet's
/// int8 engine, and a reproducibility tolerance for the runtimes' int8 arithmetic (one output
/// step of the logits, the head's input scale times its largest absolute weight sum, as far as the
/// specification allows: 1% of the largest probability, then 1% relative). Throws
/// `unet::Error` on a CPU without VNNI or AMX, whose 7-bit weights would not be the file's.
BioimageioPackage export_bioimageio(UNet& model, const CheckpointInfo& info, const std::string& path,
                                    const BioimageioOptions& options, const Int8Scales* int8 = nullptr);

/// Whether this build can write packages (libzip and libonnx were found).
bool bioimageio_available();

}  // namespace unet
