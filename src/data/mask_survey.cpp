// The encoding of a data set's masks, decided once from all of them (binary, class indices or
// instance labels): per-file decisions failed on instance labels and could read one data set two ways.
#include "unet/data/mask_survey.h"

#include "unet/data/components.h"

#include <ATen/ATen.h>

#include <filesystem>
#include <unordered_map>
#include <vector>

namespace unet {
namespace fs = std::filesystem;
namespace {

/// Per nonzero value of `labels` [H, W]: how many 8-connected regions it forms.
std::unordered_map<int64_t, int64_t> regions_per_value(const at::Tensor& labels) {
  const at::Tensor regions = connected_regions(labels, /*diagonal=*/true).contiguous();
  const at::Tensor values = labels.to(at::kLong).contiguous();
  const int64_t* r = regions.data_ptr<int64_t>();
  const int64_t* v = values.data_ptr<int64_t>();
  std::vector<bool> seen(static_cast<size_t>(regions.max().item<int64_t>() + 1), false);
  std::unordered_map<int64_t, int64_t> counts;
  for (int64_t i = 0; i < regions.numel(); ++i) {
    if (r[i] == 0 || seen[static_cast<size_t>(r[i])]) continue;
    seen[static_cast<size_t>(r[i])] = true;
    ++counts[v[i]];
  }
  return counts;
}

std::string value_list(const at::Tensor& values) {
  std::string s;
  const int64_t n = std::min<int64_t>(values.numel(), 6);
  for (int64_t i = 0; i < n; ++i) s += (i ? ", " : "") + std::to_string(values[i].item<int64_t>());
  return s + (values.numel() > n ? ", ..." : "");
}

}  // namespace

void MaskSurveyor::add(const RawImage& mask, const std::string& where) {
  const at::Tensor m = label_values(mask, where, "masks");
  ++masks_;
  if (m.numel() == 0) return;
  const bool eight_bit = mask.format == SampleFormat::kUInt8 || mask.format == SampleFormat::kInt8;
  const int64_t full = eight_bit ? 255 : 65535;
  sixteen_bit_ = sixteen_bit_ || !eight_bit;
  const at::Tensor values = std::get<0>(at::_unique(m, /*sorted=*/true));
  const int64_t top = values[-1].item<int64_t>();
  const bool binary = at::logical_or(values == 0, values == full).all().item<bool>();
  binary_ = binary_ && binary;
  full_seen_ = full_seen_ || top == full;
  max_value_ = std::max(max_value_, top);
  // The first mask that is neither binary nor class indices: what an error names.
  if (odd_where_.empty() && !binary && top >= classes_) {
    odd_where_ = where;
    odd_values_ = value_list(values);
  }
  const int64_t labels = values.numel() - (values[0].item<int64_t>() == 0 ? 1 : 0);
  labels_ += labels;
  if (labels > richest_labels_) {
    richest_labels_ = labels;
    richest_where_ = where;
  }
  for (const auto& [value, count] : regions_per_value(m.contiguous())) {
    regions_ += count;
    if (count > scattered_regions_) {
      scattered_regions_ = count;
      scattered_value_ = value;
      scattered_where_ = where;
    }
  }
}

MaskSurvey MaskSurveyor::result() const {
  MaskSurvey s;
  const std::string masks = std::to_string(masks_) + " mask" + (masks_ == 1 ? "" : "s");
  if (binary_ && full_seen_ && max_value_ > classes_ - 1) {
    s.encoding = MaskEncoding::kBinary;
    s.evidence = masks + " hold only 0 and " + std::to_string(max_value_);
    return s;
  }
  if (max_value_ < classes_) {
    s.encoding = MaskEncoding::kIndex;
    s.evidence = masks + " hold values 0 to " + std::to_string(max_value_);
    return s;
  }
  // Instance labels: about one connected region per label (a few objects cut in two allowed).
  if (2 * regions_ <= 3 * labels_) {
    s.encoding = MaskEncoding::kInstances;
    s.evidence = richest_where_ + " holds " + std::to_string(richest_labels_) + " labels; " + std::to_string(labels_) +
                 " labels in " + masks + " form " + std::to_string(regions_) + " connected regions" +
                 (sixteen_bit_ ? " (16-bit)" : "");
    return s;
  }
  const int64_t full = sixteen_bit_ ? 65535 : 255;
  // Few values: probably class indices of more classes.
  const std::string more = max_value_ < 32 ? " (more classes: " + std::to_string(max_value_ + 1) + " for these)" : "";
  throw Error(odd_where_ + ": unexpected mask values {" + odd_values_ + "}; expected 0/" + std::to_string(full) +
              ", class indices below " + std::to_string(classes_) + more +
              ", or instance labels, one connected region per object (here value " +
              std::to_string(scattered_value_) + " forms " + std::to_string(scattered_regions_) + " regions in " +
              scattered_where_ + ")");
}

MaskSurvey survey_masks(const std::string& dir, int64_t classes) {
  MaskSurveyor surveyor(classes);
  const fs::path root(dir);
  const fs::path labels = root / "train-labels.tif";
  if (data_layout(dir) == DataLayout::kIsbi) {
    const auto pages = read_tiff(labels.string());
    for (size_t i = 0; i < pages.size(); ++i) surveyor.add(pages[i], labels.string() + " (page " + std::to_string(i + 1) + ")");
    return surveyor.result();
  }
  const fs::path masks = root / "masks";
  if (!fs::is_directory(masks)) fail_file(masks.string(), "no such directory (the folder layout needs images/ and masks/)");
  for (const auto& file : image_files(masks.string())) {
    const auto pages = read_image_file(file);
    for (size_t i = 0; i < pages.size(); ++i)
      surveyor.add(pages[i], pages.size() > 1 ? file + " (page " + std::to_string(i + 1) + ")" : file);
  }
  return surveyor.result();
}

}  // namespace unet
