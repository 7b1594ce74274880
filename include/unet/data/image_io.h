// Reading and writing images: multi-page TIFF (libtiff) and PNG (libpng), 8/16-bit and float.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

namespace unet {

/// Sample encoding of an image file.
enum class SampleFormat { kUInt8, kUInt16, kFloat32 };

/// One image as stored: `pixels` is [C, H, W] with dtype uint8 (8-bit), int32 (16-bit, values
/// 0..65535) or float32; C is 1 (grayscale), 3 (RGB) or 4 (RGBA).
struct RawImage {
  at::Tensor pixels;
  SampleFormat format = SampleFormat::kUInt8;
  int64_t channels() const { return pixels.size(0); }
  int64_t height() const { return pixels.size(1); }
  int64_t width() const { return pixels.size(2); }
};

/// The most pixels (width x height) an image file may declare before anything is allocated for
/// it: 2^28 (16384 x 16384) unless changed. Larger declarations are refused with an
/// `OptionError` that names the file and the limit's field, "max_image_pixels".
int64_t max_image_pixels();
void set_max_image_pixels(int64_t pixels);

/// Every page of a TIFF file (one per slice of a stack). Throws `unet::Error` naming the file on a
/// missing, non-TIFF, truncated or unsupported file (palette, 1-bit, planar-separate, ...).
std::vector<RawImage> read_tiff(const std::string& path);

/// Writes `pages` ([C, H, W] or [H, W]; uint8, int32 holding 16-bit values, or float32) as one
/// multi-page TIFF, atomically (a temporary file renamed into place).
void write_tiff(const std::string& path, const std::vector<at::Tensor>& pages, bool deflate = true);

/// A PNG file (grayscale, gray+alpha, RGB, RGBA; 8 or 16 bits; palettes expanded).
RawImage read_png(const std::string& path);

/// Writes [C, H, W] or [H, W] uint8 (C = 1, 3 or 4) or int32 16-bit data as PNG, atomically.
void write_png(const std::string& path, const at::Tensor& image);

/// Reads a TIFF (all pages) or a PNG, chosen by the file's first bytes, not its name.
std::vector<RawImage> read_image_file(const std::string& path);

/// True for names ending in .tif, .tiff or .png (any case).
bool has_image_extension(const std::string& path);

/// Intensities as float32 [C, H, W] in [0, 1]: 8-bit / 255, 16-bit / 65535; float images are
/// kept when already within [0, 1] and min-max scaled otherwise.
at::Tensor to_unit_range(const RawImage& image);

}  // namespace unet
