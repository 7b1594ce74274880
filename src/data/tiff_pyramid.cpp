// Tiled BigTIFF output band by band, joined into an OME-TIFF pyramid: see unet/data/tiff_region.h.
//
// Why bands in files of their own: a band is what a prediction finishes at once; kept as a file it
// survives a killed run (`--resume` starts after the last one) and lets several processes share an
// image, each writing its bands. Joining copies the compressed tiles (no re-encoding) and makes
// the downsampled levels in one pass: each level keeps the rows it has not yet written as tiles and
// hands pairs of rows, downsampled, to the next.
#include "unet/data/tiff_region.h"

#include "tiff_internal.h"
#include "unet/runtime/error.h"
#include "unet/runtime/files.h"

#include <ATen/ATen.h>

#include <filesystem>
#include <unistd.h>

namespace unet {
using namespace tiff_detail;
namespace fs = std::filesystem;

int64_t TiledTiffSpec::levels() const {
  int64_t n = 1;
  for (int64_t side = std::max(width, height); side > tile && n < max_levels; side = (side + 1) / 2) ++n;
  return n;
}

namespace {

struct Encoding {
  uint16_t bits;
  uint16_t format;
  at::ScalarType stored;  // the dtype of the bytes in the file
  const char* ome;
};

Encoding encoding_of(at::ScalarType dtype) {
  switch (dtype) {
    case at::kByte: return {8, SAMPLEFORMAT_UINT, at::kByte, "uint8"};
    case at::kInt: return {16, SAMPLEFORMAT_UINT, at::kShort, "uint16"};
    case at::kLong: return {32, SAMPLEFORMAT_UINT, at::kInt, "uint32"};
    case at::kFloat: return {32, SAMPLEFORMAT_IEEEFP, at::kFloat, "float"};
    default: TORCH_CHECK(false, "tiled TIFF: unsupported dtype ", dtype);
  }
}

/// The tags of one tiled image of `width` x `height` (a page at full resolution or a level).
void set_tags(TIFF* t, const TiledTiffSpec& spec, int64_t width, int64_t height, bool reduced) {
  const Encoding e = encoding_of(spec.dtype);
  TIFFSetField(t, TIFFTAG_IMAGEWIDTH, static_cast<uint32_t>(width));
  TIFFSetField(t, TIFFTAG_IMAGELENGTH, static_cast<uint32_t>(height));
  TIFFSetField(t, TIFFTAG_TILEWIDTH, static_cast<uint32_t>(spec.tile));
  TIFFSetField(t, TIFFTAG_TILELENGTH, static_cast<uint32_t>(spec.tile));
  TIFFSetField(t, TIFFTAG_SAMPLESPERPIXEL, uint16_t{1});
  TIFFSetField(t, TIFFTAG_BITSPERSAMPLE, e.bits);
  TIFFSetField(t, TIFFTAG_SAMPLEFORMAT, e.format);
  TIFFSetField(t, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
  TIFFSetField(t, TIFFTAG_COMPRESSION, COMPRESSION_ADOBE_DEFLATE);
  if (reduced) TIFFSetField(t, TIFFTAG_SUBFILETYPE, FILETYPE_REDUCEDIMAGE);
  const bool paletted = spec.palette.defined() && spec.dtype == at::kByte;
  TIFFSetField(t, TIFFTAG_PHOTOMETRIC, paletted ? PHOTOMETRIC_PALETTE : PHOTOMETRIC_MINISBLACK);
  if (paletted) {
    const std::vector<uint16_t> map = colour_map(spec.palette);
    TIFFSetField(t, TIFFTAG_COLORMAP, map.data(), map.data() + 256, map.data() + 512);
  }
}

/// Writes rows [h, W] (stored dtype, h <= tile) as tile row `tile_row` of the open image.
void write_tile_row(TIFF* t, const std::string& path, const TiledTiffSpec& spec, int64_t tile_row, const at::Tensor& rows) {
  const int64_t w = rows.size(1), tile = spec.tile, across = (w + tile - 1) / tile;
  at::Tensor buffer = at::zeros({tile, tile}, rows.options());
  for (int64_t j = 0; j < across; ++j) {
    const int64_t cols = std::min(tile, w - j * tile);
    buffer.zero_();
    buffer.narrow(0, 0, rows.size(0)).narrow(1, 0, cols).copy_(rows.narrow(1, j * tile, cols));
    const auto index = static_cast<uint32_t>(tile_row * across + j);
    if (TIFFWriteEncodedTile(t, index, buffer.data_ptr(), static_cast<tmsize_t>(buffer.nbytes())) < 0) fail_write(path);
  }
}

/// Values as they are stored: uint16 as int16 bits, uint32 labels as int32 bits.
at::Tensor stored(const at::Tensor& values, const TiledTiffSpec& spec) {
  const Encoding e = encoding_of(spec.dtype);
  if (spec.dtype == at::kInt) return values.clamp(0, 65535).to(at::kInt).to(at::kShort).contiguous();
  if (spec.dtype == at::kLong) return values.clamp(0, 4294967295LL).to(at::kLong).to(at::kInt).contiguous();
  return values.to(e.stored).contiguous();
}

/// Rows [h, W] downsampled by 2 in both directions (h even, or the image's last row alone).
at::Tensor halve(const at::Tensor& rows, bool nearest) {
  if (nearest) return rows.slice(0, 0, rows.size(0), 2).slice(1, 0, rows.size(1), 2).contiguous();
  at::Tensor x = rows.to(at::kFloat).unsqueeze(0).unsqueeze(0);
  // ceil_mode averages the partial blocks at the right and bottom edges over their own pixels.
  return at::avg_pool2d(x, {2, 2}, {2, 2}, {0, 0}, /*ceil_mode=*/true, /*count_include_pad=*/false)[0][0].to(rows.scalar_type());
}

/// One downsampled level of one page: rows arrive at the level's resolution, whole tile rows go to
/// its temporary file, pairs of rows go down to the next level.
class Level {
 public:
  /// Level `level` (1: half the full resolution) in the file `file(level)`, and `remaining` more.
  Level(const std::function<std::string(int64_t)>& file, int64_t level, const TiledTiffSpec& spec, int64_t width,
        int64_t height, int64_t remaining)
      : path_(file(level)), spec_(spec), width_(width), height_(height) {
    errno = 0;
    tif_.reset(TIFFOpen(path_.c_str(), "w8"));
    if (!tif_) fail_write(path_);
    set_tags(tif_.get(), spec, width, height, true);
    if (remaining > 0)
      next_ = std::make_unique<Level>(file, level + 1, spec, (width + 1) / 2, (height + 1) / 2, remaining - 1);
  }

  /// Values (the spec's in-memory dtype) [h, width].
  void push(const at::Tensor& rows) {
    pending_ = pending_.defined() ? at::cat({pending_, rows}) : rows;
    while (pending_.size(0) >= spec_.tile || (done_ + pending_.size(0) == height_ && pending_.size(0) > 0)) {
      const int64_t n = std::min(spec_.tile, pending_.size(0));
      write_tile_row(tif_.get(), path_, spec_, done_ / spec_.tile, stored(pending_.narrow(0, 0, n), spec_));
      done_ += n;
      pending_ = pending_.narrow(0, n, pending_.size(0) - n);
    }
    if (!next_) return;
    pairs_ = pairs_.defined() ? at::cat({pairs_, rows}) : rows;
    const int64_t even = pairs_.size(0) / 2 * 2;
    const bool last = (fed_ + pairs_.size(0)) == height_;
    const int64_t take = last ? pairs_.size(0) : even;
    if (take > 0) {
      next_->push(halve(pairs_.narrow(0, 0, take), spec_.nearest));
      fed_ += take;
      pairs_ = pairs_.narrow(0, take, pairs_.size(0) - take);
    }
  }

  /// Closes the files; the levels from this one down, in order.
  void finish(std::vector<std::string>& files) {
    if (!TIFFWriteDirectory(tif_.get())) fail_write(path_);
    tif_.reset();
    files.push_back(path_);
    if (next_) next_->finish(files);
  }

 private:
  std::string path_;
  const TiledTiffSpec& spec_;
  int64_t width_, height_;
  TiffPtr tif_;
  at::Tensor pending_, pairs_;
  int64_t done_ = 0, fed_ = 0;
  std::unique_ptr<Level> next_;
};

/// Text as an XML attribute value.
std::string xml_escaped(const std::string& text) {
  std::string out;
  for (const char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string ome_xml(const TiledTiffSpec& spec) {
  std::string channels;
  for (int64_t c = 0; c < spec.pages; ++c)
    channels += "<Channel ID=\"Channel:0:" + std::to_string(c) + "\" SamplesPerPixel=\"1\"/>";
  return "<?xml version=\"1.0\" encoding=\"UTF-8\"?><OME xmlns=\"http://www.openmicroscopy.org/Schemas/OME/2016-06\">"
         "<Image ID=\"Image:0\" Name=\"" + xml_escaped(spec.name) + "\"><Pixels ID=\"Pixels:0\" DimensionOrder=\"XYCZT\" Type=\"" +
         encoding_of(spec.dtype).ome + "\" SizeX=\"" + std::to_string(spec.width) + "\" SizeY=\"" +
         std::to_string(spec.height) + "\" SizeC=\"" + std::to_string(spec.pages) +
         "\" SizeZ=\"1\" SizeT=\"1\" BigEndian=\"false\" Interleaved=\"false\">" + channels +
         "<TiffData IFD=\"0\" PlaneCount=\"" + std::to_string(spec.pages) + "\"/></Pixels></Image></OME>";
}

/// Copies every tile of the current directory of `from` into tiles [first, ...) of `to`'s.
void copy_raw_tiles(TIFF* from, const std::string& from_path, TIFF* to, const std::string& to_path, uint32_t first) {
  std::vector<uint8_t> raw;
  const uint32_t n = TIFFNumberOfTiles(from);
  for (uint32_t i = 0; i < n; ++i) {
    const uint64_t size = TIFFGetStrileByteCount(from, i);
    raw.resize(static_cast<size_t>(size));
    if (size == 0 || TIFFReadRawTile(from, i, raw.data(), static_cast<tmsize_t>(size)) != static_cast<tmsize_t>(size))
      fail_file(from_path, "tile " + std::to_string(i + 1) + ": " + reason());
    if (TIFFWriteRawTile(to, first + i, raw.data(), static_cast<tmsize_t>(size)) < 0) fail_write(to_path);
  }
}

TiffPtr open_band(const std::string& path) {
  require_tiff_magic(path);
  tiff_last_error.clear();
  TiffPtr band(TIFFOpen(path.c_str(), "rm"));
  if (!band) fail_file(path, "cannot open as TIFF (" + reason() + ")");
  return band;
}

/// The values of page `page` of a band file, [h, W] in the spec's in-memory dtype.
at::Tensor read_band_page(TIFF* band, const std::string& path, const TiledTiffSpec& spec, int64_t page) {
  if (!TIFFSetDirectory(band, static_cast<tdir_t>(page))) fail_file(path, "page " + std::to_string(page + 1) + " is missing");
  uint32_t h = 0;
  TIFFGetField(band, TIFFTAG_IMAGELENGTH, &h);
  const int64_t tile = spec.tile, across = (spec.width + tile - 1) / tile;
  const at::ScalarType type = encoding_of(spec.dtype).stored;
  at::Tensor rows = at::empty({tile, across * tile}, type);
  at::Tensor buffer = at::empty({tile, tile}, type);
  for (int64_t j = 0; j < across; ++j) {
    if (TIFFReadEncodedTile(band, static_cast<uint32_t>(j), buffer.data_ptr(), static_cast<tmsize_t>(buffer.nbytes())) < 0)
      fail_file(path, "tile " + std::to_string(j + 1) + ": " + reason());
    rows.narrow(1, j * tile, tile).copy_(buffer);
  }
  rows = rows.narrow(0, 0, h).narrow(1, 0, spec.width);
  if (spec.dtype == at::kInt) return rows.to(at::kInt).bitwise_and(0xFFFF);
  if (spec.dtype == at::kLong) return rows.to(at::kLong).bitwise_and(0xFFFFFFFFLL);
  return rows.contiguous();
}

}  // namespace

void write_tiled_band(const std::string& path, const TiledTiffSpec& spec, int64_t band, const at::Tensor& rows) {
  install_handlers();
  const int64_t h = std::min(spec.tile, spec.height - band * spec.tile);
  TORCH_CHECK(rows.dim() == 3 && rows.size(0) == spec.pages && rows.size(1) == h && rows.size(2) == spec.width,
              "write_tiled_band: band ", band, " must be [", spec.pages, ", ", h, ", ", spec.width, "]");
  write_atomically(path, [&](const std::string& tmp) {
    errno = 0;
    TiffPtr tif(TIFFOpen(tmp.c_str(), "w8"));
    if (!tif) fail_write(path);
    for (int64_t p = 0; p < spec.pages; ++p) {
      set_tags(tif.get(), spec, spec.width, h, false);
      write_tile_row(tif.get(), path, spec, 0, stored(rows[p], spec));
      if (!TIFFWriteDirectory(tif.get())) fail_write(path);
    }
  });
}

void assemble_tiled_tiff(const std::string& path, const TiledTiffSpec& spec, const std::vector<std::string>& band_paths,
                         const std::function<at::Tensor(const at::Tensor&)>& transform, at::ScalarType band_dtype) {
  TiledTiffSpec band_spec = spec;  // how the bands store their values
  if (band_dtype != at::ScalarType::Undefined) band_spec.dtype = band_dtype;
  TORCH_CHECK(transform || band_spec.dtype == spec.dtype, "assemble_tiled_tiff: bands of another type need a transform");
  install_handlers();
  TORCH_CHECK(static_cast<int64_t>(band_paths.size()) == spec.bands(), "assemble_tiled_tiff: ", spec.bands(), " bands expected");
  const int64_t levels = spec.levels(), across = (spec.width + spec.tile - 1) / spec.tile;
  // Named as `write_atomically`'s temporaries, so that those a killed run leaves are cleaned up
  // (`remove_stale_temporaries`).
  const std::string stem = (fs::path(path).parent_path() / ("." + fs::path(path).filename().string())).string() +
                           ".tmp" + std::to_string(::getpid()) + ".";
  const auto level_file = [&](int64_t l) { return stem + std::to_string(900000 + l); };
  std::vector<std::string> level_files;
  auto remove_levels = [&] {
    std::error_code ec;
    for (int64_t l = 1; l < levels; ++l) fs::remove(level_file(l), ec);
  };
  try {
    write_atomically(path, [&](const std::string& tmp) {
      errno = 0;
      TiffPtr out(TIFFOpen(tmp.c_str(), "w8"));
      if (!out) fail_write(path);
      for (int64_t p = 0; p < spec.pages; ++p) {
        set_tags(out.get(), spec, spec.width, spec.height, false);
        if (p == 0) TIFFSetField(out.get(), TIFFTAG_IMAGEDESCRIPTION, ome_xml(spec).c_str());
        std::vector<uint64_t> offsets(static_cast<size_t>(levels - 1), 0);
        if (levels > 1) TIFFSetField(out.get(), TIFFTAG_SUBIFD, static_cast<uint16_t>(levels - 1), offsets.data());
        std::unique_ptr<Level> level;
        if (levels > 1)
          level = std::make_unique<Level>(level_file, 1, spec, (spec.width + 1) / 2, (spec.height + 1) / 2, levels - 2);
        for (size_t b = 0; b < band_paths.size(); ++b) {
          TiffPtr band = open_band(band_paths[b]);
          if (!TIFFSetDirectory(band.get(), static_cast<tdir_t>(p))) fail_file(band_paths[b], "page is missing");
          if (!transform) copy_raw_tiles(band.get(), band_paths[b], out.get(), path, static_cast<uint32_t>(static_cast<int64_t>(b) * across));
          if (level || transform) {
            at::Tensor rows = read_band_page(band.get(), band_paths[b], band_spec, p);
            if (transform) {
              rows = transform(rows);
              write_tile_row(out.get(), path, spec, static_cast<int64_t>(b), stored(rows, spec));
            }
            if (level) level->push(halve(rows, spec.nearest));
          }
        }
        if (!TIFFWriteDirectory(out.get())) fail_write(path);
        level_files.clear();
        if (level) level->finish(level_files);
        for (size_t l = 0; l < level_files.size(); ++l) {
          TiffPtr from = open_band(level_files[l]);
          uint32_t w = 0, h = 0;
          TIFFGetField(from.get(), TIFFTAG_IMAGEWIDTH, &w);
          TIFFGetField(from.get(), TIFFTAG_IMAGELENGTH, &h);
          set_tags(out.get(), spec, w, h, true);
          copy_raw_tiles(from.get(), level_files[l], out.get(), path, 0);
          if (!TIFFWriteDirectory(out.get())) fail_write(path);
        }
        remove_levels();
      }
      if (!TIFFFlush(out.get())) fail_write(path);
    });
  } catch (...) {
    remove_levels();
    throw;
  }
}

}  // namespace unet
