// PNG reading and writing through libpng, format detection, and intensity normalisation.
#include "unet/runtime/error.h"
#include "unet/data/image_io.h"
#include "unet/runtime/files.h"

#include <ATen/ATen.h>
#include <png.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <csetjmp>
#include <cstdio>
#include <memory>

namespace unet {
namespace {

struct FileCloser {
  void operator()(FILE* f) const {
    if (f) std::fclose(f);
  }
};
using FilePtr = std::unique_ptr<FILE, FileCloser>;

void png_error_to_exception(png_structp png, png_const_charp message) {
  auto* text = static_cast<std::string*>(png_get_error_ptr(png));
  if (text) *text = message;
  png_longjmp(png, 1);
}
void png_ignore_warning(png_structp, png_const_charp) {}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::atomic<int64_t> g_max_image_pixels{int64_t{1} << 28};

}  // namespace

int64_t max_image_pixels() { return g_max_image_pixels.load(); }

void set_max_image_pixels(int64_t pixels) {
  require_option(pixels >= 1, "max_image_pixels", "must be at least 1", pixels);
  g_max_image_pixels = pixels;
}

RawImage read_png(const std::string& path) {
  require_readable_file(path);
  FilePtr file(std::fopen(path.c_str(), "rb"));
  if (!file) fail_file(path, "cannot open");
  unsigned char signature[8] = {0};
  if (std::fread(signature, 1, 8, file.get()) != 8 || png_sig_cmp(signature, 0, 8) != 0)
    fail_file(path, "not a PNG file");
  std::string error;
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &error, png_error_to_exception, png_ignore_warning);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  if (!png || !info) fail_file(path, "out of memory reading PNG");
  // Everything with a destructor lives before setjmp: a longjmp must not skip destructors.
  at::Tensor hwc;
  RawImage image;
  std::vector<png_bytep> rows;
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, nullptr);
    fail_file(path, "damaged PNG (" + error + ")");
  }
  png_init_io(png, file.get());
  png_set_sig_bytes(png, 8);
  png_set_user_limits(png, 1u << 24, 1u << 24);
  png_set_chunk_malloc_max(png, 64u << 20);
  png_read_info(png, info);
  {
    const uint32_t w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    if (static_cast<int64_t>(w) * h > max_image_pixels()) {
      png_destroy_read_struct(&png, &info, nullptr);
      throw OptionError("", path + ": declares " + std::to_string(w) + "x" + std::to_string(h) +
                                " pixels, more than the limit of " + std::to_string(max_image_pixels()) +
                                " ({max_image_pixels})");
    }
  }
  const int color = png_get_color_type(png, info);
  const int depth = png_get_bit_depth(png, info);
  // An opaque palette image keeps its indices (a class mask's values) and its colours.
  const bool keep_palette = color == PNG_COLOR_TYPE_PALETTE && !png_get_valid(png, info, PNG_INFO_tRNS);
  if (keep_palette) {
    png_colorp colours = nullptr;
    int count = 0;
    png_get_PLTE(png, info, &colours, &count);
    image.palette = at::empty({count, 3}, at::kByte);
    auto* rgb = image.palette.data_ptr<uint8_t>();
    for (int i = 0; i < count; ++i) {
      rgb[3 * i] = colours[i].red;
      rgb[3 * i + 1] = colours[i].green;
      rgb[3 * i + 2] = colours[i].blue;
    }
    if (depth < 8) png_set_packing(png);
  } else if (color == PNG_COLOR_TYPE_PALETTE) {
    png_set_palette_to_rgb(png);
  }
  if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  if (!keep_palette && png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png);
  if (depth == 16) png_set_swap(png);  // PNG stores big-endian
  png_read_update_info(png, info);
  const auto width = static_cast<int64_t>(png_get_image_width(png, info));
  const auto height = static_cast<int64_t>(png_get_image_height(png, info));
  const int channels = png_get_channels(png, info);
  const int out_depth = png_get_bit_depth(png, info);
  hwc = at::empty({height, width, channels}, at::TensorOptions(out_depth == 16 ? at::kShort : at::kByte));
  rows.resize(static_cast<size_t>(height));
  const size_t row_bytes = png_get_rowbytes(png, info);
  for (int64_t r = 0; r < height; ++r) rows[r] = static_cast<png_bytep>(hwc.data_ptr()) + r * row_bytes;
  png_read_image(png, rows.data());
  png_read_end(png, nullptr);
  png_destroy_read_struct(&png, &info, nullptr);
  at::Tensor chw = hwc.permute({2, 0, 1}).contiguous();
  if (out_depth == 16) {
    image.format = SampleFormat::kUInt16;
    chw = chw.to(at::kInt).bitwise_and(0xFFFF);
  }
  image.pixels = chw;
  // Indices beyond the palette are damage (libpng leaves them to the reader).
  if (image.palette.defined() && chw.numel() > 0 && chw.max().item<int64_t>() >= image.palette.size(0))
    fail_file(path, "damaged PNG (a pixel indexes beyond the palette)");
  return image;
}

void write_png(const std::string& path, const at::Tensor& image_in, const at::Tensor& palette_in) {
  at::Tensor image = image_in.dim() == 2 ? image_in.unsqueeze(0) : image_in;
  TORCH_CHECK(image.dim() == 3, "write_png: expected [C, H, W] or [H, W]");
  const int64_t c = image.size(0), h = image.size(1), w = image.size(2);
  TORCH_CHECK(c >= 1 && c <= 4, "write_png: 1 to 4 channels");
  const bool sixteen = image.scalar_type() == at::kInt || image.scalar_type() == at::kShort;
  TORCH_CHECK(sixteen || image.scalar_type() == at::kByte, "write_png: uint8 or 16-bit data");
  const bool paletted = palette_in.defined();
  TORCH_CHECK(!paletted || (c == 1 && !sixteen && palette_in.dim() == 2 && palette_in.size(1) == 3 &&
                            palette_in.size(0) >= 1 && palette_in.size(0) <= 256),
              "write_png: a palette ([N <= 256, 3]) goes with one uint8 channel");
  std::vector<png_color> colours;
  if (paletted) {
    const at::Tensor p = palette_in.to(at::kByte).contiguous().cpu();
    for (int64_t i = 0; i < p.size(0); ++i) {
      const auto* rgb = p.data_ptr<uint8_t>() + i * 3;
      colours.push_back(png_color{rgb[0], rgb[1], rgb[2]});
    }
  }
  at::Tensor hwc = sixteen ? image.clamp(0, 65535).to(at::kInt).to(at::kShort) : image;
  hwc = hwc.permute({1, 2, 0}).contiguous().cpu();
  const int color = paletted ? PNG_COLOR_TYPE_PALETTE
                  : c == 1 ? PNG_COLOR_TYPE_GRAY
                  : c == 2 ? PNG_COLOR_TYPE_GRAY_ALPHA
                  : c == 3 ? PNG_COLOR_TYPE_RGB
                           : PNG_COLOR_TYPE_RGB_ALPHA;
  write_atomically(path, [&](const std::string& tmp) {
    // libpng writes through the checked writer: a full disk surfaces in finish(), not midway.
    CheckedFileWriter out(tmp);
    std::string error;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &error, png_error_to_exception, png_ignore_warning);
    png_infop info = png ? png_create_info_struct(png) : nullptr;
    if (!png || !info) fail_file(path, "out of memory writing PNG");
    if (setjmp(png_jmpbuf(png))) {
      png_destroy_write_struct(&png, &info);
      fail_file(path, "write failed (" + error + ")");
    }
    png_set_write_fn(
        png, &out,
        [](png_structp p, png_bytep data, png_size_t n) { static_cast<CheckedFileWriter*>(png_get_io_ptr(p))->write(data, n); },
        [](png_structp) {});
    png_set_IHDR(png, info, static_cast<png_uint_32>(w), static_cast<png_uint_32>(h), sixteen ? 16 : 8, color,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (paletted) png_set_PLTE(png, info, colours.data(), static_cast<int>(colours.size()));
    png_write_info(png, info);
    if (sixteen) png_set_swap(png);
    const size_t row_bytes = static_cast<size_t>(w) * c * (sixteen ? 2 : 1);
    for (int64_t r = 0; r < h; ++r) png_write_row(png, static_cast<png_const_bytep>(hwc.data_ptr()) + r * row_bytes);
    png_write_end(png, nullptr);
    png_destroy_write_struct(&png, &info);
    out.finish(path);
  });
}

std::vector<RawImage> read_image_file(const std::string& path) {
  require_readable_file(path);
  unsigned char magic[8] = {0};
  {
    FilePtr f(std::fopen(path.c_str(), "rb"));
    const size_t n = f ? std::fread(magic, 1, 8, f.get()) : 0;
    if (n == 0) fail_file(path, "empty file, not an image");
    if (n == 8 && png_sig_cmp(magic, 0, 8) == 0) return {read_png(path)};
  }
  if ((magic[0] == 'I' && magic[1] == 'I') || (magic[0] == 'M' && magic[1] == 'M')) return read_tiff(path);
  fail_file(path, "not a TIFF or PNG image");
}

bool has_image_extension(const std::string& path) {
  const std::string p = lower(path);
  auto ends = [&](const std::string& suffix) {
    return p.size() >= suffix.size() && p.compare(p.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  return ends(".tif") || ends(".tiff") || ends(".png");
}

at::Tensor to_unit_range(const RawImage& image) {
  if (image.palette.defined()) {  // the colours the indices stand for, [3, H, W]
    const at::Tensor rgb = image.palette.to(at::kFloat).index_select(0, image.pixels[0].flatten().to(at::kLong));
    return rgb.t().reshape({3, image.height(), image.width()}).div_(255.0);
  }
  switch (image.format) {
    case SampleFormat::kUInt8:
      return image.pixels.to(at::kFloat).div_(255.0);
    case SampleFormat::kUInt16:
      return image.pixels.to(at::kFloat).div_(65535.0);
    case SampleFormat::kInt8:
      return image.pixels.to(at::kFloat).add_(128.0).div_(255.0);
    case SampleFormat::kInt16:
      return image.pixels.to(at::kFloat).add_(32768.0).div_(65535.0);
    case SampleFormat::kFloat32: {
      at::Tensor x = image.pixels.to(at::kFloat);
      const int64_t bad = x.isfinite().logical_not().sum().item<int64_t>();
      if (bad > 0)
        throw Error("an image with " + std::to_string(bad) + " NaN or infinite pixels; replace them before normalising it");
      const double lo = x.min().item<double>(), hi = x.max().item<double>();
      if (lo >= 0.0 && hi <= 1.0) return x;
      return hi > lo ? (x - lo) / (hi - lo) : at::zeros_like(x);
    }
  }
  return image.pixels.to(at::kFloat);
}

at::Tensor label_values(const RawImage& mask, const std::string& where, const std::string& kind) {
  if (mask.format == SampleFormat::kFloat32) fail_file(where, kind + " must be 8- or 16-bit integer images, not float");
  // Stored and displayed labels of a MinIsWhite file differ (tifffile and skimage hand back the
  // stored ones, Fiji shows the inverted ones), and the reader has inverted them: refuse rather
  // than guess which the user meant.
  if (mask.min_is_white) fail_file(where, "MinIsWhite (inverted) " + kind + " are not supported: save as MinIsBlack");
  at::Tensor m = mask.pixels;
  // An alpha channel that hides nothing (gray + alpha, RGBA saved by image editors) carries no label.
  const int64_t full = mask.format == SampleFormat::kUInt16 ? 65535 : 255;
  if ((m.size(0) == 2 || m.size(0) == 4) && !is_signed_format(mask.format) && m[m.size(0) - 1].eq(full).all().item<bool>())
    m = m.narrow(0, 0, m.size(0) - 1);
  if (m.size(0) > 1 && !at::equal(m, m.narrow(0, 0, 1).expand_as(m)))
    fail_file(where, kind + " must be single-channel (this one has " + std::to_string(m.size(0)) + " differing channels)");
  at::Tensor labels = m[0].to(at::kLong).contiguous();
  if (is_signed_format(mask.format) && labels.numel() > 0) {
    const int64_t lowest = labels.min().item<int64_t>();
    if (lowest < 0) {
      const int64_t count = labels.lt(0).sum().item<int64_t>();
      fail_file(where, "negative label " + std::to_string(lowest) + " (" + std::to_string(count) + " negative pixel" +
                           (count > 1 ? "s" : "") + ") in a signed image; class indices and instance labels are 0 or more");
    }
  }
  return labels;
}

}  // namespace unet
