// Tests of TIFF and PNG reading and writing: round trips of every supported format, bad files.
#include "test_support.h"

#include "unet/data/image_io.h"
#include "unet/runtime/error.h"

#include <ATen/ATen.h>

using namespace unet;
using unet::test::TempDir;

namespace {

std::vector<at::Tensor> random_pages(at::ScalarType type, int64_t channels, int pages) {
  std::vector<at::Tensor> out;
  for (int i = 0; i < pages; ++i) {
    // Odd, non-square sizes catch row-stride mistakes; each page differs.
    if (type == at::kFloat) out.push_back(at::rand({channels, 37 + i, 53}) * 100 - 20);
    else if (type == at::kInt) out.push_back(at::randint(0, 65536, {channels, 37 + i, 53}, at::kInt));
    else out.push_back(at::randint(0, 256, {channels, 37 + i, 53}, at::kByte));
  }
  return out;
}

void expect_round_trip(const std::vector<at::Tensor>& pages, const std::vector<RawImage>& read, SampleFormat format) {
  ASSERT_EQ(read.size(), pages.size());
  for (size_t i = 0; i < pages.size(); ++i) {
    EXPECT_EQ(read[i].format, format);
    EXPECT_TRUE(at::equal(read[i].pixels, pages[i])) << "page " << i;
  }
}

}  // namespace

TEST(Tiff, MultiPage8BitRoundTrip) {
  TempDir dir;
  const auto pages = random_pages(at::kByte, 1, 3);
  write_tiff(dir.file("a.tif"), pages, /*deflate=*/false);
  expect_round_trip(pages, read_tiff(dir.file("a.tif")), SampleFormat::kUInt8);
}

TEST(Tiff, Compressed16BitRoundTripKeepsValuesAbove32767) {
  TempDir dir;
  auto pages = random_pages(at::kInt, 1, 2);
  pages[0][0][0][0] = 65535;
  pages[0][0][0][1] = 40000;
  write_tiff(dir.file("b.tif"), pages, /*deflate=*/true);
  expect_round_trip(pages, read_tiff(dir.file("b.tif")), SampleFormat::kUInt16);
}

TEST(Tiff, Float32AndRgbRoundTrip) {
  TempDir dir;
  const auto floats = random_pages(at::kFloat, 1, 2);
  write_tiff(dir.file("f.tif"), floats);
  expect_round_trip(floats, read_tiff(dir.file("f.tif")), SampleFormat::kFloat32);
  const auto rgb = random_pages(at::kByte, 3, 1);
  write_tiff(dir.file("rgb.tif"), rgb);
  expect_round_trip(rgb, read_tiff(dir.file("rgb.tif")), SampleFormat::kUInt8);
}

TEST(Tiff, ReadsTheIsbiStack) {
  const std::string dir = unet::test::isbi_dir();
  if (dir.empty()) GTEST_SKIP() << "ISBI 2012 data not found (set UNET_ISBI_DIR); skipping";
  const auto pages = read_tiff(dir + "/train-labels.tif");
  ASSERT_EQ(pages.size(), 30u);
  EXPECT_EQ(pages[0].pixels.sizes(), (std::vector<int64_t>{1, 512, 512}));
  // Labels are 0 (membrane, about 22%) and 255.
  const double membrane = (pages[0].pixels == 0).to(at::kDouble).mean().item<double>();
  EXPECT_GT(membrane, 0.1);
  EXPECT_LT(membrane, 0.4);
  EXPECT_EQ(((pages[0].pixels == 0) | (pages[0].pixels == 255)).all().item<bool>(), true);
}

TEST(Png, EightAndSixteenBitGrayAndRgbRoundTrip) {
  TempDir dir;
  const auto gray = random_pages(at::kByte, 1, 1)[0];
  write_png(dir.file("g.png"), gray);
  EXPECT_TRUE(at::equal(read_png(dir.file("g.png")).pixels, gray));
  const auto deep = random_pages(at::kInt, 1, 1)[0];
  write_png(dir.file("d.png"), deep);
  const RawImage d = read_png(dir.file("d.png"));
  EXPECT_EQ(d.format, SampleFormat::kUInt16);
  EXPECT_TRUE(at::equal(d.pixels, deep));
  const auto rgb = random_pages(at::kByte, 3, 1)[0];
  write_png(dir.file("c.png"), rgb);
  EXPECT_TRUE(at::equal(read_image_file(dir.file("c.png"))[0].pixels, rgb));
}

TEST(ImageIo, FormatIsChosenByContentNotName) {
  TempDir dir;
  const auto gray = random_pages(at::kByte, 1, 1)[0];
  write_png(dir.file("actually_png.tif"), gray);
  EXPECT_TRUE(at::equal(read_image_file(dir.file("actually_png.tif"))[0].pixels, gray));
}

TEST(ImageIo, BadFilesGiveOneLineErrorsNamingTheFile) {
  TempDir dir;
  unet::test::write_file(dir.file("text.tif"), "this is not an image\n");
  const auto pages = random_pages(at::kByte, 1, 2);
  write_tiff(dir.file("good.tif"), pages, false);
  std::string bytes = unet::test::read_file(dir.file("good.tif"));
  unet::test::write_file(dir.file("truncated.tif"), bytes.substr(0, bytes.size() / 3));
  for (const std::string name : {"text.tif", "truncated.tif", "missing.tif"}) {
    try {
      read_tiff(dir.file(name));
      ADD_FAILURE() << name << " must not load";
    } catch (const Error& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find(dir.file(name)), std::string::npos) << m;
      EXPECT_EQ(m.find('\n'), std::string::npos) << m;
    }
  }
  EXPECT_THROW(read_png(dir.file("text.tif")), Error);
}

TEST(ImageIo, UnitRangeByFormat) {
  RawImage a{at::tensor({0, 255}, at::kByte).view({1, 1, 2}), SampleFormat::kUInt8};
  EXPECT_TRUE(at::allclose(to_unit_range(a), at::tensor({0.0f, 1.0f}).view({1, 1, 2})));
  RawImage b{at::tensor({0, 65535}, at::kInt).view({1, 1, 2}), SampleFormat::kUInt16};
  EXPECT_TRUE(at::allclose(to_unit_range(b), at::tensor({0.0f, 1.0f}).view({1, 1, 2})));
  RawImage c{at::tensor({-2.0f, 6.0f, 2.0f}).view({1, 1, 3}), SampleFormat::kFloat32};
  EXPECT_TRUE(at::allclose(to_unit_range(c), at::tensor({0.0f, 1.0f, 0.5f}).view({1, 1, 3})));
}
