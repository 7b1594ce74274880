// Tests of images larger than memory: region reads against whole-image reads, tiled bands joined
// into a pyramid, prediction by rows and streamed prediction against the in-memory path, resume
// after a stop, and bad input.
#include "test_support.h"

#include "unet/data/components.h"
#include "unet/data/instance_targets.h"
#include "unet/data/preprocess.h"
#include "unet/data/tiff_region.h"
#include "unet/infer/band_objects.h"
#include "unet/infer/output.h"
#include "unet/infer/predictor.h"
#include "unet/infer/streamed.h"
#include "unet/infer/tiled.h"
#include "unet/model/checkpoint.h"
#include "unet/runtime/error.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <tiffio.h>

#include <filesystem>
#include <functional>
#include <map>
#include <unistd.h>

using namespace unet;
using namespace unet::test;
namespace fs = std::filesystem;

namespace {

/// How a test image is stored.
struct Storage {
  bool tiled = true;
  bool bigtiff = false;
  bool deflate = true;
  int bits = 8;
  int channels = 1;
  bool min_is_white = false;
  uint32_t block = 32;  // tile side, or rows per strip
};

/// Random pixels [C, H, W] (int32 holding 8- or 16-bit values) written with libtiff as `s` says.
at::Tensor write_image(const std::string& path, int64_t h, int64_t w, const Storage& s, uint64_t seed = 1) {
  at::manual_seed(static_cast<int64_t>(seed));
  const int64_t top = s.bits == 8 ? 256 : 65536;
  at::Tensor px = at::randint(0, top, {s.channels, h, w}, at::kInt);
  TIFF* t = TIFFOpen(path.c_str(), s.bigtiff ? "w8" : "w");
  EXPECT_NE(t, nullptr);
  TIFFSetField(t, TIFFTAG_IMAGEWIDTH, static_cast<uint32_t>(w));
  TIFFSetField(t, TIFFTAG_IMAGELENGTH, static_cast<uint32_t>(h));
  TIFFSetField(t, TIFFTAG_SAMPLESPERPIXEL, static_cast<uint16_t>(s.channels));
  TIFFSetField(t, TIFFTAG_BITSPERSAMPLE, static_cast<uint16_t>(s.bits));
  TIFFSetField(t, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
  TIFFSetField(t, TIFFTAG_PHOTOMETRIC, s.min_is_white ? PHOTOMETRIC_MINISWHITE : s.channels == 3 ? PHOTOMETRIC_RGB : PHOTOMETRIC_MINISBLACK);
  TIFFSetField(t, TIFFTAG_COMPRESSION, s.deflate ? COMPRESSION_ADOBE_DEFLATE : COMPRESSION_NONE);
  const at::Tensor hwc = (s.bits == 8 ? px.to(at::kByte) : px.to(at::kShort)).permute({1, 2, 0}).contiguous();
  const int64_t pixel = s.channels * s.bits / 8;
  const auto* base = static_cast<const uint8_t*>(hwc.data_ptr());
  if (s.tiled) {
    TIFFSetField(t, TIFFTAG_TILEWIDTH, s.block);
    TIFFSetField(t, TIFFTAG_TILELENGTH, s.block);
    std::vector<uint8_t> tile(static_cast<size_t>(s.block * s.block * pixel), 0);
    for (int64_t y = 0; y < h; y += s.block)
      for (int64_t x = 0; x < w; x += s.block) {
        std::fill(tile.begin(), tile.end(), 0);
        for (int64_t r = 0; r < s.block && y + r < h; ++r)
          std::memcpy(tile.data() + r * s.block * pixel, base + ((y + r) * w + x) * pixel,
                      static_cast<size_t>(std::min<int64_t>(s.block, w - x) * pixel));
        EXPECT_GE(TIFFWriteTile(t, tile.data(), static_cast<uint32_t>(x), static_cast<uint32_t>(y), 0, 0), 0);
      }
  } else {
    TIFFSetField(t, TIFFTAG_ROWSPERSTRIP, s.block);
    for (int64_t r = 0; r < h; ++r)
      EXPECT_GE(TIFFWriteScanline(t, const_cast<uint8_t*>(base + r * w * pixel), static_cast<uint32_t>(r), 0), 0);
  }
  TIFFWriteDirectory(t);
  TIFFClose(t);
  return px;
}

/// A predictor of a random tiny network (depth 2, 4 filters: tiles 60 -> 20) in tile mode.
Predictor tiny_predictor(uint64_t seed, const TileOptions& tiles, const Normalisation& normalisation = {}) {
  torch::manual_seed(static_cast<int64_t>(seed));
  UNet net(tiny_options());
  Predictor p(net, Geometry{60, 20}, c10::Device(c10::kCPU), 4);
  p.use_tiles(tiles);
  p.use_normalisation(normalisation);
  return p;
}

TileOptions tiles_60(int64_t overlap = 0, bool tta = false) {
  TileOptions t;
  t.input = 60;
  t.overlap = overlap;
  t.batch = 3;
  t.tta = tta;
  return t;
}

/// Page `page` (and SubIFD `level`, 0: the page itself) of a tiled TIFF, [H, W] as read by libtiff.
at::Tensor read_level(const std::string& path, int page, int level, at::ScalarType type) {
  TIFF* t = TIFFOpen(path.c_str(), "r");
  EXPECT_NE(t, nullptr);
  TIFFSetDirectory(t, static_cast<tdir_t>(page));
  if (level > 0) {
    uint16_t count = 0;
    uint64_t* offsets = nullptr;
    EXPECT_TRUE(TIFFGetField(t, TIFFTAG_SUBIFD, &count, &offsets));
    EXPECT_GE(count, level);
    EXPECT_TRUE(TIFFSetSubDirectory(t, offsets[level - 1]));
  }
  uint32_t w = 0, h = 0, tw = 0, th = 0;
  TIFFGetField(t, TIFFTAG_IMAGEWIDTH, &w);
  TIFFGetField(t, TIFFTAG_IMAGELENGTH, &h);
  TIFFGetField(t, TIFFTAG_TILEWIDTH, &tw);
  TIFFGetField(t, TIFFTAG_TILELENGTH, &th);
  at::Tensor out = at::zeros({(h + th - 1) / th * th, (w + tw - 1) / tw * tw}, type);
  at::Tensor tile = at::empty({th, tw}, type);
  for (uint32_t y = 0; y < h; y += th)
    for (uint32_t x = 0; x < w; x += tw) {
      EXPECT_GE(TIFFReadTile(t, tile.data_ptr(), x, y, 0, 0), 0);
      out.narrow(0, y, th).narrow(1, x, tw).copy_(tile);
    }
  TIFFClose(t);
  return out.narrow(0, 0, h).narrow(1, 0, w).contiguous();
}

/// Whether two label images [H, W] cut the same objects (one-to-one labels, background alike).
::testing::AssertionResult same_objects(const at::Tensor& a, const at::Tensor& b) {
  const at::Tensor x = a.to(at::kLong).contiguous(), y = b.to(at::kLong).contiguous();
  if (x.sizes() != y.sizes()) return ::testing::AssertionFailure() << "sizes differ";
  std::map<int64_t, int64_t> ab, ba;
  const int64_t* p = x.data_ptr<int64_t>();
  const int64_t* q = y.data_ptr<int64_t>();
  for (int64_t i = 0; i < x.numel(); ++i) {
    if ((p[i] == 0) != (q[i] == 0)) return ::testing::AssertionFailure() << "pixel " << i << ": " << p[i] << " vs " << q[i];
    if (p[i] == 0) continue;
    if (ab.emplace(p[i], q[i]).first->second != q[i] || ba.emplace(q[i], p[i]).first->second != p[i])
      return ::testing::AssertionFailure() << "object " << p[i] << " split or merged at pixel " << i;
  }
  return ::testing::AssertionSuccess() << ab.size() << " objects";
}

/// Two-class maps [2, H, W] of `count` discs (radius 2-6) at random places, some touching.
at::Tensor disc_maps(int64_t h, int64_t w, int count, uint64_t seed) {
  at::manual_seed(static_cast<int64_t>(seed));
  at::Tensor p = at::zeros({h, w});
  const at::Tensor ys = at::arange(h, at::kFloat).view({-1, 1}), xs = at::arange(w, at::kFloat).view({1, -1});
  for (int i = 0; i < count; ++i) {
    const float cy = at::randint(0, h, {1}).item<float>(), cx = at::randint(0, w, {1}).item<float>();
    const float r = 2 + at::randint(0, 5, {1}).item<float>();
    p = at::maximum(p, ((ys - cy).square() + (xs - cx).square()).le(r * r).to(at::kFloat) * (0.6f + 0.4f * at::rand({1})));
  }
  return at::stack({1 - p, p});
}

/// `maps` [K, 300, 90] cut into objects band by band (bands of 32 rows, margin 24), all bands in
/// one run or in two (as two processes), rows pushed in uneven pieces, checked against the whole
/// image's objects (more than `at_least` of them). `regions` (labels [300, 90]; undefined: the
/// whole image's objects) are the connected regions the method looks at, checked to be no taller
/// than the margin first.
void expect_banded_objects_equal_whole(const at::Tensor& maps, const std::function<at::Tensor(const at::Tensor&)>& cut,
                                       const std::string& what, int64_t at_least, at::Tensor regions = {}) {
  const at::Tensor whole = cut(maps);
  ASSERT_GT(whole.max().item<int64_t>(), at_least) << what;
  // The method's promise holds for regions no taller than the margin (24 rows): so are these.
  if (!regions.defined()) regions = whole;
  const at::Tensor rows = at::arange(300, at::kLong).view({-1, 1}).expand({300, 90});
  for (int64_t k = 1; k <= regions.max().item<int64_t>(); ++k) {
    const at::Tensor r = rows.masked_select(regions.eq(k));
    ASSERT_LE(r.max().item<int64_t>() - r.min().item<int64_t>() + 1, 24) << what << ", region " << k;
  }
  for (const std::vector<std::pair<int64_t, int64_t>>& runs :
       std::vector<std::vector<std::pair<int64_t, int64_t>>>{{{0, 10}}, {{0, 4}, {4, 10}}}) {
    at::Tensor labels = at::full({300, 90}, -1, at::kLong);
    std::vector<int64_t> owned(10, -1);
    for (const auto& [first, last] : runs) {
      BandObjects objects(
          300, 32, 24, cut,
          [&](int64_t band, const at::Tensor& l, int64_t n) {
            labels.narrow(0, band * 32, l.size(0)).copy_(l);
            owned[static_cast<size_t>(band)] = n;
          },
          first, last);
      for (int64_t y = objects.first_row(); y < objects.end_row(); y += 7)
        objects.push(y, maps.narrow(1, y, std::min<int64_t>(7, 300 - y)));
    }
    std::vector<int64_t> first_label;
    int64_t next = 1;
    for (const int64_t n : owned) {
      ASSERT_GE(n, 0) << what;
      first_label.push_back(next);
      next += n;
    }
    const at::Tensor numbered = final_labels(labels, first_label);
    EXPECT_TRUE(same_objects(numbered, whole)) << what << ", " << runs.size() << " runs";
    EXPECT_EQ(numbered.max().item<int64_t>(), whole.max().item<int64_t>()) << what;
    EXPECT_EQ(next - 1, whole.max().item<int64_t>()) << what;
  }
}

/// Instance labels [300, 90] of 50 discs (radius 2-6) at random places, some touching (a later
/// disc covers an earlier one where they overlap).
at::Tensor disc_labels(uint64_t seed) {
  at::manual_seed(static_cast<int64_t>(seed));
  at::Tensor labels = at::zeros({300, 90}, at::kLong);
  const at::Tensor ys = at::arange(300, at::kFloat).view({-1, 1}), xs = at::arange(90, at::kFloat).view({1, -1});
  for (int64_t i = 1; i <= 50; ++i) {
    const float cy = at::randint(0, 300, {1}).item<float>(), cx = at::randint(0, 90, {1}).item<float>();
    const float r = 2 + at::randint(0, 5, {1}).item<float>();
    labels.masked_fill_(((ys - cy).square() + (xs - cx).square()).le(r * r), i);
  }
  return labels;
}

}  // namespace

TEST(BandObjects, ObjectsAcrossSeamsEqualWholeImageObjects) {
  const at::Tensor maps = disc_maps(300, 90, 50, 4);
  for (const InstanceMethod method : {InstanceMethod::kComponents, InstanceMethod::kWatershed})
    ASSERT_NO_FATAL_FAILURE(expect_banded_objects_equal_whole(
        maps, [&](const at::Tensor& m) { return objects_of(m, ClassScheme::kPlain, method); },
        name_of(instance_method_names(), method), 40));
}

TEST(BandObjects, ObjectsOfInteriorDistanceAndDirectionModelsAcrossSeamsEqualWholeImageObjects) {
  // Each scheme's classes of touching discs, with soft rims (background 0.4, the most probable
  // class but under 0.5) that the objects grow over last: the flood, the flow and the growth
  // look no further than the connected objects, so the margin holds for them as well.
  const at::Tensor truth = disc_labels(4);
  const at::Tensor rim = rim_pixels(truth);
  for (const ClassScheme scheme : {ClassScheme::kInteriorBoundary, ClassScheme::kDistance, ClassScheme::kDirections}) {
    const at::Tensor classes = scheme == ClassScheme::kInteriorBoundary ? interior_boundary(truth, 2)
                               : scheme == ClassScheme::kDistance       ? distance_classes(truth, 4)
                                                                        : direction_classes(truth);
    const int64_t k = scheme == ClassScheme::kInteriorBoundary ? 3 : scheme == ClassScheme::kDistance ? 5 : kDirectionClasses;
    at::Tensor maps = one_hot_maps(classes, k);
    maps.masked_fill_(rim.unsqueeze(0), 0.6 / static_cast<double>(k - 1));
    maps[0].masked_fill_(rim, 0.4f);
    // The whole image's objects cover every disc pixel, the rims included (grown over).
    EXPECT_TRUE(at::equal(objects_of(maps, scheme) > 0, truth > 0)) << to_string(scheme);
    ASSERT_NO_FATAL_FAILURE(expect_banded_objects_equal_whole(
        maps, [&](const at::Tensor& m) { return objects_of(m, scheme); }, to_string(scheme), 30,
        connected_components(truth > 0)));
  }
}

TEST(BandObjects, AnObjectTallerThanTheMarginIsCutAtTheWindowEdge) {
  // A 3-pixel-wide bar over 100 rows: its window (band 16, margin 8) holds 32 rows of it.
  at::Tensor p = at::zeros({128, 20});
  p.narrow(0, 10, 100).narrow(1, 5, 3).fill_(1);
  const at::Tensor maps = at::stack({1 - p, p});
  at::Tensor labels = at::zeros({128, 20}, at::kLong);
  int64_t objects = 0;
  BandObjects cut(128, 16, 8, [](const at::Tensor& m) { return objects_of(m, ClassScheme::kPlain); },
                  [&](int64_t band, const at::Tensor& l, int64_t n) {
                    labels.narrow(0, band * 16, l.size(0)).copy_(l);
                    objects += n;
                  });
  cut.push(0, maps);
  EXPECT_GT(objects, 1);                                    // parted: documented, not hidden
  EXPECT_TRUE(at::equal(labels.gt(0), p.gt(0.5)));          // every pixel still in some object
}

TEST(RegionReader, RectanglesEqualWholeImageReads) {
  TempDir dir;
  const std::vector<Storage> storages = {
      {true, false, true, 8, 1, false, 32},   {true, true, true, 16, 1, false, 16}, {false, false, true, 8, 3, false, 5},
      {false, true, false, 16, 3, false, 7},  {true, false, false, 8, 3, false, 48}, {false, false, true, 8, 1, true, 9},
      {true, false, true, 16, 1, true, 16}};
  for (size_t i = 0; i < storages.size(); ++i) {
    const std::string path = dir.file("image" + std::to_string(i) + ".tif");
    write_image(path, 97, 131, storages[i], i + 1);
    const RawImage whole = read_tiff(path).front();
    TiffRegionReader reader(path, /*cache_bytes=*/4096);  // a small cache: blocks are decoded again
    EXPECT_EQ(reader.layout().width, 131);
    EXPECT_EQ(reader.layout().height, 97);
    EXPECT_EQ(reader.layout().channels, storages[i].channels);
    EXPECT_EQ(reader.layout().tiled, storages[i].tiled);
    EXPECT_EQ(reader.layout().bigtiff, storages[i].bigtiff);
    for (const auto& [y, x, h, w] : std::vector<std::array<int64_t, 4>>{{0, 0, 97, 131}, {3, 5, 40, 70}, {96, 130, 1, 1}, {31, 32, 34, 1}}) {
      const at::Tensor expected = whole.pixels.narrow(1, y, h).narrow(2, x, w);
      EXPECT_TRUE(at::equal(reader.read(y, x, h, w), expected)) << "storage " << i << " at " << y << "," << x;
    }
    const RawImage rows = reader.read_rows(10, 20);
    EXPECT_TRUE(at::equal(normalise(rows), normalise(whole).narrow(1, 10, 20))) << "storage " << i;
  }
}

TEST(RegionReader, RefusesWhatItCannotStreamWithOneLine) {
  TempDir dir;
  const std::string floats = dir.file("float.tif");
  write_tiff(floats, {at::rand({20, 30})});
  EXPECT_THROW(
      try { TiffRegionReader r(floats); } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("streamed reads take 8/16-bit"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find(floats), std::string::npos);
        throw;
      },
      Error);
  // A file cut after its header: the blocks it declares cannot be in it.
  const std::string whole = dir.file("whole.tif"), cut = dir.file("cut.tif");
  write_image(whole, 400, 400, Storage{true, false, false, 8, 1, false, 16});
  const std::string bytes = read_file(whole);
  write_file(cut, bytes.substr(0, bytes.size() / 2));
  bool refused = false;
  try {
    TiffRegionReader r(cut);
    r.read(0, 0, 400, 400);
  } catch (const Error& e) {
    refused = true;
    EXPECT_NE(std::string(e.what()).find(cut), std::string::npos) << e.what();
  }
  EXPECT_TRUE(refused);
  EXPECT_THROW(TiffRegionReader r(dir.file("missing.tif")), Error);
  // A stack: streaming page 1 alone would drop the others.
  write_tiff(dir.file("stack.tif"), {at::zeros({8, 8}, at::kByte), at::zeros({8, 8}, at::kByte)});
  try {
    TiffRegionReader r(dir.file("stack.tif"));
    ADD_FAILURE() << "a stack was streamed";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("several images"), std::string::npos) << e.what();
  }
  write_file(dir.file("text.tif"), "not an image");
  EXPECT_THROW(TiffRegionReader r(dir.file("text.tif")), Error);
}

TEST(TiledTiff, BandsJoinIntoAPyramidOfLevels) {
  TempDir dir;
  for (const at::ScalarType type : {at::kByte, at::kInt, at::kLong, at::kFloat}) {
    TiledTiffSpec spec;
    spec.width = 300;
    spec.height = 530;
    spec.tile = 64;
    spec.dtype = type;
    spec.nearest = type != at::kFloat;
    spec.pages = type == at::kFloat ? 2 : 1;
    at::manual_seed(3);
    const at::Tensor values = type == at::kFloat ? at::rand({spec.pages, spec.height, spec.width})
                              : type == at::kLong ? at::randint(0, 4294967296LL, {1, spec.height, spec.width}, at::kLong)
                              : at::randint(0, type == at::kByte ? 256 : 65536, {1, spec.height, spec.width}, type);
    std::vector<std::string> bands;
    for (int64_t b = 0; b < spec.bands(); ++b) {
      bands.push_back(dir.file("band" + std::to_string(b) + ".tif"));
      const int64_t rows = std::min(spec.tile, spec.height - b * spec.tile);
      write_tiled_band(bands.back(), spec, b, values.narrow(1, b * spec.tile, rows).contiguous());
    }
    const std::string out = dir.file("out.tif");
    assemble_tiled_tiff(out, spec, bands);
    EXPECT_EQ(spec.levels(), 5);  // 530 -> 265 -> 133 -> 67 -> 34
    const at::ScalarType stored = type == at::kByte ? at::kByte : type == at::kInt ? at::kShort : type == at::kLong ? at::kInt : at::kFloat;
    auto as_values = [&](const at::Tensor& t) {
      return type == at::kInt ? t.to(at::kInt).bitwise_and(0xFFFF) : type == at::kLong ? t.to(at::kLong).bitwise_and(0xFFFFFFFFLL) : t;
    };
    for (int page = 0; page < spec.pages; ++page) {
      EXPECT_TRUE(at::equal(as_values(read_level(out, page, 0, stored)), values[page])) << type;
      at::Tensor level = values[page];
      for (int l = 1; l < spec.levels(); ++l) {
        level = spec.nearest ? level.slice(0, 0, level.size(0), 2).slice(1, 0, level.size(1), 2).contiguous()
                             : at::avg_pool2d(level.unsqueeze(0), {2, 2}, {2, 2}, {0, 0}, true, false)[0];
        const at::Tensor read = as_values(read_level(out, page, l, stored));
        ASSERT_EQ(read.sizes(), level.sizes()) << "level " << l;
        if (spec.nearest) EXPECT_TRUE(at::equal(read, level)) << "level " << l << " " << type;
        else EXPECT_TRUE(at::allclose(read, level, 0, 1e-6)) << "level " << l;
      }
    }
    // Only the bands and the output: no temporary level files are left.
    int files = 0;
    for (const auto& e : fs::directory_iterator(dir.path())) files += e.path().filename().string()[0] == '.' ? 100 : 1;
    EXPECT_EQ(files, spec.bands() + 1);
    fs::remove(out);
    for (const auto& b : bands) fs::remove(b);
  }
}

TEST(StreamedRows, AnyRowRangeEqualsTheWholeImageBitForBit) {
  for (const TileOptions& tiles : {tiles_60(), tiles_60(8, true)}) {
    Predictor p = tiny_predictor(5, tiles);
    const at::Tensor image = at::rand({1, 77, 53}) * 2 - 1;
    const at::Tensor whole = p.predict({Sample{image}}).front();
    auto source = [&](int64_t y, int64_t h) { return image.narrow(1, y, h); };
    // Rows in three pieces, as ranks or a resumed run would ask for them.
    at::Tensor pieces = at::full_like(whole, -1);
    int64_t next = 0;
    for (const auto& [from, to] : std::vector<std::pair<int64_t, int64_t>>{{0, 13}, {13, 50}, {50, 77}}) {
      p.predict_rows(77, 53, source, [&](int64_t y, const at::Tensor& rows) {
        EXPECT_EQ(y, next);  // top to bottom, each row once
        next = y + rows.size(1);
        pieces.narrow(1, y, rows.size(1)).copy_(rows);
      }, from, to);
    }
    EXPECT_EQ(next, 77);
    EXPECT_TRUE(at::equal(pieces, whole)) << "tta " << tiles.tta;
  }
}

TEST(Streamed, MasksAndProbabilitiesEqualInMemoryAndAResumeEqualsAWholeRun) {
  TempDir dir;
  const std::string input = dir.file("slide.tif");
  write_image(input, 150, 170, Storage{true, true, true, 8, 1, false, 32}, 9);
  Normalisation percentile;
  percentile.mode = IntensityMode::kPercentile;
  Predictor p = tiny_predictor(7, tiles_60(4), percentile);
  const std::vector<Sample> samples = load_images(input);
  const at::Tensor expected = p.predict(samples).front();

  StreamedOutputs out;
  out.masks = dir.file("out/masks.tif");
  out.probabilities = dir.file("out/probabilities.tif");
  fs::create_directories(dir.file("out"));
  StreamOptions options;
  options.band = 32;
  const StreamedResult whole = predict_streamed(p, input, out, "tiny", options);
  EXPECT_EQ(whole.bands, 5);
  EXPECT_TRUE(at::equal(read_level(out.masks, 0, 0, at::kByte), mask_of(expected, false)));
  EXPECT_TRUE(at::equal(read_level(out.probabilities, 0, 0, at::kFloat), expected[1]));
  EXPECT_FALSE(fs::exists(stream_work_dir(out)));  // the bands are gone once joined
  const std::string masks = read_file(out.masks), probabilities = read_file(out.probabilities);

  // Stopped after the first tiles (as a kill would): the outputs stay as they were, the bands wait.
  fs::remove(out.masks);
  fs::remove(out.probabilities);
  options.progress_seconds = 0;
  int reports = 0;
  options.progress = [&reports](const std::string&, bool) {
    if (++reports == 20) throw Error("stopped");  // about halfway
  };
  EXPECT_THROW(predict_streamed(p, input, out, "tiny", options), Error);
  EXPECT_FALSE(fs::exists(out.masks));
  EXPECT_TRUE(fs::exists(stream_work_dir(out) + "/masks-000000.tif"));
  EXPECT_FALSE(fs::exists(stream_work_dir(out) + "/masks-000004.tif"));

  // Without resume the stopped run's bands are not thrown away: refused, the bands kept.
  options.progress = nullptr;
  EXPECT_THROW(predict_streamed(p, input, out, "tiny", options), OptionError);
  EXPECT_TRUE(fs::exists(stream_work_dir(out) + "/masks-000000.tif"));
  // Another model or tile overlap is not continued.
  options.resume = true;
  try {
    predict_streamed(p, input, out, "another", options);
    ADD_FAILURE() << "resumed another model's run";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("had another model"), std::string::npos) << e.what();
  }
  const StreamedResult resumed = predict_streamed(p, input, out, "tiny", options);
  EXPECT_GT(resumed.resumed_bands, 0);
  EXPECT_LT(resumed.tiles, whole.tiles);
  EXPECT_EQ(read_file(out.masks), masks);  // byte for byte
  EXPECT_EQ(read_file(out.probabilities), probabilities);
}

TEST(Streamed, InstanceLabelsEqualWholeImageObjects) {
  TempDir dir;
  const std::string input = dir.file("slide.tif");
  write_tiff(input, {disc_maps(150, 170, 40, 21)[1].mul(255).to(at::kByte)});  // bright discs, stripped
  // A random network whose class 1 holds 15% of the pixels (its bias moved): many small objects.
  torch::manual_seed(8);
  UNet net(tiny_options());
  Predictor probe(net, Geometry{60, 20}, c10::Device(c10::kCPU), 4);
  probe.use_tiles(tiles_60());
  const at::Tensor p1 = probe.predict(load_images(input)).front()[1];
  const double t = at::quantile(p1.reshape({-1}), 0.85).item<double>();
  {
    torch::NoGradGuard no_grad;
    for (const auto& param : net->named_parameters())
      if (param.key() == "head.bias") param.value()[1].sub_(std::log(t / (1 - t)));
  }
  Predictor p(net, Geometry{60, 20}, c10::Device(c10::kCPU), 4);
  p.use_tiles(tiles_60());
  const at::Tensor whole = objects_of(p.predict(load_images(input)).front(), ClassScheme::kPlain);
  ASSERT_GT(whole.max().item<int64_t>(), 5);
  StreamedOutputs out;
  out.masks = dir.file("masks.tif");
  out.instances = dir.file("instances.tif");
  StreamOptions options;
  options.band = 32;
  options.object_margin = 32;
  const StreamedResult r = predict_streamed(p, input, out, "tiny", options);
  EXPECT_EQ(r.objects, whole.max().item<int64_t>());
  EXPECT_TRUE(same_objects(read_level(out.instances, 0, 0, at::kShort), whole));  // 16-bit: few objects
  EXPECT_EQ(read_tiff(out.instances).front().format, SampleFormat::kUInt16);
  // Objects under a mean object probability are dropped band by band as in the whole image: the
  // median object's mean drops about half.
  const at::Tensor maps = p.predict(load_images(input)).front();
  const at::Tensor flat = whole.reshape({-1});
  const at::Tensor means = at::bincount(flat, maps[1].reshape({-1}).to(at::kDouble)).div(at::bincount(flat).to(at::kDouble));
  ObjectRule rule;
  rule.min_probability = at::median(means.slice(0, 1)).item<double>();
  const at::Tensor likely = objects_of(maps, ClassScheme::kPlain, InstanceMethod::kComponents, rule);
  ASSERT_GT(likely.max().item<int64_t>(), 2);
  ASSERT_LT(likely.max().item<int64_t>(), whole.max().item<int64_t>());
  out.objects = rule;
  out.instances = dir.file("likely.tif");
  out.masks = dir.file("masks2.tif");
  EXPECT_EQ(predict_streamed(p, input, out, "tiny", options).objects, likely.max().item<int64_t>());
  EXPECT_TRUE(same_objects(read_level(out.instances, 0, 0, at::kShort), likely));
}

TEST(Streamed, HistogramStatisticsEqualWholeImageStatistics) {
  for (const SampleFormat format : {SampleFormat::kUInt8, SampleFormat::kUInt16}) {
    const int64_t levels = format == SampleFormat::kUInt8 ? 256 : 65536;
    at::manual_seed(11);
    RawImage raw;
    raw.format = format;
    raw.pixels = at::randint(0, levels / 3, {3, 61, 47}, format == SampleFormat::kUInt8 ? at::kByte : at::kInt);
    at::Tensor counts = at::zeros({3, levels}, at::kLong);
    for (int64_t c = 0; c < 3; ++c) counts[c] = at::bincount(raw.pixels[c].reshape({-1}).to(at::kLong), {}, levels);
    for (const IntensityMode mode : {IntensityMode::kRange, IntensityMode::kPercentile, IntensityMode::kMeanStd}) {
      Normalisation n;
      n.mode = mode;
      n.low = 2.5;
      n.high = 99.1;
      const at::Tensor whole = normalisation_affine(normalise(raw), n);
      const at::Tensor streamed = normalisation_affine_from_histograms(counts, format, n);
      if (mode == IntensityMode::kMeanStd) EXPECT_TRUE(at::allclose(streamed, whole, 1e-6, 0));
      else EXPECT_TRUE(at::equal(streamed, whole)) << static_cast<int>(mode) << " " << streamed << whole;
    }
  }
}

TEST(Streamed, PredictStreamsBeyondThePixelLimitInFilesFoldersAndProcesses) {
  TempDir dir;
  const std::string model = dir.file("m"), input = dir.file("slide.tif");
  UNet net(tiny_options());
  fs::create_directories(model);
  CheckpointInfo info{tiny_options(), 60, 1};
  info.input_mode = InputMode::kTile;
  save_checkpoint(checkpoint_path(model), net, nullptr, info);
  write_image(input, 700, 100, Storage{true, false, true, 8, 1, false, 16});  // 3 bands of 256 rows
  // The same image in memory, and streamed because it is over the limit.
  auto r = run_unet("predict --threads 1 --model-dir " + model + " --input " + input + " --output-dir " + dir.file("a") +
                    " --no-overlays --no-probabilities");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = run_unet("predict --threads 1 --model-dir " + model + " --input " + input + " --output-dir " + dir.file("b") +
               " --no-probabilities --max-image-pixels 10000");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("band by band"), std::string::npos) << r.out;
  EXPECT_TRUE(at::equal(read_tiff(dir.file("b/test-masks.tif")).front().pixels, read_tiff(dir.file("a/test-masks.tif")).front().pixels));
  // 8-bit probabilities, alike in memory and streamed, round(255 p) of the float ones.
  for (const char* mode : {"", " --stream"}) {
    const std::string to = dir.file(std::string("p8") + (*mode ? "s" : "m"));
    r = run_unet("predict --threads 1 --model-dir " + model + " --input " + input + " --output-dir " + to +
                 " --no-overlays --probability-bits 8" + mode);
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  r = run_unet("predict --threads 1 --model-dir " + model + " --input " + input + " --output-dir " + dir.file("p32") + " --no-overlays");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const RawImage p8 = read_tiff(dir.file("p8m/test-probabilities.tif")).front();
  EXPECT_EQ(p8.format, SampleFormat::kUInt8);
  EXPECT_TRUE(at::equal(read_tiff(dir.file("p8s/test-probabilities.tif")).front().pixels, p8.pixels));
  const at::Tensor p32 = read_tiff(dir.file("p32/test-probabilities.tif")).front().pixels;
  EXPECT_TRUE(at::equal(p8.pixels, p32.mul(255).round().to(at::kByte)));
  // A folder: the TIFF over the limit band by band, the small PNG in memory, one output each.
  fs::create_directories(dir.file("in"));
  fs::copy_file(input, dir.file("in/slide.tif"));
  write_png(dir.file("in/small.png"), at::zeros({1, 40, 30}, at::kByte));
  r = run_unet("predict --threads 1 --model-dir " + model + " --input " + dir.file("in") + " --output-dir " + dir.file("c") +
               " --no-overlays --max-image-pixels 10000");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(at::equal(read_tiff(dir.file("c/slide.tif")).front().pixels, read_tiff(dir.file("a/test-masks.tif")).front().pixels));
  EXPECT_TRUE(fs::exists(dir.file("c/slide_probabilities.tif")));
  EXPECT_EQ(read_png(dir.file("c/small.png")).pixels.sizes(), (std::vector<int64_t>{1, 40, 30}));
  // --stream takes TIFFs only; --resume is for streamed runs.
  expect_one_line_error(run_unet("predict --model-dir " + model + " --input " + dir.file("in/small.png") + " --stream"),
                        "--stream reads TIFF");
  expect_one_line_error(run_unet("predict --model-dir " + model + " --input " + input + " --resume"), "streamed prediction");
  // Two processes share the bands (1 and 2 of 3, the seam between them inside the image): the same
  // files as one.
  const std::string one = dir.file("one"), two = dir.file("two");
  r = run_unet("predict --threads 1 --model-dir " + model + " --input " + input + " --output-dir " + one +
               " --stream --instances --no-overlays");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const int port = 20000 + (static_cast<int>(::getpid()) * 13) % 20000;
  r = run_unet("launch --nproc-per-node 2 --master-port " + std::to_string(port) + " -- predict --threads 1 --model-dir " +
               model + " --input " + input + " --output-dir " + two + " --stream --instances --no-overlays");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  for (const char* name : {"test-masks.tif", "test-probabilities.tif", "test-instances.tif"})
    EXPECT_EQ(read_file(two + "/" + name), read_file(one + "/" + name)) << name;
}

TEST(Streamed, BadInputAndAFullDiskGiveOneLineAndNoOutput) {
  TempDir dir;
  const std::string model = dir.file("m"), input = dir.file("slide.tif"), cut = dir.file("cut.tif");
  UNet net(tiny_options());
  fs::create_directories(model);
  CheckpointInfo info{tiny_options(), 60, 1};
  save_checkpoint(checkpoint_path(model), net, nullptr, info);
  write_image(input, 300, 200, Storage{true, true, false, 8, 1, false, 16});
  const std::string bytes = read_file(input);
  write_file(cut, bytes.substr(0, bytes.size() * 3 / 4));  // the last tiles missing
  auto r = run_unet("predict --threads 1 --model-dir " + model + " --input " + cut + " --output-dir " + dir.file("a") + " --stream --no-overlays");
  expect_one_line_error(r, cut);
  EXPECT_FALSE(fs::exists(dir.file("a/test-masks.tif")));
  EXPECT_FALSE(fs::exists(dir.file("a/test-probabilities.tif")));
  // A tile that does not inflate, two thirds in: the run stops there and its bands stay. Other
  // weights saved at the same path and step (a model retrained with --overwrite, a shipped model
  // updated) are another model: refused, not joined to them.
  const std::string bad = dir.file("bad.tif");
  write_image(bad, 300, 200, Storage{true, false, true, 8, 1, false, 16}, 3);
  std::string damaged = read_file(bad);
  for (size_t i = damaged.size() * 2 / 3; i < damaged.size() * 2 / 3 + 64; ++i) damaged[i] = static_cast<char>(damaged[i] ^ 0x5a);
  write_file(bad, damaged);
  const std::string stopped = dir.file("s/.test-masks.tif.unet-bands/manifest.json");
  r = run_unet("predict --threads 1 --model-dir " + model + " --input " + bad + " --output-dir " + dir.file("s") + " --stream --no-overlays");
  EXPECT_NE(r.exit_code, 0);
  ASSERT_TRUE(fs::exists(stopped)) << r.err;
  torch::manual_seed(99);
  UNet other(tiny_options());
  save_checkpoint(checkpoint_path(model), other, nullptr, info);
  r = run_unet("predict --threads 1 --model-dir " + model + " --input " + bad + " --output-dir " + dir.file("s") +
               " --stream --resume --no-overlays");
  expect_one_line_error(r, "had another model");
  EXPECT_TRUE(fs::exists(stopped));
  // A disk too small for the outputs: refused before predicting, or failing while writing; either
  // way one line and nothing under the outputs' names.
  SmallDisk disk(4 << 10);
  r = run_unet("predict --threads 1 --model-dir " + model + " --input " + input + " --output-dir " + disk.path() + " --stream --no-overlays",
               disk.prefix());
  expect_one_line_error(r, disk.path());
  EXPECT_FALSE(fs::exists(disk.file("test-masks.tif")));
  EXPECT_FALSE(fs::exists(disk.file("test-probabilities.tif")));
}
