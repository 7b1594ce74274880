// Loading labelled data sets (ISBI layout or folders), mask decoding and the 5-fold split.
#include "unet/data/dataset.h"

#include "unet/data/instance_targets.h"
#include "unet/data/mask_survey.h"
#include "unet/data/preprocess.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <random>
#include <stdexcept>

namespace unet {
namespace fs = std::filesystem;
namespace {

Sample make_sample(const RawImage& raw, const std::string& file, int64_t page) {
  Sample s;
  s.image = normalise(raw);
  s.source = fs::path(file).filename().string();
  s.page = page;
  return s;
}

/// The image files of `dir`, sorted. A name that cannot be resolved (a symbolic-link loop) is an
/// error naming it; names without an image extension are ignored.
std::vector<std::string> image_files_in(const std::string& dir) {
  std::vector<std::string> files;
  std::error_code ec;
  fs::directory_iterator entries(dir, ec);
  if (ec) fail_file(dir, "cannot list the folder (" + ec.message() + ")");
  for (const auto& entry : entries) {
    const std::string path = entry.path().string();
    if (!has_image_extension(path)) continue;
    const fs::file_status status = entry.status(ec);
    if (ec) fail_file(path, "cannot read (" + ec.message() + ")");
    if (fs::is_regular_file(status)) files.push_back(path);
  }
  std::sort(files.begin(), files.end());
  return files;
}

void check_channels(const std::vector<Sample>& samples, const std::string& where) {
  for (const auto& s : samples) {
    if (s.image.size(0) != samples.front().image.size(0))
      throw Error(where + ": images have different channel counts (" + samples.front().name() + ": " +
                  std::to_string(samples.front().image.size(0)) + ", " + s.name() + ": " +
                  std::to_string(s.image.size(0)) + ")");
  }
}

/// How a data set's masks are read: their encoding, and the classes instance labels become.
struct MaskReading {
  int64_t classes;
  MaskEncoding encoding;
  InstanceTargets targets;
};

void attach_mask(Sample& sample, const RawImage& mask, const MaskReading& how, const std::string& where) {
  if (mask.height() != sample.image.size(1) || mask.width() != sample.image.size(2))
    throw Error(where + ": mask is " + std::to_string(mask.width()) + "x" + std::to_string(mask.height()) +
                " but its image " + sample.name() + " is " + std::to_string(sample.image.size(2)) + "x" +
                std::to_string(sample.image.size(1)));
  if (how.encoding == MaskEncoding::kInstances) {
    attach_instances(sample, decode_instance_mask(mask, where), how.classes, how.targets);
  } else {
    sample.mask = decode_mask(mask, how.classes, how.encoding, where);
  }
}

DataSet load_isbi(const std::string& dir, const MaskReading& how) {
  const std::string volume = (fs::path(dir) / "train-volume.tif").string();
  const std::string labels = (fs::path(dir) / "train-labels.tif").string();
  const std::string test = (fs::path(dir) / "test-volume.tif").string();
  DataSet data;
  const auto images = read_tiff(volume);
  const auto masks = read_tiff(labels);
  if (images.size() != masks.size())
    fail_file(labels, std::to_string(masks.size()) + " pages, but " + volume + " has " + std::to_string(images.size()));
  for (size_t i = 0; i < images.size(); ++i) {
    Sample s = make_sample(images[i], volume, static_cast<int64_t>(i));
    attach_mask(s, masks[i], how, labels + " (page " + std::to_string(i + 1) + ")");
    data.train.push_back(std::move(s));
  }
  if (fs::exists(test)) {
    const auto pages = read_tiff(test);
    for (size_t i = 0; i < pages.size(); ++i) data.test.push_back(make_sample(pages[i], test, static_cast<int64_t>(i)));
  }
  data.description = "ISBI layout in " + dir;
  return data;
}

DataSet load_folders(const std::string& dir, const MaskReading& how) {
  const fs::path images_dir = fs::path(dir) / "images", masks_dir = fs::path(dir) / "masks";
  if (!fs::is_directory(masks_dir)) fail_file(masks_dir.string(), "no such directory (the folder layout needs images/ and masks/)");
  std::map<std::string, std::string> masks_by_stem;
  for (const auto& m : image_files_in(masks_dir.string())) {
    const std::string stem = fs::path(m).stem().string();
    if (masks_by_stem.count(stem)) fail_file(m, "a second mask for '" + stem + "' (" + masks_by_stem[stem] + ")");
    masks_by_stem[stem] = m;
  }
  DataSet data;
  const auto image_files = image_files_in(images_dir.string());
  if (image_files.empty()) fail_file(images_dir.string(), "no .tif, .tiff or .png images");
  for (const auto& file : image_files) {
    const std::string stem = fs::path(file).stem().string();
    const auto it = masks_by_stem.find(stem);
    if (it == masks_by_stem.end()) fail_file(file, "no mask with the same name in " + masks_dir.string());
    const auto pages = read_image_file(file);
    const auto mask_pages = read_image_file(it->second);
    if (pages.size() != mask_pages.size())
      fail_file(it->second, std::to_string(mask_pages.size()) + " pages, but " + file + " has " + std::to_string(pages.size()));
    for (size_t i = 0; i < pages.size(); ++i) {
      Sample s = make_sample(pages[i], file, pages.size() > 1 ? static_cast<int64_t>(i) : -1);
      attach_mask(s, mask_pages[i], how, it->second);
      data.train.push_back(std::move(s));
    }
    masks_by_stem.erase(it);
  }
  if (!masks_by_stem.empty()) fail_file(masks_by_stem.begin()->second, "no image with the same name in " + images_dir.string());
  const fs::path test_dir = fs::path(dir) / "test";
  if (fs::is_directory(test_dir)) data.test = load_images(test_dir.string());
  data.description = "folder layout in " + dir;
  data.layout = DataLayout::kFolder;
  return data;
}

}  // namespace

const EnumNames<MaskEncoding>& mask_encoding_names() {
  static const EnumNames<MaskEncoding> names = {
      {"auto", MaskEncoding::kAuto}, {"binary", MaskEncoding::kBinary}, {"index", MaskEncoding::kIndex},
      {"instances", MaskEncoding::kInstances}};
  return names;
}

MaskEncoding parse_mask_encoding(const std::string& text) {
  return parse_name(mask_encoding_names(), "mask_encoding", text);
}

at::Tensor decode_mask(const RawImage& mask, int64_t classes, MaskEncoding encoding, const std::string& where) {
  if (encoding == MaskEncoding::kInstances) throw std::invalid_argument("decode_mask: instance masks go through attach_instances");
  // Grayscale masks saved as RGB are accepted when every channel agrees; signed masks read as
  // their values, negative ones refused.
  const at::Tensor m = label_values(mask, where, "masks");
  const bool eight_bit = mask.format == SampleFormat::kUInt8 || mask.format == SampleFormat::kInt8;
  const int64_t full = eight_bit ? 255 : 65535;
  const at::Tensor values = std::get<0>(at::_unique(m, /*sorted=*/true));
  const int64_t max_value = values.max().item<int64_t>();
  auto value_list = [&] {
    std::string s;
    const int64_t n = std::min<int64_t>(values.numel(), 6);
    for (int64_t i = 0; i < n; ++i) s += (i ? ", " : "") + std::to_string(values[i].item<int64_t>());
    return s + (values.numel() > n ? ", ..." : "");
  };
  const bool binary_values = at::logical_or(values == 0, values == full).all().item<bool>();
  if (encoding == MaskEncoding::kBinary || (encoding == MaskEncoding::kAuto && binary_values && max_value > classes - 1)) {
    if (classes != 2) throw Error(where + ": binary (0/" + std::to_string(full) + ") masks need exactly 2 classes");
    if (!binary_values)
      throw Error(where + ": unexpected mask values {" + value_list() + "}; binary masks hold only 0 and " + std::to_string(full));
    return (m == full).to(at::kLong);
  }
  if (max_value >= classes || values.min().item<int64_t>() < 0)
    throw Error(where + ": unexpected mask values {" + value_list() + "}; expected 0/" + std::to_string(full) +
                " or class indices below " + std::to_string(classes) + " (instance labels: mask encoding 'instances')");
  return m;
}

void attach_instances(Sample& sample, const at::Tensor& labels, int64_t classes, const InstanceTargets& targets) {
  sample.instances = labels;
  sample.mask = instance_targets(labels, classes, targets);
}

DataLayout data_layout(const std::string& dir) {
  if (!fs::exists(dir)) fail_file(dir, "no such data directory");
  if (!fs::is_directory(dir)) fail_file(dir, "not a directory");
  if (fs::exists(fs::path(dir) / "train-volume.tif") || fs::exists(fs::path(dir) / "train-labels.tif")) return DataLayout::kIsbi;
  if (fs::is_directory(fs::path(dir) / "images")) return DataLayout::kFolder;
  fail_file(dir, "neither the ISBI layout (train-volume.tif, train-labels.tif) nor the folder layout (images/, masks/)");
}

DataSet load_dataset(const std::string& dir, int64_t classes, MaskEncoding encoding, const InstanceTargets& targets) {
  const DataLayout layout = data_layout(dir);
  // One decision for the whole data set: a file of instance labels must not read as bad class indices.
  if (encoding == MaskEncoding::kAuto) encoding = survey_masks(dir, classes).encoding;
  if (encoding == MaskEncoding::kInstances) require_instance_targets(classes, targets);
  const MaskReading how{classes, encoding, targets};
  DataSet data = layout == DataLayout::kIsbi ? load_isbi(dir, how) : load_folders(dir, how);
  if (data.train.empty()) fail_file(dir, "no labelled images");
  if (encoding == MaskEncoding::kInstances) data.scheme = instance_scheme(classes, targets);
  check_channels(data.train, dir);
  data.channels = data.train.front().image.size(0);
  for (const auto& s : data.test) {
    if (s.image.size(0) != data.channels)
      throw Error(s.name() + ": " + std::to_string(s.image.size(0)) + " channels, but the training images have " +
                  std::to_string(data.channels));
  }
  return data;
}

std::vector<Sample> load_images(const std::string& path) {
  std::vector<Sample> samples;
  if (fs::is_directory(path)) {
    for (const auto& file : image_files_in(path)) {
      const auto pages = read_image_file(file);
      for (size_t i = 0; i < pages.size(); ++i)
        samples.push_back(make_sample(pages[i], file, pages.size() > 1 ? static_cast<int64_t>(i) : -1));
    }
    if (samples.empty()) fail_file(path, "no .tif, .tiff or .png images");
  } else {
    const auto pages = read_image_file(path);
    for (size_t i = 0; i < pages.size(); ++i)
      samples.push_back(make_sample(pages[i], path, pages.size() > 1 ? static_cast<int64_t>(i) : -1));
  }
  check_channels(samples, path);
  return samples;
}

std::vector<std::string> image_files(const std::string& path) {
  std::error_code ec;
  return fs::is_directory(path, ec) ? image_files_in(path) : std::vector<std::string>{path};
}

std::vector<std::string> dataset_files(const std::string& dir) {
  std::error_code ec;
  const fs::path d(dir);
  std::vector<std::string> files;
  const auto add_folder = [&](const fs::path& folder) {
    if (!fs::is_directory(folder, ec)) return;
    for (auto& f : image_files_in(folder.string())) files.push_back(std::move(f));
  };
  for (const char* name : {"train-volume.tif", "train-labels.tif", "test-volume.tif"}) files.push_back((d / name).string());
  for (const char* folder : {"images", "masks", "test"}) add_folder(d / folder);
  return files;
}

int fold_count(double ratio) { return static_cast<int>(std::lround(1.0 / (1.0 - ratio))); }

FoldSplit fold_split(int64_t count, int fold, uint64_t seed, double ratio) {
  const int folds = fold_count(ratio);
  if (fold < -1 || fold >= folds)
    throw OptionError("fold", " " + std::to_string(fold) + ": expected 0 to " + std::to_string(folds - 1) + " or 'none'");
  std::vector<int64_t> order(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) order[i] = i;
  // NumPy's legacy seeding of an integer is MT19937's init_genrand, as std::mt19937's constructor;
  // its shuffle is Fisher-Yates drawing j in [0, i] by masked rejection sampling of 32-bit words.
  std::mt19937 mt(static_cast<uint32_t>(seed));
  for (int64_t i = count - 1; i > 0; --i) {
    uint64_t mask = static_cast<uint64_t>(i);
    for (int shift = 1; shift <= 32; shift <<= 1) mask |= mask >> shift;
    uint64_t j;
    do {
      j = mt() & mask;
    } while (j > static_cast<uint64_t>(i));
    std::swap(order[i], order[j]);
  }
  FoldSplit split;
  if (fold < 0) {
    split.train = order;
    return split;
  }
  const auto n_train = static_cast<int64_t>(std::llround(ratio * static_cast<double>(count)));
  const int64_t shift = (static_cast<int64_t>(fold) * (count - n_train)) % std::max<int64_t>(count, 1);
  std::rotate(order.begin(), order.end() - shift, order.end());
  split.train.assign(order.begin(), order.begin() + n_train);
  split.eval.assign(order.begin() + n_train, order.end());
  return split;
}

int parse_fold(const std::string& text) {
  if (text == "none" || text == "None") return -1;
  const bool digits = !text.empty() && text.size() < 4 && text.find_first_not_of("0123456789") == std::string::npos;
  if (digits && std::stoi(text) < fold_count()) return std::stoi(text);
  throw OptionError("fold", " " + text + ": expected 0 to " + std::to_string(fold_count() - 1) + " or 'none'");
}

std::vector<Sample> select(const std::vector<Sample>& samples, const std::vector<int64_t>& indices) {
  std::vector<Sample> out;
  out.reserve(indices.size());
  for (const int64_t i : indices) out.push_back(samples.at(static_cast<size_t>(i)));
  return out;
}

}  // namespace unet
