// Streamed prediction of TIFF images larger than memory: see unet/infer/streamed.h.
#include "unet/infer/streamed.h"

#include "unet/data/preprocess.h"
#include "unet/infer/output.h"
#include "unet/runtime/error.h"
#include "unet/runtime/files.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

namespace unet {
namespace fs = std::filesystem;
namespace {

using Clock = std::chrono::steady_clock;

std::string band_file(const std::string& dir, const char* kind, int64_t band) {
  char name[64];
  std::snprintf(name, sizeof(name), "%s-%06lld.tif", kind, static_cast<long long>(band));
  return (fs::path(dir) / name).string();
}

/// The counts of every stored value per channel, [C, levels], from one pass over the image.
at::Tensor value_histograms(TiffRegionReader& reader, int64_t rows_per_read) {
  const TiffLayout& l = reader.layout();
  const int64_t levels = l.format == SampleFormat::kUInt8 ? 256 : 65536;
  at::Tensor counts = at::zeros({l.channels, levels}, at::kLong);
  for (int64_t y = 0; y < l.height; y += rows_per_read) {
    const at::Tensor px = reader.read(y, 0, std::min(rows_per_read, l.height - y), l.width);
    for (int64_t c = 0; c < l.channels; ++c) counts[c].add_(at::bincount(px[c].reshape({-1}).to(at::kLong), {}, levels));
  }
  return counts;
}

/// Everything that changes a pixel of the outputs, so that `resume` continues only its own run.
nlohmann::json manifest_of(const std::string& input, const TiffLayout& layout, const Predictor& predictor,
                           const StreamedOutputs& outputs, const std::string& model_id, int64_t band) {
  std::error_code ec;
  const auto size = fs::file_size(input, ec);
  const auto mtime = fs::last_write_time(input, ec).time_since_epoch().count();
  const TileOptions& t = predictor.tile_options();
  return {{"input", fs::absolute(input).string()},
          {"input_bytes", static_cast<uint64_t>(size)},
          {"input_mtime", static_cast<int64_t>(mtime)},
          {"width", layout.width},
          {"height", layout.height},
          {"model", model_id},
          {"tile", t.input},
          {"overlap", t.overlap},
          {"blend", name_of(blend_names(), t.blend)},
          {"tta", t.tta},
          {"normalisation", predictor.normalisation().describe()},
          {"band", band},
          {"masks", outputs.masks},
          {"probabilities", outputs.probabilities},
          {"index_masks", outputs.index_masks}};
}

/// Prepares the work folder: a fresh one (a stopped run's bands removed) or, under `resume`, the
/// stopped run's when its manifest matches. Returns the bands already complete at its start.
int64_t prepare_work_dir(const std::string& dir, const nlohmann::json& manifest, const StreamedOutputs& outputs,
                         int64_t bands, bool resume) {
  const std::string manifest_path = (fs::path(dir) / "manifest.json").string();
  std::error_code ec;
  int64_t complete = 0;
  if (resume && fs::exists(manifest_path, ec)) {
    nlohmann::json recorded;
    try {
      std::ifstream in(manifest_path);
      recorded = nlohmann::json::parse(in);
    } catch (const std::exception&) {
      fail_file(manifest_path, "damaged manifest of a stopped run: remove " + dir + " and run without --resume");
    }
    for (auto it = manifest.begin(); it != manifest.end(); ++it) {
      if (!recorded.contains(it.key()) || recorded[it.key()] != it.value())
        throw Error("--resume: the stopped run in " + dir + " had another " + it.key() + " (" +
                    (recorded.contains(it.key()) ? recorded[it.key()].dump() : "none") + ", now " + it.value().dump() +
                    "); run without --resume to start over");
    }
    while (complete < bands && fs::exists(band_file(dir, "masks", complete), ec) &&
           (outputs.probabilities.empty() || fs::exists(band_file(dir, "probabilities", complete), ec)))
      ++complete;
    return complete;
  }
  if (resume) std::fprintf(stderr, "unet: --resume: no stopped run in %s; starting from the top\n", dir.c_str());
  if (fs::exists(dir, ec)) {
    if (!resume) std::fprintf(stderr, "unet: starting over: %s held a stopped run (add --resume to continue one)\n", dir.c_str());
    fs::remove_all(dir, ec);
    if (ec) fail_file(dir, "cannot remove a stopped run's bands (" + ec.message() + ")");
  }
  ensure_writable_directory(dir, "band");
  write_text_atomically(manifest_path, manifest.dump(2) + "\n");
  return 0;
}

/// The outputs' specs: one page of masks; class 1's probabilities or one page per class.
TiledTiffSpec mask_spec(const TiffLayout& l, int64_t classes, const StreamedOutputs& o, int64_t band) {
  TiledTiffSpec s;
  s.width = l.width;
  s.height = l.height;
  s.tile = band;
  s.dtype = at::kByte;
  s.nearest = true;
  s.palette = mask_palette(classes, o.index_masks);
  s.name = fs::path(o.masks).stem().string();
  return s;
}

TiledTiffSpec probability_spec(const TiffLayout& l, int64_t classes, const StreamedOutputs& o, int64_t band) {
  TiledTiffSpec s = mask_spec(l, classes, o, band);
  s.pages = classes == 2 ? 1 : classes;
  s.dtype = at::kFloat;
  s.nearest = false;
  s.palette = at::Tensor();
  s.name = fs::path(o.probabilities).stem().string();
  return s;
}

/// Free space for the outputs (uncompressed, the most they can take) and the bands, checked first.
void require_space(const StreamedOutputs& o, const TiledTiffSpec& masks, const TiledTiffSpec& probs) {
  const double pixels = static_cast<double>(masks.width) * static_cast<double>(masks.height);
  const double need = pixels * (1.0 + (o.probabilities.empty() ? 0.0 : 4.0 * static_cast<double>(probs.pages)));
  std::error_code ec;
  const auto space = fs::space(fs::absolute(o.masks).parent_path(), ec);
  if (!ec && static_cast<double>(space.available) < need)
    fail_file(fs::absolute(o.masks).parent_path().string(),
              "needs up to " + std::to_string(static_cast<int64_t>(std::ceil(need / 1e9))) + " GB for the outputs, " +
                  std::to_string(static_cast<int64_t>(space.available / 1000000000ULL)) + " GB are free");
}

std::string duration(double seconds) {
  char text[32];
  const auto s = static_cast<long long>(std::llround(seconds));
  if (s >= 3600) std::snprintf(text, sizeof(text), "%lldh%02lldm", s / 3600, s / 60 % 60);
  else if (s >= 60) std::snprintf(text, sizeof(text), "%lldm%02llds", s / 60, s % 60);
  else std::snprintf(text, sizeof(text), "%llds", s);
  return text;
}

}  // namespace

std::string stream_work_dir(const StreamedOutputs& outputs) {
  const fs::path masks(outputs.masks);
  return (masks.parent_path() / ("." + masks.filename().string() + ".unet-bands")).string();
}

StreamedResult predict_streamed(Predictor& predictor, const std::string& input, const StreamedOutputs& outputs,
                                const std::string& model_id, const StreamOptions& options) {
  TORCH_CHECK(!outputs.masks.empty(), "predict_streamed: a mask output is needed");
  require_option(options.band >= 16 && options.band % 16 == 0, "band", "must be a multiple of 16 (TIFF tiles)", options.band);
  const auto start = Clock::now();
  TiffRegionReader reader(input, options.cache_bytes);
  const TiffLayout& layout = reader.layout();
  const UNetOptions& model = predictor.model_options();
  if (layout.channels != model.in_channels())
    fail_file(input, std::to_string(layout.channels) + " channels, but the model expects " + std::to_string(model.in_channels()));
  const int64_t classes = model.classes();
  const TiledTiffSpec masks = mask_spec(layout, classes, outputs, options.band);
  const TiledTiffSpec probs = probability_spec(layout, classes, outputs, options.band);
  require_space(outputs, masks, probs);
  const std::string dir = stream_work_dir(outputs);
  const nlohmann::json manifest = manifest_of(input, layout, predictor, outputs, model_id, options.band);
  StreamedResult result;
  result.bands = masks.bands();
  result.resumed_bands = prepare_work_dir(dir, manifest, outputs, result.bands, options.resume);

  const Normalisation& normalisation = predictor.normalisation();
  at::Tensor affine;
  if (normalisation.mode != IntensityMode::kRange && result.resumed_bands < result.bands)
    affine = normalisation_affine_from_histograms(value_histograms(reader, options.band), layout.format, normalisation);
  const RowSource source = [&](int64_t y, int64_t h) {
    const at::Tensor image = normalise(reader.read_rows(y, h));
    return affine.defined() ? apply_affine(image, affine) : image;
  };

  // Finished rows gather into bands of `options.band` rows; each band is written as it fills.
  const int64_t from_y = result.resumed_bands * options.band;
  at::Tensor pending;  // probabilities [classes, n, W] of the band being filled
  int64_t band = result.resumed_bands;
  auto write_band = [&](const at::Tensor& p) {
    if (!outputs.probabilities.empty()) {
      const at::Tensor maps = classes == 2 ? p.narrow(0, 1, 1) : p;
      write_tiled_band(band_file(dir, "probabilities", band), probs, band, maps.contiguous());
    }
    write_tiled_band(band_file(dir, "masks", band), masks, band, mask_of(p, outputs.index_masks).unsqueeze(0));
    ++band;
  };
  const RowSink sink = [&](int64_t, const at::Tensor& p) {
    pending = pending.defined() ? at::cat({pending, p}, 1) : p;
    while (band < result.bands) {
      const int64_t rows = std::min(options.band, layout.height - band * options.band);
      if (pending.size(1) < rows) break;
      write_band(pending.narrow(1, 0, rows));
      pending = pending.narrow(1, rows, pending.size(1) - rows);
    }
  };
  auto last_report = Clock::now();
  const auto predict_start = Clock::now();
  const TileProgress progress = [&](int64_t done, int64_t total) {
    result.tiles = done;
    const auto now = Clock::now();
    const double since = std::chrono::duration<double>(now - last_report).count();
    if (!options.progress || (done < total && since < options.progress_seconds)) return;
    last_report = now;
    const double elapsed = std::chrono::duration<double>(now - predict_start).count();
    const double rate = elapsed > 0 ? static_cast<double>(done) / elapsed : 0.0;
    char line[256];
    std::snprintf(line, sizeof(line), "%s: tile %lld/%lld (%.1f%%), %.1f tiles/s, %s left", fs::path(input).filename().c_str(),
                  static_cast<long long>(done), static_cast<long long>(total), 100.0 * static_cast<double>(done) / static_cast<double>(total),
                  rate, rate > 0 ? duration(static_cast<double>(total - done) / rate).c_str() : "?");
    options.progress(line);
  };
  if (from_y < layout.height) {
    predictor.predict_rows(layout.height, layout.width, source, sink, from_y, 0, progress);
  }
  TORCH_CHECK(band == result.bands, "predict_streamed: ", band, " of ", result.bands, " bands written");

  std::vector<std::string> mask_bands, probability_bands;
  for (int64_t b = 0; b < result.bands; ++b) {
    mask_bands.push_back(band_file(dir, "masks", b));
    probability_bands.push_back(band_file(dir, "probabilities", b));
  }
  if (!outputs.probabilities.empty()) {
    assemble_tiled_tiff(outputs.probabilities, probs, probability_bands);
    result.written.push_back(outputs.probabilities);
  }
  assemble_tiled_tiff(outputs.masks, masks, mask_bands);
  result.written.insert(result.written.begin(), outputs.masks);
  std::error_code ec;
  fs::remove_all(dir, ec);
  result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return result;
}

}  // namespace unet
