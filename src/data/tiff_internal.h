// What unet_data's TIFF readers and writers share: libtiff's messages kept per thread instead of
// printed, closing handles, and the one-line failures (a private header of unet_data).
#pragma once

#include "unet/data/image_io.h"
#include "unet/runtime/error.h"

#include <ATen/ATen.h>

#include <tiffio.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace unet::tiff_detail {

/// libtiff reports problems through process-wide handlers; the last message of each thread is kept
/// so that it can be attached to the exception instead of being printed to stderr.
inline thread_local std::string tiff_last_error;

inline void install_handlers() {
  static const bool installed = [] {
    TIFFSetErrorHandler([](const char*, const char* fmt, va_list ap) {
      char buffer[512];
      std::vsnprintf(buffer, sizeof(buffer), fmt, ap);
      tiff_last_error = buffer;
    });
    TIFFSetWarningHandler([](const char*, const char*, va_list) {});
    return true;
  }();
  (void)installed;
}

struct TiffCloser {
  void operator()(TIFF* t) const { TIFFClose(t); }
};
using TiffPtr = std::unique_ptr<TIFF, TiffCloser>;

/// libtiff's own messages can carry internals ("got 18446744073709551560 bytes"): users get
/// what happened, not how libtiff noticed it.
inline std::string reason() { return "damaged or truncated TIFF data"; }

/// Why a write failed, read from errno right after the failing libtiff call (a full disk is not
/// damaged data): "cannot write (no space left on the device)".
[[noreturn]] inline void fail_write(const std::string& path) {
  const int e = errno;
  fail_file(path, "cannot write (" +
                      std::string(e == ENOSPC ? "no space left on the device" : e ? std::strerror(e) : "libtiff failed") + ")");
}

/// Throws `unet::Error` "<path>: not a TIFF file" unless the file starts with a TIFF or BigTIFF
/// header (checked first so that other files get a plain message).
inline void require_tiff_magic(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "rb");
  unsigned char magic[4] = {0, 0, 0, 0};
  const size_t n = f ? std::fread(magic, 1, 4, f) : 0;
  if (f) std::fclose(f);
  const bool tiff = n == 4 && ((magic[0] == 'I' && magic[1] == 'I' && (magic[2] == 42 || magic[2] == 43)) ||
                               (magic[0] == 'M' && magic[1] == 'M' && (magic[3] == 42 || magic[3] == 43)));
  if (!tiff) fail_file(path, "not a TIFF file");
}

/// MinIsWhite intensities turned into MinIsBlack ones (see RawImage); alpha channels are kept.
inline at::Tensor invert_min_is_white(at::Tensor chw, SampleFormat format) {
  const int64_t c = chw.size(0), colour = (c == 2 || c == 4) ? c - 1 : c;
  at::Tensor grey = chw.narrow(0, 0, colour);
  switch (format) {
    case SampleFormat::kUInt8: grey.copy_(255 - grey); break;
    case SampleFormat::kUInt16: grey.copy_(65535 - grey); break;
    case SampleFormat::kInt8:
    case SampleFormat::kInt16: grey.bitwise_not_(); break;  // -1 - v: the signed range reversed
    case SampleFormat::kFloat32: grey.copy_(1.0 - grey); break;
  }
  return chw;
}

/// A TIFF colour map of `palette` ([N <= 256, 3] uint8): 256 entries of 16-bit levels per channel,
/// red, green then blue (unused entries black), for TIFFTAG_COLORMAP.
inline std::vector<uint16_t> colour_map(const at::Tensor& palette) {
  TORCH_CHECK(palette.dim() == 2 && palette.size(1) == 3 && palette.size(0) >= 1 && palette.size(0) <= 256,
              "a TIFF palette is [N <= 256, 3]");
  std::vector<uint16_t> map(3 * 256, 0);
  const at::Tensor p = palette.to(at::kByte).contiguous().cpu();
  for (int64_t i = 0; i < p.size(0); ++i)
    for (int64_t k = 0; k < 3; ++k) map[static_cast<size_t>(k * 256 + i)] = static_cast<uint16_t>(p.data_ptr<uint8_t>()[i * 3 + k] * 257);
  return map;
}

/// The fields of the current page that both readers check.
struct PageFields {
  uint32_t width = 0, height = 0;
  uint16_t samples = 1, bits = 8, format = SAMPLEFORMAT_UINT, planar = PLANARCONFIG_CONTIG,
           photometric = PHOTOMETRIC_MINISBLACK;
};

inline PageFields page_fields(TIFF* tif) {
  PageFields f;
  TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &f.width);
  TIFFGetField(tif, TIFFTAG_IMAGELENGTH, &f.height);
  TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLESPERPIXEL, &f.samples);
  TIFFGetFieldDefaulted(tif, TIFFTAG_BITSPERSAMPLE, &f.bits);
  TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLEFORMAT, &f.format);
  TIFFGetFieldDefaulted(tif, TIFFTAG_PLANARCONFIG, &f.planar);
  TIFFGetField(tif, TIFFTAG_PHOTOMETRIC, &f.photometric);
  return f;
}

/// Refuses YCbCr other than JPEG's (which libtiff is then told to convert to RGB), more than 4
/// samples per pixel and planar-separate colour; `where` prefixes the messages ("page 2: ").
inline void require_supported_colour(TIFF* tif, const std::string& path, const std::string& where, const PageFields& f) {
  if (f.photometric == PHOTOMETRIC_YCBCR) {
    uint16_t compression = COMPRESSION_NONE;
    TIFFGetFieldDefaulted(tif, TIFFTAG_COMPRESSION, &compression);
    // JPEG-compressed YCbCr converts to RGB in libtiff; other (subsampled) YCbCr layouts do not.
    if (compression != COMPRESSION_JPEG) fail_file(path, where + "YCbCr TIFF images are not supported (save as RGB)");
    TIFFSetField(tif, TIFFTAG_JPEGCOLORMODE, JPEGCOLORMODE_RGB);
  }
  if (f.samples < 1 || f.samples > 4) fail_file(path, where + std::to_string(f.samples) + " samples per pixel are not supported");
  if (f.planar != PLANARCONFIG_CONTIG && f.samples > 1) fail_file(path, where + "planar-separate TIFF images are not supported");
}

}  // namespace unet::tiff_detail
