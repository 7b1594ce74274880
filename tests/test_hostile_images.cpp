// Tests of image files that used to be misread without a word: signed integer TIFFs (read as
// unsigned), MinIsWhite TIFFs (not inverted) and float TIFFs with NaN or infinite pixels (set to 0).
#include "test_support.h"

#include "unet/data/dataset.h"
#include "unet/data/image_io.h"
#include "unet/data/instance_targets.h"
#include "unet/runtime/error.h"

#include <ATen/ATen.h>
#include <tiffio.h>

#include <filesystem>
#include <functional>
#include <limits>

using namespace unet;
using unet::test::expect_one_line_error;
using unet::test::run_unet;
using unet::test::TempDir;
namespace fs = std::filesystem;

namespace {

/// The tiny network's training flags; kSynthetic adds the built-in data.
const std::string kTiny = " --depth 2 --filters 4 --input-size 60 --threads 1 --batch-size 2 --quiet --max-steps 1 ";
const std::string kSynthetic = " --synthetic-size 64 --synthetic-count 6 ";

/// Writes `pages` (each [H, W]: uint8, int8, int16 or float32) as a one-channel TIFF with libtiff,
/// with the given SampleFormat and PhotometricInterpretation tags.
void write_raw_tiff(const std::string& path, const std::vector<at::Tensor>& pages, uint16_t sample_format,
                    uint16_t photometric = PHOTOMETRIC_MINISBLACK) {
  TIFF* t = TIFFOpen(path.c_str(), "w");
  ASSERT_NE(t, nullptr) << path;
  for (const at::Tensor& page_in : pages) {
    const at::Tensor page = page_in.contiguous();
    const auto h = static_cast<uint32_t>(page.size(0)), w = static_cast<uint32_t>(page.size(1));
    const auto bytes = static_cast<uint16_t>(page.element_size());
    TIFFSetField(t, TIFFTAG_IMAGEWIDTH, w);
    TIFFSetField(t, TIFFTAG_IMAGELENGTH, h);
    TIFFSetField(t, TIFFTAG_BITSPERSAMPLE, static_cast<uint16_t>(bytes * 8));
    TIFFSetField(t, TIFFTAG_SAMPLESPERPIXEL, 1);
    TIFFSetField(t, TIFFTAG_SAMPLEFORMAT, sample_format);
    TIFFSetField(t, TIFFTAG_PHOTOMETRIC, photometric);
    TIFFSetField(t, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
    TIFFSetField(t, TIFFTAG_COMPRESSION, COMPRESSION_NONE);
    TIFFSetField(t, TIFFTAG_ROWSPERSTRIP, h);
    if (pages.size() > 1) TIFFSetField(t, TIFFTAG_SUBFILETYPE, FILETYPE_PAGE);
    const auto* base = static_cast<const uint8_t*>(page.data_ptr());
    for (uint32_t row = 0; row < h; ++row)
      ASSERT_GE(TIFFWriteScanline(t, const_cast<uint8_t*>(base) + static_cast<size_t>(row) * w * bytes, row, 0), 0);
    ASSERT_TRUE(TIFFWriteDirectory(t));
  }
  TIFFClose(t);
}

/// Blobs on a 64 x 64 grid: label k + 1 in the k-th 16 x 16 cell with k even, 0 elsewhere (int64).
at::Tensor blob_labels() {
  at::Tensor labels = at::zeros({64, 64}, at::kLong);
  for (int64_t k = 0; k < 16; k += 2) labels.narrow(0, (k / 4) * 16 + 2, 12).narrow(1, (k % 4) * 16 + 2, 12).fill_(k + 1);
  return labels;
}

/// A folder data set in `dir` (images/, masks/) of five 64 x 64 8-bit images named a..e; each mask
/// is written by `write_mask(path, index)`. Returns the path of the mask of image `c`.
std::string make_folder_dataset(const std::string& dir, const std::function<void(const std::string&, int)>& write_mask) {
  fs::create_directories(dir + "/images");
  fs::create_directories(dir + "/masks");
  const std::string names = "abcde";
  for (int i = 0; i < 5; ++i) {
    const std::string stem(1, names[static_cast<size_t>(i)]);
    const at::Tensor image = (blob_labels() > 0).to(at::kByte).mul(200).add(20 + i);
    write_raw_tiff(dir + "/images/" + stem + ".tif", {image}, SAMPLEFORMAT_UINT);
    write_mask(dir + "/masks/" + stem + ".tif", i);
  }
  return dir + "/masks/c.tif";
}

/// Trains the tiny network on synthetic data into `model_dir`.
void train_tiny(const std::string& model_dir) {
  const auto r = run_unet("train" + kTiny + kSynthetic + "--model-dir " + model_dir);
  ASSERT_EQ(r.exit_code, 0) << r.err;
}

/// Runs predict on `input` and expects one line naming it and NaN, and no prediction files.
void expect_predict_refuses(const std::string& model, const std::string& input, const std::string& out,
                            const std::string& expected) {
  const auto r = run_unet("predict --model-dir " + model + " --input " + input + " --output-dir " + out + " --no-overlays --quiet");
  expect_one_line_error(r, input + ": " + expected);
  if (fs::exists(out)) EXPECT_TRUE(fs::is_empty(out)) << out << " holds files after a refused prediction";
}

}  // namespace

// (a) A signed 16-bit instance mask with a -3: refused before the model folder is touched (it
// used to read as 65533, one more object).
TEST(HostileImages, SignedInstanceMaskWithNegativeLabelIsRefused) {
  TempDir dir;
  const std::string bad = make_folder_dataset(dir.file("data"), [](const std::string& path, int i) {
    at::Tensor labels = blob_labels().to(at::kShort);
    if (i == 2) labels[40][40] = -3;
    write_raw_tiff(path, {labels}, SAMPLEFORMAT_INT);
  });
  const std::string model = dir.file("model");
  const auto r = run_unet("train --data-dir " + dir.file("data") + " --mask-encoding instances --classes 3" + kTiny +
                          "--model-dir " + model);
  expect_one_line_error(r, bad + ": negative label -3 (1 negative pixel)");
  EXPECT_FALSE(fs::exists(model)) << "the model folder was created by a refused run";
}

// (b) Signed 16-bit intensities keep their order: -32768 the darkest, 32767 the brightest.
TEST(HostileImages, Signed16BitImageKeepsItsOrder) {
  TempDir dir;
  const at::Tensor stored = at::tensor({-32768, -1000, -1, 0, 1, 32767}, at::kShort).view({1, 6});
  write_raw_tiff(dir.file("signed.tif"), {stored}, SAMPLEFORMAT_INT);
  const auto pages = read_image_file(dir.file("signed.tif"));
  ASSERT_EQ(pages.size(), 1u);
  EXPECT_EQ(pages[0].format, SampleFormat::kInt16);
  EXPECT_TRUE(at::equal(pages[0].pixels[0].to(at::kLong), stored.to(at::kLong))) << pages[0].pixels;
  const at::Tensor unit = to_unit_range(pages[0])[0][0];
  EXPECT_FLOAT_EQ(unit[0].item<float>(), 0.0f);
  EXPECT_FLOAT_EQ(unit[5].item<float>(), 1.0f);
  for (int64_t i = 1; i < 6; ++i) EXPECT_LT(unit[i - 1].item<float>(), unit[i].item<float>()) << "position " << i;
  // Signed 8-bit the same way: -128 -> 0, 127 -> 1.
  const RawImage eight{at::tensor({-128, 0, 127}, at::kChar).view({1, 1, 3}), SampleFormat::kInt8};
  EXPECT_TRUE(at::allclose(to_unit_range(eight), at::tensor({0.0f, 128.0f / 255.0f, 1.0f}).view({1, 1, 3})));
}

// (b) Non-negative signed labels read as their values: an int8 mask of 0 and 1 loads and trains.
TEST(HostileImages, SignedEightBitMaskOfZerosAndOnesTrains) {
  TempDir dir;
  make_folder_dataset(dir.file("data"), [](const std::string& path, int) {
    write_raw_tiff(path, {(blob_labels() > 0).to(at::kChar)}, SAMPLEFORMAT_INT);
  });
  const DataSet data = load_dataset(dir.file("data"), 2);
  ASSERT_EQ(data.train.size(), 5u);
  EXPECT_TRUE(at::equal(data.train[0].mask, (blob_labels() > 0).to(at::kLong)));
  const auto r = run_unet("train --data-dir " + dir.file("data") + kTiny + "--model-dir " + dir.file("model"));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  // A negative class index in a signed mask is refused like a negative instance label.
  const RawImage negative{at::tensor({0, 1, -3, 1}, at::kInt).view({1, 2, 2}), SampleFormat::kInt16};
  try {
    decode_mask(negative, 2, MaskEncoding::kAuto, "labels.tif");
    FAIL() << "-3 is no class index";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("labels.tif: negative label -3"), std::string::npos) << e.what();
  }
}

// (c) A MinIsWhite 8-bit image reads inverted: the stored 0 is white, the brightest.
TEST(HostileImages, MinIsWhiteImageReadsInverted) {
  TempDir dir;
  const at::Tensor stored = at::tensor({0, 100, 255}, at::kByte).view({1, 3});
  write_raw_tiff(dir.file("white.tif"), {stored}, SAMPLEFORMAT_UINT, PHOTOMETRIC_MINISWHITE);
  const auto pages = read_image_file(dir.file("white.tif"));
  ASSERT_EQ(pages.size(), 1u);
  EXPECT_TRUE(pages[0].min_is_white);
  EXPECT_TRUE(at::equal(pages[0].pixels, at::tensor({255, 155, 0}, at::kByte).view({1, 1, 3}))) << pages[0].pixels;
  const at::Tensor unit = to_unit_range(pages[0]);
  EXPECT_FLOAT_EQ(unit[0][0][0].item<float>(), 1.0f);
  EXPECT_FLOAT_EQ(unit[0][0][2].item<float>(), 0.0f);
}

// (c) A MinIsWhite mask is refused: its stored and displayed labels differ.
TEST(HostileImages, MinIsWhiteMaskIsRefused) {
  TempDir dir;
  const std::string bad = make_folder_dataset(dir.file("data"), [](const std::string& path, int i) {
    write_raw_tiff(path, {(blob_labels() > 0).to(at::kByte).mul(255)}, SAMPLEFORMAT_UINT,
                   i == 2 ? PHOTOMETRIC_MINISWHITE : PHOTOMETRIC_MINISBLACK);
  });
  const std::string model = dir.file("model");
  expect_one_line_error(run_unet("train --data-dir " + dir.file("data") + kTiny + "--model-dir " + model),
                        bad + ": MinIsWhite (inverted) masks are not supported: save as MinIsBlack");
  EXPECT_FALSE(fs::exists(model));
  expect_one_line_error(run_unet("train --data-dir " + dir.file("data") + " --mask-encoding instances" + kTiny +
                                 "--model-dir " + model),
                        bad + ": MinIsWhite (inverted) instance masks are not supported");
  EXPECT_FALSE(fs::exists(model));
}

// (d) NaN and +Inf float pixels: predict refuses the file with one line naming it and the page,
// and writes no prediction (they used to become 0 without a word).
TEST(HostileImages, FloatImagesWithNaNOrInfinityAreRefused) {
  TempDir dir;
  const std::string model = dir.file("model");
  train_tiny(model);
  const at::Tensor good = at::rand({64, 64});
  at::Tensor nan_page = good.clone(), inf_page = good.clone();
  nan_page[3][5] = std::numeric_limits<float>::quiet_NaN();
  inf_page[7][7] = std::numeric_limits<float>::infinity();
  write_raw_tiff(dir.file("nan.tif"), {good, nan_page}, SAMPLEFORMAT_IEEEFP);
  write_raw_tiff(dir.file("inf.tif"), {inf_page}, SAMPLEFORMAT_IEEEFP);
  expect_predict_refuses(model, dir.file("nan.tif"), dir.file("out-nan"), "page 2: 1 NaN or infinite pixel;");
  expect_predict_refuses(model, dir.file("inf.tif"), dir.file("out-inf"), "page 1: 1 NaN or infinite pixel;");
  // The normalisation refuses them too (images that do not come from a file).
  const RawImage raw{nan_page.unsqueeze(0), SampleFormat::kFloat32};
  EXPECT_THROW(to_unit_range(raw), Error);
}

TEST(HostileImages, ScoreReadsItsLabelImagesAsTrainingDoes) {
  TempDir dir;
  const at::Tensor labels = blob_labels();
  write_raw_tiff(dir.file("pred.tif"), {labels.to(at::kShort)}, SAMPLEFORMAT_INT);
  // A signed truth with a negative label, a MinIsWhite truth, and a signed --instances prediction.
  write_raw_tiff(dir.file("negative.tif"), {labels.to(at::kShort).sub(1)}, SAMPLEFORMAT_INT);
  write_raw_tiff(dir.file("white.tif"), {labels.gt(0).to(at::kByte).mul(255)}, SAMPLEFORMAT_UINT, PHOTOMETRIC_MINISWHITE);
  write_raw_tiff(dir.file("truth.tif"), {labels.gt(0).to(at::kByte).mul(255)}, SAMPLEFORMAT_UINT);
  expect_one_line_error(run_unet("score --prediction " + dir.file("pred.tif") + " --truth " + dir.file("negative.tif")),
                        "negative.tif: negative label -1");
  expect_one_line_error(run_unet("score --prediction " + dir.file("pred.tif") + " --truth " + dir.file("white.tif")),
                        "white.tif: MinIsWhite (inverted) truth masks are not supported");
  expect_one_line_error(run_unet("score --instances --prediction " + dir.file("negative.tif") + " --truth " + dir.file("truth.tif")),
                        "negative.tif: negative label -1");
  const auto ok = run_unet("score --instances --prediction " + dir.file("pred.tif") + " --truth " + dir.file("truth.tif"));
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_NE(ok.out.find("8 true, 8 predicted"), std::string::npos) << ok.out;
}
