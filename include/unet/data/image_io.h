// Reading and writing images: multi-page TIFF (libtiff) and PNG (libpng), 8/16-bit and float.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

namespace unet {

/// Sample encoding of an image file. Signed integers are TIFF's SampleFormat 2 (SAMPLEFORMAT_INT).
enum class SampleFormat { kUInt8, kUInt16, kFloat32, kInt8, kInt16 };

/// True for `kInt8` and `kInt16`.
inline bool is_signed_format(SampleFormat format) { return format == SampleFormat::kInt8 || format == SampleFormat::kInt16; }

/// One image as stored: `pixels` is [C, H, W] with dtype uint8 (8-bit), int8 (signed 8-bit), int32
/// (16-bit: values 0..65535, or -32768..32767 when signed) or float32 (always finite: the readers
/// refuse NaN and infinite pixels); C is 1 (grayscale), 3 (RGB) or 4 (RGBA).
///
/// MinIsWhite TIFFs (PhotometricInterpretation 0, 0 is white) are inverted as they are read, so
/// that `pixels` mean what a MinIsBlack file's mean, as Fiji shows them (tifffile and skimage hand
/// back the stored values): 8-bit 255 - v, 16-bit 65535 - v, signed -1 - v (the same reversal of
/// the range), float 1 - v (inverts [0, 1] in place; other ranges come out reversed after
/// `to_unit_range`'s min-max scaling); alpha channels are kept. `min_is_white` records it: label
/// images (masks) refuse such files, since stored and displayed labels differ.
///
/// Palette images (PNG colour type 3, 8-bit TIFF Palette) keep their indices in `pixels` ([1, H, W]
/// uint8: a class mask's values) and their colours in `palette` ([N, 3] uint8, undefined for other
/// images); `to_unit_range` shows them in colour, `label_values` reads the indices.
struct RawImage {
  at::Tensor pixels;
  SampleFormat format = SampleFormat::kUInt8;
  bool min_is_white = false;
  at::Tensor palette = at::Tensor();
  /// The channels the image shows: 3 for a palette image.
  int64_t channels() const { return palette.defined() ? 3 : pixels.size(0); }
  int64_t height() const { return pixels.size(1); }
  int64_t width() const { return pixels.size(2); }
};

/// The most pixels (width x height) an image file may declare before anything is allocated for
/// it: 2^28 (16384 x 16384) unless changed. Larger declarations are refused with an
/// `OptionError` that names the file and the limit's field, "max_image_pixels".
int64_t max_image_pixels();
void set_max_image_pixels(int64_t pixels);

/// Every page of a TIFF file (one per slice of a stack). Throws `unet::Error` naming the file on a
/// missing, non-TIFF, truncated or unsupported file (palettes other than 8-bit, 1-bit, planar-separate, ...) and on
/// float pages with NaN or infinite pixels ("page 2: 17 NaN or infinite pixels; ...").
std::vector<RawImage> read_tiff(const std::string& path);

/// Writes `pages` ([C, H, W] or [H, W]; uint8, int32 holding 16-bit values, or float32) as one
/// multi-page TIFF, atomically (a temporary file renamed into place). With `palette` ([N, 3] uint8,
/// N <= 256) one-channel uint8 pages are written as Palette images (PhotometricInterpretation 3
/// with a ColorMap): the values stay the indices, viewers such as Fiji show the colours.
void write_tiff(const std::string& path, const std::vector<at::Tensor>& pages, bool deflate = true,
                const at::Tensor& palette = {});

/// A PNG file (grayscale, gray+alpha, RGB, RGBA; 8 or 16 bits; palette images as indices and
/// `palette`, or expanded to RGBA when their palette is transparent).
RawImage read_png(const std::string& path);

/// Writes [C, H, W] or [H, W] uint8 (C = 1, 3 or 4) or int32 16-bit data as PNG, atomically. With
/// `palette` ([N, 3] uint8, N <= 256) a one-channel uint8 image is written as a palette PNG
/// (colour type 3 with a PLTE): the values stay the indices, viewers show the colours.
void write_png(const std::string& path, const at::Tensor& image, const at::Tensor& palette = {});

/// Reads a TIFF (all pages) or a PNG, chosen by the file's first bytes, not its name.
std::vector<RawImage> read_image_file(const std::string& path);

/// True for names ending in .tif, .tiff or .png (any case).
bool has_image_extension(const std::string& path);

/// Intensities as float32 [C, H, W] in [0, 1], in the stored order (darker stays darker): 8-bit
/// v / 255, 16-bit v / 65535, signed 8-bit (v + 128) / 255, signed 16-bit (v + 32768) / 65535
/// (-32768 -> 0, 32767 -> 1: the offset Fiji applies to signed 16-bit files); float images are
/// kept when already within [0, 1] and min-max scaled otherwise. Throws `unet::Error` for NaN or
/// infinite float pixels (the readers refuse them first, naming the file and page).
at::Tensor to_unit_range(const RawImage& image);

/// The values of a label image (class indices or instance labels) as int64 [H, W]: its one channel,
/// or its channels when they all agree (an opaque alpha channel is ignored). Throws `unet::Error` "<where>: ..." for float images,
/// MinIsWhite TIFFs ("MinIsWhite (inverted) <kind> are not supported: save as MinIsBlack"),
/// differing channels and negative values of signed TIFFs ("negative label -3 ..."); `kind` names
/// the images in messages ("masks", "instance masks").
at::Tensor label_values(const RawImage& mask, const std::string& where, const std::string& kind);

}  // namespace unet
