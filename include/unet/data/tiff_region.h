// TIFF images larger than memory: reading any rectangle of a tiled or stripped TIFF/BigTIFF, and
// writing a tiled BigTIFF band by band with a pyramid of downsampled levels.
//
// Whole-image reads (`read_tiff`) cap the pixels an image may declare; these readers instead keep
// only the tiles or strips that the current band touches, so memory follows the band, not the
// image. The writer builds one band of tiles at a time (`TiledTiffBand`, one small file each, so a
// killed run keeps its finished bands and several processes can share one image) and joins the
// bands at the end (`assemble_tiled_tiff`): their compressed tiles are copied as they are, and the
// downsampled levels are made while streaming through them, as SubIFDs of an OME-TIFF that QuPath,
// napari (tifffile) and Fiji (Bio-Formats) open as a pyramid.
#pragma once

#include "unet/data/image_io.h"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace unet {

/// What a TIFF's first image (page 0: OME-TIFF's first series at full resolution) holds.
struct TiffLayout {
  int64_t width = 0;
  int64_t height = 0;
  /// 1 (grayscale), 3 (RGB), or either with alpha (kept, as `read_tiff` keeps it).
  int64_t channels = 1;
  SampleFormat format = SampleFormat::kUInt8;
  bool min_is_white = false;
  bool tiled = false;
  bool bigtiff = false;
  /// The tile (tiled) or strip (rows per strip x width) that the file is stored in.
  int64_t block_width = 0;
  int64_t block_height = 0;
  /// "40000 x 40000 8-bit gray, tiled 256 x 256, BigTIFF".
  std::string describe() const;
};

/// Width and height of page 0 of the TIFF at `path`, read from its header alone; none when the
/// file is missing or no TIFF (its readers say why).
std::optional<std::pair<int64_t, int64_t>> tiff_size(const std::string& path);

/// Reads rectangles of page 0 of a TIFF or BigTIFF (tiled or stripped, any compression libtiff
/// decodes; 8/16-bit unsigned, gray or RGB, with or without alpha; MinIsWhite inverted as
/// `read_tiff` does). Decoded tiles or strips are cached up to about `cache_bytes`, so reading
/// overlapping bands top to bottom decodes each block about once.
///
/// The constructor checks what a hostile header could cost before anything is allocated: blocks
/// of at most 2^26 pixels, images at most 2^22 pixels wide and below 2^31 high, a file large enough for the offsets and byte
/// counts of the blocks it declares, and one full-resolution image per file (pages of a stack
/// or channels as pages are refused; reduced-resolution pages are allowed). A damaged block fails
/// when it is read, naming itself.
/// Throws `unet::Error` naming the file for anything unsupported (palette, planar-separate, float,
/// signed or more than 4 channels: "streamed reads take 8/16-bit gray or RGB images").
class TiffRegionReader {
 public:
  explicit TiffRegionReader(const std::string& path, int64_t cache_bytes = int64_t{256} << 20);
  ~TiffRegionReader();
  TiffRegionReader(const TiffRegionReader&) = delete;
  TiffRegionReader& operator=(const TiffRegionReader&) = delete;

  const TiffLayout& layout() const;
  const std::string& path() const;
  /// Pixels of rows [y, y + h) and columns [x, x + w) as `RawImage::pixels` holds them: [C, h, w]
  /// uint8, or int32 for 16-bit. The rectangle must lie inside the image.
  at::Tensor read(int64_t y, int64_t x, int64_t h, int64_t w);
  /// `read` of rows [y, y + h) over the whole width, as a `RawImage` (its format and MinIsWhite).
  RawImage read_rows(int64_t y, int64_t h);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

/// How a tiled output image is stored: sides, channels (pages for `channels` > 1, one per class,
/// `pages_as_channels`), sample type, tile side, compression and how levels are downsampled.
struct TiledTiffSpec {
  int64_t width = 0;
  int64_t height = 0;
  /// Pages of one channel each (the classes of a probability map).
  int64_t pages = 1;
  /// uint8, uint16 (int32 holding 0..65535 in memory) or uint32 labels (int64 in memory), or
  /// float32.
  at::ScalarType dtype = at::kByte;
  /// Tiles of tile x tile pixels (a multiple of 16); also the band height.
  int64_t tile = 256;
  /// Levels downsample by 2 by keeping the top-left pixel of each 2x2 block (labels, masks: the
  /// values stay those of the image) instead of averaging them (probabilities).
  bool nearest = true;
  /// Levels until the longer side fits in one tile (1: the full resolution only).
  int64_t max_levels = 16;
  /// One-channel uint8 images written as Palette images with this colour map ([N, 3] uint8).
  at::Tensor palette;
  /// The image's name in the OME-XML description.
  std::string name = "unet";

  /// Number of bands (rows of tiles) at full resolution.
  int64_t bands() const { return (height + tile - 1) / tile; }
  /// Number of pyramid levels written (the full resolution included).
  int64_t levels() const;
};

/// Writes band `band` (rows [band * tile, ...)) of an image `spec` describes, `rows` [pages, h, W]
/// in the spec's dtype, as a small tiled BigTIFF at `path`, atomically (what `assemble_tiled_tiff`
/// joins).
void write_tiled_band(const std::string& path, const TiledTiffSpec& spec, int64_t band, const at::Tensor& rows);

/// Joins the bands `band_paths` (in order, one per band of `spec`, each written by
/// `write_tiled_band` with the same spec) into the OME-TIFF `path` (BigTIFF, written atomically):
/// page p's full resolution from the bands' tiles as they are, and its downsampled levels as
/// SubIFDs, computed while streaming through the bands (memory: a band per level). Temporary files
/// for the levels go beside `path` and are removed.
/// With `transform`, every band's values ([h, W] per page, in `band_dtype` when the bands were
/// written with another dtype than `spec`'s) are decoded, replaced by `transform(values)` and
/// encoded again in the spec's dtype (e.g. provisional 32-bit labels numbered into 16 bits).
void assemble_tiled_tiff(const std::string& path, const TiledTiffSpec& spec, const std::vector<std::string>& band_paths,
                         const std::function<at::Tensor(const at::Tensor&)>& transform = {},
                         at::ScalarType band_dtype = at::ScalarType::Undefined);

}  // namespace unet
