// Region reads of TIFF/BigTIFF files and tiled BigTIFF bands: see unet/data/tiff_region.h. The
// reader decodes whole tiles or strips (libtiff's unit) and copies the part a rectangle needs; a
// small least-recently-used cache keeps the blocks of the last bands.
#include "unet/data/tiff_region.h"

#include "tiff_internal.h"
#include "unet/runtime/error.h"
#include "unet/runtime/files.h"

#include <ATen/ATen.h>

#include <filesystem>
#include <unordered_map>

namespace unet {
using namespace tiff_detail;
namespace {

const char* format_name(SampleFormat f) {
  switch (f) {
    case SampleFormat::kUInt8: return "8-bit";
    case SampleFormat::kUInt16: return "16-bit";
    default: return "other";
  }
}

}  // namespace

std::string TiffLayout::describe() const {
  return std::to_string(width) + " x " + std::to_string(height) + " " + format_name(format) + " " +
         (channels == 1 ? "gray" : channels == 3 ? "RGB" : std::to_string(channels) + "-channel") + ", " +
         (tiled ? "tiled " : "strips of ") + std::to_string(block_width) + " x " + std::to_string(block_height) +
         (bigtiff ? ", BigTIFF" : "");
}

struct TiffRegionReader::State {
  std::string path;
  TiffPtr tif;
  TiffLayout layout;
  int64_t pixel_bytes = 1;
  int64_t cache_bytes = 0;
  int64_t cached_bytes = 0;
  uint64_t clock = 0;
  struct Block {
    std::vector<uint8_t> bytes;
    uint64_t used = 0;
  };
  std::unordered_map<int64_t, Block> cache;

  int64_t blocks_across() const { return layout.tiled ? (layout.width + layout.block_width - 1) / layout.block_width : 1; }

  /// The decoded block (tile or strip) `index`, [block_height, block_width, C] bytes.
  const std::vector<uint8_t>& block(int64_t index) {
    auto it = cache.find(index);
    if (it != cache.end()) {
      it->second.used = ++clock;
      return it->second.bytes;
    }
    const int64_t size = layout.block_width * layout.block_height * pixel_bytes;
    while (cached_bytes + size > cache_bytes && !cache.empty()) {  // evict the least recently used
      auto oldest = cache.begin();
      for (auto i = cache.begin(); i != cache.end(); ++i)
        if (i->second.used < oldest->second.used) oldest = i;
      cached_bytes -= static_cast<int64_t>(oldest->second.bytes.size());
      cache.erase(oldest);
    }
    Block b;
    b.bytes.assign(static_cast<size_t>(size), 0);
    b.used = ++clock;
    tiff_last_error.clear();
    const auto i = static_cast<uint32_t>(index);
    const tmsize_t got = layout.tiled ? TIFFReadEncodedTile(tif.get(), i, b.bytes.data(), size)
                                      : TIFFReadEncodedStrip(tif.get(), i, b.bytes.data(), size);
    if (got < 0)
      fail_file(path, std::string(layout.tiled ? "tile " : "strip ") + std::to_string(index + 1) + ": " + reason());
    cached_bytes += size;
    return cache.emplace(index, std::move(b)).first->second.bytes;
  }
};

namespace {

/// Refuses files with more than one full-resolution page (a stack, or channels stored as pages),
/// which a stream of page 0 would silently cut short; reduced-resolution pages (an old-style
/// pyramid) are allowed. Leaves page 0 current.
void require_one_image(TIFF* tif, const std::string& path) {
  int images = 0;
  do {
    uint32_t kind = 0;
    TIFFGetFieldDefaulted(tif, TIFFTAG_SUBFILETYPE, &kind);
    if (!(kind & FILETYPE_REDUCEDIMAGE)) ++images;
  } while (images < 2 && TIFFReadDirectory(tif));
  if (!TIFFSetDirectory(tif, 0)) fail_file(path, "damaged TIFF directory");
  if (images > 1)
    fail_file(path, "holds several images (pages): streamed prediction takes one image per file (predict stacks in "
                    "memory, or save each page as its own file)");
}

/// Page 0's layout, refusing what streamed reads do not take and headers that declare more than
/// the file could hold.
TiffLayout read_layout(TIFF* tif, const std::string& path) {
  require_one_image(tif, path);
  const PageFields f = page_fields(tif);
  const uint32_t width = f.width, height = f.height;
  const uint16_t samples = f.samples, bits = f.bits, format = f.format, photometric = f.photometric;
  if (width == 0 || height == 0) fail_file(path, "zero-size image");
  // A band of tiles holds a few hundred rows of the whole width: 2^22 pixels wide is 20 times the
  // widest slide scans, and keeps a hostile width from asking for terabytes.
  if (width > (1u << 22) || height >= (1u << 31))
    fail_file(path, std::to_string(width) + " x " + std::to_string(height) +
                        " pixels: streamed reads take images up to 4194304 pixels wide and 2^31 - 1 high");
  if (format != SAMPLEFORMAT_UINT || (bits != 8 && bits != 16))
    fail_file(path, std::to_string(bits) + "-bit" +
                        (format == SAMPLEFORMAT_IEEEFP ? " float" : format == SAMPLEFORMAT_INT ? " signed" : "") +
                        " samples: streamed reads take 8/16-bit unsigned gray or RGB images");
  if (photometric == PHOTOMETRIC_PALETTE) fail_file(path, "palette images are not read in streams (save as gray or RGB)");
  require_supported_colour(tif, path, "", f);
  TiffLayout l;
  l.width = width;
  l.height = height;
  l.channels = samples;
  l.format = bits == 8 ? SampleFormat::kUInt8 : SampleFormat::kUInt16;
  l.min_is_white = photometric == PHOTOMETRIC_MINISWHITE;
  l.tiled = TIFFIsTiled(tif);
  l.bigtiff = TIFFIsBigTIFF(tif);
  uint32_t bw = 0, bh = 0;
  if (l.tiled) {
    TIFFGetField(tif, TIFFTAG_TILEWIDTH, &bw);
    TIFFGetField(tif, TIFFTAG_TILELENGTH, &bh);
  } else {
    bw = width;
    TIFFGetFieldDefaulted(tif, TIFFTAG_ROWSPERSTRIP, &bh);
    bh = std::min(bh, height);
  }
  if (bw == 0 || bh == 0) fail_file(path, "zero-size tiles");
  l.block_width = bw;
  l.block_height = bh;
  const int64_t pixel_bytes = samples * (bits / 8);
  if (l.block_width > (int64_t{1} << 26) || l.block_height > (int64_t{1} << 26) ||
      l.block_width * l.block_height > (int64_t{1} << 26))
    fail_file(path, "blocks of " + std::to_string(bw) + " x " + std::to_string(bh) +
                        " pixels: streamed reads take tiles or strips of at most 2^26 pixels (save as a tiled TIFF)");
  const uint64_t decoded = l.tiled ? TIFFTileSize64(tif) : TIFFStripSize64(tif);
  if (decoded < static_cast<uint64_t>(l.block_width * l.block_height * pixel_bytes))
    fail_file(path, "unsupported block layout (subsampled or packed samples)");
  // Every block has an offset and a byte count in the file: a header declaring more blocks than the
  // file could index is truncated or hostile.
  const uint64_t blocks = l.tiled ? TIFFNumberOfTiles(tif) : TIFFNumberOfStrips(tif);
  std::error_code ec;
  const uint64_t file_size = std::filesystem::file_size(path, ec);
  if (!ec && blocks * (l.bigtiff ? 16 : 8) > file_size + 16)
    fail_file(path, "declares " + std::to_string(blocks) + " blocks, more than its " + std::to_string(file_size) +
                        " bytes can hold (truncated?)");
  return l;
}

}  // namespace

std::optional<std::pair<int64_t, int64_t>> tiff_size(const std::string& path) {
  try {
    require_tiff_magic(path);
  } catch (const Error&) {
    return std::nullopt;
  }
  install_handlers();
  TiffPtr tif(TIFFOpen(path.c_str(), "r"));
  if (!tif) return std::nullopt;
  uint32_t width = 0, height = 0;
  TIFFGetField(tif.get(), TIFFTAG_IMAGEWIDTH, &width);
  TIFFGetField(tif.get(), TIFFTAG_IMAGELENGTH, &height);
  return std::make_pair(int64_t{width}, int64_t{height});
}

TiffRegionReader::TiffRegionReader(const std::string& path, int64_t cache_bytes) : state_(std::make_unique<State>()) {
  require_readable_file(path);
  require_tiff_magic(path);
  install_handlers();
  tiff_last_error.clear();
  state_->path = path;
  // "m": read, not memory-map: mapped pages of a file of tens of GB would count as this process's
  // memory (a 1.5 GB slide read through the map raised the resident size by 1.4 GB).
  state_->tif.reset(TIFFOpen(path.c_str(), "rm"));
  if (!state_->tif) fail_file(path, "cannot open as TIFF (" + reason() + ")");
  state_->layout = read_layout(state_->tif.get(), path);
  state_->pixel_bytes = state_->layout.channels * (state_->layout.format == SampleFormat::kUInt8 ? 1 : 2);
  state_->cache_bytes = cache_bytes;
}

TiffRegionReader::~TiffRegionReader() = default;

const TiffLayout& TiffRegionReader::layout() const { return state_->layout; }
const std::string& TiffRegionReader::path() const { return state_->path; }

at::Tensor TiffRegionReader::read(int64_t y, int64_t x, int64_t h, int64_t w) {
  State& s = *state_;
  const TiffLayout& l = s.layout;
  TORCH_CHECK(y >= 0 && x >= 0 && h > 0 && w > 0 && y + h <= l.height && x + w <= l.width,
              "TiffRegionReader::read: rectangle outside the image");
  const bool wide = l.format == SampleFormat::kUInt16;
  at::Tensor hwc = at::empty({h, w, l.channels}, wide ? at::kShort : at::kByte);
  auto* out = static_cast<uint8_t*>(hwc.data_ptr());
  const int64_t pb = s.pixel_bytes, bw = l.block_width, bh = l.block_height;
  for (int64_t by = y / bh; by * bh < y + h; ++by) {
    for (int64_t bx = x / bw; bx * bw < x + w; ++bx) {
      const std::vector<uint8_t>& block = s.block(by * s.blocks_across() + bx);
      const int64_t y0 = std::max(y, by * bh), y1 = std::min(y + h, (by + 1) * bh);
      const int64_t x0 = std::max(x, bx * bw), x1 = std::min(x + w, (bx + 1) * bw);
      for (int64_t r = y0; r < y1; ++r)
        std::memcpy(out + ((r - y) * w + (x0 - x)) * pb, block.data() + ((r - by * bh) * bw + (x0 - bx * bw)) * pb,
                    static_cast<size_t>((x1 - x0) * pb));
    }
  }
  at::Tensor chw = hwc.permute({2, 0, 1}).contiguous();
  if (wide) chw = chw.to(at::kInt).bitwise_and(0xFFFF);
  return l.min_is_white ? invert_min_is_white(chw, l.format) : chw;
}

RawImage TiffRegionReader::read_rows(int64_t y, int64_t h) {
  RawImage raw;
  raw.pixels = read(y, 0, h, state_->layout.width);
  raw.format = state_->layout.format;
  raw.min_is_white = state_->layout.min_is_white;
  return raw;
}

}  // namespace unet
