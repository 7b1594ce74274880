// What a data set's masks are, judged once from all of them: binary, class indices or instance
// labels. Deciding per file fails on instance labels (a file with labels 0..37 looks like bad class
// indices) and may read one data set two ways; a survey of every mask decides once, with evidence.
#pragma once

#include "unet/data/dataset.h"

#include <cstdint>
#include <string>

namespace unet {

/// The encoding of a data set's masks and why.
struct MaskSurvey {
  /// `kBinary`, `kIndex` or `kInstances` (never `kAuto`).
  MaskEncoding encoding = MaskEncoding::kIndex;
  /// One clause for messages: "data/masks/a.tif holds 37 labels; 412 labels in 12 masks form 415
  /// connected regions (16-bit)" for instance labels, "12 masks hold only 0 and 255" (binary),
  /// "12 masks hold values 0 to 2" (index).
  std::string evidence;
};

/// Accumulates the masks of one data set and decides their encoding for a model of `classes`
/// classes (as `MaskEncoding::kAuto` reads them):
/// - binary: every mask holds only 0 and its format's full value (255, 65535), and some the full one;
/// - index: every value is below `classes` (0/1 masks are index masks of two classes);
/// - instance labels: otherwise, when the nonzero values form connected regions: the masks hold at
///   most 1.5 regions (8-connected areas of one value) per label, counted over the whole data set.
///   Instance masks hold one region per object; class-index masks hold each class in many places
///   (every cell is class 1), so their regions outnumber their labels.
/// Anything else is an `unet::Error` naming the mask and its values ("unexpected mask values").
/// A data set whose index masks hold each class in one place per image (an organ per scan) with
/// values of `classes` or more reads as instance labels: the caller says what was recognised.
class MaskSurveyor {
 public:
  explicit MaskSurveyor(int64_t classes) : classes_(classes) {}
  /// Adds one mask (`where` names it in the evidence and errors); throws as `label_values`.
  void add(const RawImage& mask, const std::string& where);
  /// The decision over every mask added (an error as above; index when none was added).
  MaskSurvey result() const;

 private:
  int64_t classes_;
  int64_t masks_ = 0;
  bool binary_ = true;       ///< every mask holds only 0 and its full value
  bool full_seen_ = false;   ///< some mask holds its full value
  bool sixteen_bit_ = false;
  int64_t max_value_ = 0;
  int64_t labels_ = 0;   ///< distinct nonzero values, summed over masks
  int64_t regions_ = 0;  ///< 8-connected regions of one nonzero value, summed over masks
  std::string richest_where_;
  /// The first mask holding values neither binary nor below `classes_`, and its values.
  std::string odd_where_, odd_values_;
  int64_t richest_labels_ = -1;
  /// The value that forms the most regions in one mask, for the error.
  std::string scattered_where_;
  int64_t scattered_value_ = 0, scattered_regions_ = 0;
};

/// Surveys the masks of the data directory `dir` (ISBI `train-labels.tif`, or every file of
/// `masks/`), reading them once more than `load_dataset` does. Throws `unet::Error` as `load_dataset`
/// for a missing layout or unreadable masks.
MaskSurvey survey_masks(const std::string& dir, int64_t classes);

}  // namespace unet
