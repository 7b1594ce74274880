// Multi-page TIFF reading and writing through libtiff, with errors turned into one-line messages.
#include "unet/runtime/error.h"
#include "unet/data/image_io.h"
#include "unet/runtime/files.h"
#include "tiff_internal.h"

#include <ATen/ATen.h>
#include <tiffio.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <memory>

namespace unet {
using namespace tiff_detail;
namespace {

void require_image_size(const std::string& path, const std::string& where, uint32_t width, uint32_t height) {
  // Unsigned: two 32-bit sides multiply to at most 2^64 - 2^33 + 1, beyond int64_t.
  const uint64_t pixels = uint64_t{width} * height;
  if (pixels > static_cast<uint64_t>(max_image_pixels()))
    throw OptionError("", path + ": " + where + "declares " + std::to_string(width) + "x" + std::to_string(height) +
                              " pixels, more than the limit of " + std::to_string(max_image_pixels()) +
                              " ({max_image_pixels})");
}

/// The sample encoding of a page (set into `out`) and the dtype its rows are read into.
at::ScalarType sample_type(const std::string& path, const std::string& where, uint16_t bits, uint16_t format,
                           SampleFormat& out) {
  if (format == SAMPLEFORMAT_COMPLEXINT || format == SAMPLEFORMAT_COMPLEXIEEEFP)
    fail_file(path, where + "complex samples are not supported");
  const bool is_float = format == SAMPLEFORMAT_IEEEFP, is_signed = format == SAMPLEFORMAT_INT;
  if (bits == 8 && !is_float) {
    out = is_signed ? SampleFormat::kInt8 : SampleFormat::kUInt8;
    return is_signed ? at::kChar : at::kByte;
  }
  if (bits == 16 && !is_float) {
    out = is_signed ? SampleFormat::kInt16 : SampleFormat::kUInt16;
    return at::kShort;  // read as raw 16-bit, widened in finish_page
  }
  if (bits == 32 && is_float) {
    out = SampleFormat::kFloat32;
    return at::kFloat;
  }
  fail_file(path, where + std::to_string(bits) + "-bit " + (is_float ? "float" : "integer") +
                      " samples are not supported (8/16-bit integer or 32-bit float)");
}

/// The page's pixels [C, H, W] as RawImage holds them: 16-bit widened to int32 (unsigned or
/// signed), float pages checked for NaN and infinities, MinIsWhite pages inverted.
at::Tensor finish_page(at::Tensor chw, const RawImage& image, const std::string& path, const std::string& where) {
  if (image.format == SampleFormat::kUInt16) chw = chw.to(at::kInt).bitwise_and(0xFFFF);
  if (image.format == SampleFormat::kInt16) chw = chw.to(at::kInt);
  if (image.format == SampleFormat::kFloat32) {
    const int64_t bad = chw.isfinite().logical_not().sum().item<int64_t>();
    if (bad > 0)
      fail_file(path, where + std::to_string(bad) + " NaN or infinite pixel" + (bad > 1 ? "s" : "") +
                          "; replace them (e.g. with 0 or the image's mean) before using the image");
  }
  return image.min_is_white ? invert_min_is_white(chw, image.format) : chw;
}

RawImage read_page(TIFF* tif, const std::string& path, int page) {
  const PageFields f = page_fields(tif);
  const uint32_t width = f.width, height = f.height;
  const uint16_t samples = f.samples, bits = f.bits, format = f.format, photometric = f.photometric;
  const std::string where = "page " + std::to_string(page + 1) + ": ";
  if (width == 0 || height == 0) fail_file(path, where + "zero-size image");
  require_image_size(path, where, width, height);
  // 8-bit palette images keep their indices (a class mask's values) and their colours.
  if (photometric == PHOTOMETRIC_PALETTE && (bits != 8 || samples != 1 || format != SAMPLEFORMAT_UINT))
    fail_file(path, where + "palette TIFF images other than 8-bit are not supported");
  require_supported_colour(tif, path, where, f);

  RawImage image;
  const at::ScalarType dtype = sample_type(path, where, bits, format, image.format);
  image.min_is_white = photometric == PHOTOMETRIC_MINISWHITE;
  // [H, W, C] as stored, then permuted to [C, H, W].
  at::Tensor hwc = at::empty({height, width, samples}, at::TensorOptions(dtype));
  auto* base = static_cast<uint8_t*>(hwc.data_ptr());
  const size_t row_bytes = static_cast<size_t>(width) * samples * (bits / 8);
  tiff_last_error.clear();
  if (TIFFIsTiled(tif)) {
    uint32_t tw = 0, th = 0;
    TIFFGetField(tif, TIFFTAG_TILEWIDTH, &tw);
    TIFFGetField(tif, TIFFTAG_TILELENGTH, &th);
    if (tw == 0 || th == 0) fail_file(path, where + "zero-size tiles");
    require_image_size(path, where + "tile: ", tw, th);
    const size_t pixel_bytes = static_cast<size_t>(samples) * (bits / 8);
    // The copy below reads th rows of tw pixels from each tile: the tile must hold them.
    if (static_cast<uint64_t>(TIFFTileSize64(tif)) < static_cast<uint64_t>(tw) * th * pixel_bytes)
      fail_file(path, where + "unsupported tile layout (subsampled or packed samples)");
    std::vector<uint8_t> tile(static_cast<size_t>(TIFFTileSize64(tif)));
    for (uint32_t y = 0; y < height; y += th) {
      for (uint32_t x = 0; x < width; x += tw) {
        if (TIFFReadTile(tif, tile.data(), x, y, 0, 0) < 0) fail_file(path, where + reason());
        for (uint32_t r = 0; r < th && y + r < height; ++r) {
          const size_t n = std::min(tw, width - x) * pixel_bytes;
          std::memcpy(base + (y + r) * row_bytes + x * pixel_bytes, tile.data() + r * tw * pixel_bytes, n);
        }
      }
    }
  } else {
    if (static_cast<size_t>(TIFFScanlineSize(tif)) != row_bytes) fail_file(path, where + "unexpected row layout");
    for (uint32_t row = 0; row < height; ++row) {
      if (TIFFReadScanline(tif, base + row * row_bytes, row, 0) < 0) fail_file(path, where + reason());
    }
  }
  image.pixels = finish_page(hwc.permute({2, 0, 1}).contiguous(), image, path, where);
  if (photometric == PHOTOMETRIC_PALETTE) {
    uint16_t *red = nullptr, *green = nullptr, *blue = nullptr;
    if (!TIFFGetField(tif, TIFFTAG_COLORMAP, &red, &green, &blue) || !red || !green || !blue)
      fail_file(path, where + "palette image without a colour map");
    image.palette = at::empty({256, 3}, at::kByte);
    auto* rgb = image.palette.data_ptr<uint8_t>();
    for (int i = 0; i < 256; ++i) {  // the map's 16-bit levels as 8-bit colours
      rgb[3 * i] = static_cast<uint8_t>(red[i] >> 8);
      rgb[3 * i + 1] = static_cast<uint8_t>(green[i] >> 8);
      rgb[3 * i + 2] = static_cast<uint8_t>(blue[i] >> 8);
    }
  }
  return image;
}

}  // namespace

std::vector<RawImage> read_tiff(const std::string& path) {
  require_readable_file(path);
  install_handlers();
  require_tiff_magic(path);
  tiff_last_error.clear();
  TiffPtr tif(TIFFOpen(path.c_str(), "r"));
  if (!tif) fail_file(path, "cannot open as TIFF (" + reason() + ")");
  std::vector<RawImage> pages;
  int page = 0;
  do {
    pages.push_back(read_page(tif.get(), path, page++));
  } while (TIFFReadDirectory(tif.get()));
  if (!tiff_last_error.empty()) fail_file(path, "damaged TIFF directory (" + tiff_last_error + ")");
  return pages;
}

void write_tiff(const std::string& path, const std::vector<at::Tensor>& pages, bool deflate, const at::Tensor& palette) {
  install_handlers();
  if (pages.empty()) fail_file(path, "no pages to write");
  const std::vector<uint16_t> map = palette.defined() ? colour_map(palette) : std::vector<uint16_t>();
  write_atomically(path, [&](const std::string& tmp) {
    tiff_last_error.clear();
    errno = 0;
    TiffPtr tif(TIFFOpen(tmp.c_str(), "w"));
    if (!tif) fail_write(path);
    for (const auto& page_in : pages) {
      at::Tensor page = page_in.dim() == 2 ? page_in.unsqueeze(0) : page_in;
      TORCH_CHECK(page.dim() == 3, "write_tiff: pages must be [C, H, W] or [H, W]");
      const auto type = page.scalar_type();
      uint16_t bits = 8, format = SAMPLEFORMAT_UINT;
      if (type == at::kFloat) {
        bits = 32;
        format = SAMPLEFORMAT_IEEEFP;
      } else if (type == at::kInt || type == at::kShort) {
        bits = 16;
        page = page.clamp(0, 65535).to(at::kInt).to(at::kShort);  // wraps to the unsigned bits
      } else {
        TORCH_CHECK(type == at::kByte, "write_tiff: unsupported dtype ", type);
      }
      const auto c = static_cast<uint16_t>(page.size(0));
      const auto h = static_cast<uint32_t>(page.size(1)), w = static_cast<uint32_t>(page.size(2));
      at::Tensor hwc = page.permute({1, 2, 0}).contiguous().cpu();
      TIFF* t = tif.get();
      TIFFSetField(t, TIFFTAG_IMAGEWIDTH, w);
      TIFFSetField(t, TIFFTAG_IMAGELENGTH, h);
      TIFFSetField(t, TIFFTAG_SAMPLESPERPIXEL, c);
      TIFFSetField(t, TIFFTAG_BITSPERSAMPLE, bits);
      TIFFSetField(t, TIFFTAG_SAMPLEFORMAT, format);
      TIFFSetField(t, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
      const bool paletted = palette.defined() && c == 1 && bits == 8;
      TIFFSetField(t, TIFFTAG_PHOTOMETRIC, paletted ? PHOTOMETRIC_PALETTE : c >= 3 ? PHOTOMETRIC_RGB : PHOTOMETRIC_MINISBLACK);
      if (paletted) TIFFSetField(t, TIFFTAG_COLORMAP, map.data(), map.data() + 256, map.data() + 512);
      if (c == 2 || c == 4) {
        const uint16_t extra = EXTRASAMPLE_UNASSALPHA;
        TIFFSetField(t, TIFFTAG_EXTRASAMPLES, 1, &extra);
      }
      TIFFSetField(t, TIFFTAG_COMPRESSION, deflate ? COMPRESSION_ADOBE_DEFLATE : COMPRESSION_NONE);
      TIFFSetField(t, TIFFTAG_ROWSPERSTRIP, TIFFDefaultStripSize(t, 0));
      TIFFSetField(t, TIFFTAG_SUBFILETYPE, pages.size() > 1 ? FILETYPE_PAGE : 0);
      const size_t row_bytes = static_cast<size_t>(w) * c * (bits / 8);
      auto* base = static_cast<uint8_t*>(hwc.data_ptr());
      for (uint32_t row = 0; row < h; ++row) {
        if (TIFFWriteScanline(t, base + row * row_bytes, row, 0) < 0) fail_write(path);
      }
      if (!TIFFWriteDirectory(t)) fail_write(path);
    }
    if (!TIFFFlush(tif.get())) fail_write(path);
  });
}

}  // namespace unet
