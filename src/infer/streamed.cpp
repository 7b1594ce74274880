// Streamed prediction of TIFF images larger than memory: see unet/infer/streamed.h.
#include "unet/infer/streamed.h"

#include "unet/infer/band_objects.h"

#include "unet/data/preprocess.h"
#include "unet/infer/output.h"
#include "unet/runtime/error.h"
#include "unet/runtime/files.h"
#include "unet/runtime/timing.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>

namespace unet {
namespace fs = std::filesystem;
namespace {

using Clock = std::chrono::steady_clock;

std::string band_file(const std::string& dir, const char* kind, int64_t band, const char* extension = "tif") {
  char name[64];
  std::snprintf(name, sizeof(name), "%s-%06lld.%s", kind, static_cast<long long>(band), extension);
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

/// What every step derives alike from the input's header and the outputs: the outputs' specs and
/// the work folder.
struct Job {
  TiffLayout layout;
  int64_t classes = 2;
  TiledTiffSpec masks, probabilities, instances;
  std::string dir;
  int64_t bands = 0;
};

Job job_of(const TiffLayout& layout, int64_t classes, const StreamedOutputs& o, const StreamOptions& options) {
  require_option(options.band >= 16 && options.band % 16 == 0, "band", "must be a multiple of 16 (TIFF tiles)", options.band);
  if (!o.instances.empty()) {
    require_option(options.object_margin >= 0 && options.object_margin <= options.band, "object_margin",
                   "must be between 0 and the band's rows", options.object_margin);
    require_band_labels_fit(layout.height, options.band);  // before any pixel is read
  }
  Job job;
  job.layout = layout;
  job.classes = classes;
  TiledTiffSpec& m = job.masks;
  m.width = layout.width;
  m.height = layout.height;
  m.tile = options.band;
  m.palette = mask_palette(classes, o.index_masks);
  m.name = fs::path(o.masks).stem().string();
  job.probabilities = m;
  job.probabilities.pages = classes == 2 ? 1 : classes;
  job.probabilities.dtype = o.probability_bits == 8 ? at::kByte : at::kFloat;
  job.probabilities.nearest = false;
  job.probabilities.palette = at::Tensor();
  job.probabilities.name = fs::path(o.probabilities).stem().string();
  job.instances = job.probabilities;
  job.instances.pages = 1;
  job.instances.dtype = at::kLong;
  job.instances.nearest = true;
  job.instances.name = fs::path(o.instances).stem().string();
  job.dir = stream_work_dir(o);
  job.bands = m.bands();
  return job;
}

/// A band is complete when each of its files is (each written atomically, the masks last).
bool band_complete(const Job& job, const StreamedOutputs& o, int64_t b) {
  std::error_code ec;
  return fs::exists(band_file(job.dir, "masks", b), ec) &&
         (o.probabilities.empty() || fs::exists(band_file(job.dir, "probabilities", b), ec)) &&
         (o.instances.empty() || (fs::exists(band_file(job.dir, "instances", b), ec) &&
                                  fs::exists(band_file(job.dir, "instances", b, "json"), ec)));
}

/// How many of `job`'s bands are complete.
int64_t complete_bands(const Job& job, const StreamedOutputs& o) {
  int64_t done = 0;
  for (int64_t b = 0; b < job.bands; ++b) done += band_complete(job, o, b) ? 1 : 0;
  return done;
}

/// Everything that changes a pixel of the outputs, so that `resume` continues only its own run.
nlohmann::json manifest_of(const std::string& input, const Job& job, const Predictor& predictor,
                           const StreamedOutputs& outputs, const std::string& model_id, const StreamOptions& options) {
  std::error_code ec;
  const auto size = fs::file_size(input, ec);
  const auto mtime = fs::last_write_time(input, ec).time_since_epoch().count();
  const TileOptions& t = predictor.tile_options();
  nlohmann::json m = {{"input", fs::absolute(input).string()},
                      {"input_bytes", static_cast<uint64_t>(size)},
                      {"input_mtime", static_cast<int64_t>(mtime)},
                      {"width", job.layout.width},
                      {"height", job.layout.height},
                      {"classes", job.classes},
                      {"model", model_id},
                      {"tile", t.input},
                      {"overlap", t.overlap},
                      {"blend", name_of(blend_names(), t.blend)},
                      {"tta", t.tta},
                      {"normalisation", predictor.normalisation().describe()},
                      {"band", options.band},
                      {"masks", outputs.masks},
                      {"probabilities", outputs.probabilities},
                      {"index_masks", outputs.index_masks},
                      {"probability_bits", outputs.probability_bits},
                      {"instances", outputs.instances}};
  if (!outputs.instances.empty()) {
    m["objects"] = {{"scheme", to_string(outputs.scheme)},
                    {"method", name_of(instance_method_names(), outputs.method)},
                    {"min_area", outputs.objects.min_area},
                    {"neck_radius", outputs.objects.neck_radius},
                    {"neck_ratio", outputs.objects.neck_ratio},
                    {"object_threshold", outputs.objects.object_threshold},
                    {"margin", options.object_margin}};
    // Only where set, so that a run stopped before the rule existed still resumes.
    if (outputs.objects.min_probability > 0) m["objects"]["min_probability"] = outputs.objects.min_probability;
  }
  return m;
}

nlohmann::json read_json(const std::string& path, const std::string& what) {
  try {
    std::ifstream in(path);
    if (!in) fail_file(path, "missing " + what);
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception&) {
    fail_file(path, "damaged " + what);
  }
}

/// The integer `key` of a record of the work folder `where`, or an error naming it.
int64_t json_int(const nlohmann::json& record, const char* key, const std::string& where) {
  if (!record.is_object() || !record.contains(key) || !record[key].is_number_integer())
    fail_file(where, std::string("damaged record (no ") + key + "): remove the folder to start over");
  return record[key].get<int64_t>();
}

/// "12 kB", "830 MB", "6.4 GB".
std::string size_text(double bytes) {
  char text[32];
  if (bytes >= 1e9) std::snprintf(text, sizeof(text), "%.1f GB", bytes / 1e9);
  else if (bytes >= 1e6) std::snprintf(text, sizeof(text), "%.0f MB", bytes / 1e6);
  else std::snprintf(text, sizeof(text), "%.0f kB", std::ceil(bytes / 1e3));
  return text;
}

/// Free space for the outputs (uncompressed, the most they can take), checked first.
void require_space(const StreamedOutputs& o, const Job& job) {
  const double pixels = static_cast<double>(job.layout.width) * static_cast<double>(job.layout.height);
  const double need = pixels * (1.0 + (o.probabilities.empty() ? 0.0 : o.probability_bits / 8.0 * static_cast<double>(job.probabilities.pages)) +
                                (o.instances.empty() ? 0.0 : 4.0));
  std::error_code ec;
  const fs::path dir = fs::absolute(o.masks).parent_path();
  const auto space = fs::space(dir, ec);
  if (!ec && static_cast<double>(space.available) < need)
    fail_file(dir.string(), "the outputs need up to " + size_text(need) + " (uncompressed), " +
                                size_text(static_cast<double>(space.available)) + " are free");
}

/// Progress lines for `options.progress`: tiles, tiles per second, time left.
TileProgress progress_reporter(const std::string& input, const StreamOptions& options, int64_t& tiles) {
  const auto start = Clock::now();
  auto last = std::make_shared<Clock::time_point>(start);
  return [&input, &options, &tiles, start, last](int64_t done, int64_t total) {
    tiles = done;
    const auto now = Clock::now();
    if (!options.progress || (done < total && std::chrono::duration<double>(now - *last).count() < options.progress_seconds)) return;
    *last = now;
    const double elapsed = std::chrono::duration<double>(now - start).count();
    const double rate = elapsed > 0 ? static_cast<double>(done) / elapsed : 0.0;
    char line[512];
    std::snprintf(line, sizeof(line), "%s: tile %lld/%lld (%.1f%%), %.1f tiles/s, %s left",
                  fs::path(input).filename().c_str(), static_cast<long long>(done), static_cast<long long>(total),
                  100.0 * static_cast<double>(done) / static_cast<double>(std::max<int64_t>(total, 1)), rate,
                  rate > 0 ? format_duration(static_cast<double>(total - done) / rate).c_str() : "?");
    options.progress(line, done == total);
  };
}

}  // namespace

std::string stream_work_dir(const StreamedOutputs& outputs) {
  const fs::path masks(outputs.masks);
  return (masks.parent_path() / ("." + masks.filename().string() + ".unet-bands")).string();
}

StreamStart prepare_stream(const Predictor& predictor, const std::string& input, const StreamedOutputs& outputs,
                           const std::string& model_id, const StreamOptions& options) {
  TORCH_CHECK(!outputs.masks.empty(), "prepare_stream: a mask output is needed");
  const TiffRegionReader reader(input, 0);
  const UNetOptions& model = predictor.model_options();
  if (reader.layout().channels != model.in_channels())
    fail_file(input, std::to_string(reader.layout().channels) + " channels, but the model expects " +
                         std::to_string(model.in_channels()));
  const Job job = job_of(reader.layout(), model.classes(), outputs, options);
  const nlohmann::json manifest = manifest_of(input, job, predictor, outputs, model_id, options);
  const std::string manifest_path = (fs::path(job.dir) / "manifest.json").string();
  std::error_code ec;
  if (fs::exists(job.dir, ec)) {
    // A stopped run's bands are hours of work: continued on request, never removed silently.
    if (!options.resume)
      throw OptionError("", job.dir + ": a stopped run's bands are here: add {resume} to continue it, or remove the "
                                      "folder to start over");
    const nlohmann::json recorded = read_json(manifest_path, "manifest of a stopped run (remove " + job.dir + ")");
    for (auto it = manifest.begin(); it != manifest.end(); ++it) {
      if (!recorded.contains(it.key()) || recorded[it.key()] != it.value())
        throw Error(job.dir + ": the stopped run there had another " + it.key() + " (" +
                    (recorded.contains(it.key()) ? recorded[it.key()].dump() : "none") + ", now " + it.value().dump() +
                    "); remove the folder to start over");
    }
    StreamStart start;
    start.resumed = true;
    start.complete_bands = complete_bands(job, outputs);
    start.bands = job.bands;
    return start;
  }
  require_space(outputs, job);
  ensure_writable_directory(job.dir, "band");
  write_text_atomically(manifest_path, manifest.dump(2) + "\n");
  StreamStart start;
  start.bands = job.bands;
  return start;
}

int64_t stream_bands_done(const std::string& input, const StreamedOutputs& outputs, const StreamOptions& options) {
  const TiffRegionReader reader(input, 0);
  const nlohmann::json manifest = read_json((fs::path(stream_work_dir(outputs)) / "manifest.json").string(), "manifest of the bands");
  return complete_bands(job_of(reader.layout(), json_int(manifest, "classes", stream_work_dir(outputs)), outputs, options), outputs);
}

namespace {

/// Gathers finished rows of [first_band * band, rows_end) into bands and writes each as it fills
/// (probabilities, then masks: a band is complete once its mask file is there).
class BandWriter {
 public:
  BandWriter(const Job& job, const StreamedOutputs& outputs, int64_t band_rows, int64_t first_band, int64_t rows_end)
      : job_(job), outputs_(outputs), band_rows_(band_rows), band_(first_band), rows_end_(rows_end),
        pending_(at::empty({job.classes, band_rows, job.layout.width})) {}

  void push(int64_t y, const at::Tensor& p) {
    for (int64_t from = std::max(y, band_ * band_rows_), to = std::min(y + p.size(1), rows_end_); from < to;) {
      const int64_t n = std::min(band_rows_, job_.layout.height - band_ * band_rows_);
      const int64_t take = std::min(to - from, n - rows_);
      pending_.narrow(1, rows_, take).copy_(p.narrow(1, from - y, take));
      rows_ += take;
      from += take;
      if (rows_ == n) write(pending_.narrow(1, 0, n));
    }
  }

 private:
  void write(const at::Tensor& b) {
    if (!outputs_.probabilities.empty())
      write_tiled_band(band_file(job_.dir, "probabilities", band_), job_.probabilities, band_,
                       probability_values(job_.classes == 2 ? b.narrow(0, 1, 1) : b, outputs_.probability_bits));
    write_tiled_band(band_file(job_.dir, "masks", band_), job_.masks, band_, mask_of(b, outputs_.index_masks).unsqueeze(0));
    rows_ = 0;
    ++band_;
  }

  const Job& job_;
  const StreamedOutputs& outputs_;
  int64_t band_rows_, band_, rows_end_, rows_ = 0;
  at::Tensor pending_;  // the band being filled: its first rows_ rows
};

/// The objects of bands [first, last) of `job`, written as their windows complete.
std::unique_ptr<BandObjects> band_objects(const Job& job, const StreamedOutputs& outputs, const StreamOptions& options,
                                          int64_t first, int64_t last) {
  if (outputs.instances.empty()) return nullptr;
  return std::make_unique<BandObjects>(
      job.layout.height, options.band, options.object_margin,
      [&outputs](const at::Tensor& maps) { return objects_of(maps, outputs.scheme, outputs.method, outputs.objects); },
      [&job](int64_t band, const at::Tensor& labels, int64_t owned) {
        write_tiled_band(band_file(job.dir, "instances", band), job.instances, band, labels.unsqueeze(0));
        write_text_atomically(band_file(job.dir, "instances", band, "json"), "{\"owned\": " + std::to_string(owned) + "}\n");
      },
      first, last);
}

}  // namespace

StreamedResult predict_stream_share(Predictor& predictor, const std::string& input, const StreamedOutputs& outputs,
                                    const StreamOptions& options) {
  const auto start = Clock::now();
  // The blocks a row of tiles reads, twice over (rows of tiles overlap), or the option's size.
  const TiffLayout header = TiffRegionReader(input, 0).layout();
  const int64_t pixel = header.channels * (header.format == SampleFormat::kUInt8 ? 1 : 2);
  const int64_t cache =
      std::max(options.cache_bytes, 2 * (predictor.tile_options().input + 2 * header.block_height) * header.width * pixel);
  TiffRegionReader reader(input, cache);
  const TiffLayout& layout = reader.layout();
  const Job job = job_of(layout, predictor.model_options().classes(), outputs, options);
  StreamedResult result;
  result.bands = job.bands;
  const int64_t first = options.rank * job.bands / options.world, last = (options.rank + 1) * job.bands / options.world;
  int64_t s = first;
  while (s < last && band_complete(job, outputs, s)) ++s;
  result.resumed_bands = s - first;
  if (s == last) return result;

  at::Tensor affine;
  if (predictor.normalisation().mode != IntensityMode::kRange)
    affine = normalisation_affine_from_histograms(value_histograms(reader, options.band), layout.format, predictor.normalisation());
  const RowSource source = [&](int64_t y, int64_t h) {
    const at::Tensor image = normalise(reader.read_rows(y, h));
    return affine.defined() ? apply_affine(image, affine) : image;
  };
  const int64_t rows_end = std::min(layout.height, last * options.band);
  BandWriter bands(job, outputs, options.band, s, rows_end);
  const std::unique_ptr<BandObjects> objects = band_objects(job, outputs, options, s, last);
  const RowSink sink = [&](int64_t y, const at::Tensor& p) {
    if (objects) objects->push(y, p);
    bands.push(y, p);
  };
  const int64_t from_y = objects ? std::min(objects->first_row(), s * options.band) : s * options.band;
  const int64_t to_y = objects ? std::max(objects->end_row(), rows_end) : rows_end;
  predictor.predict_rows(layout.height, layout.width, source, sink, from_y, to_y, progress_reporter(input, options, result.tiles));
  for (int64_t b = s; b < last; ++b)
    if (!band_complete(job, outputs, b)) throw Error("band " + std::to_string(b) + " of " + input + " was not written");
  result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return result;
}

StreamedResult join_stream(const std::string& input, const StreamedOutputs& outputs, const StreamOptions& options) {
  const auto start = Clock::now();
  const TiffRegionReader reader(input, 0);
  const std::string dir = stream_work_dir(outputs);
  const nlohmann::json manifest = read_json((fs::path(dir) / "manifest.json").string(), "manifest of the bands");
  const Job job = job_of(reader.layout(), json_int(manifest, "classes", dir), outputs, options);
  StreamedResult result;
  result.bands = job.bands;
  std::vector<std::string> masks, probabilities, instances;
  std::vector<int64_t> first_label;
  int64_t next = 1;
  for (int64_t b = 0; b < job.bands; ++b) {
    if (!band_complete(job, outputs, b))
      throw OptionError("", band_file(dir, "masks", b) + ": band " + std::to_string(b) + " is missing: predict again with {resume}");
    masks.push_back(band_file(dir, "masks", b));
    probabilities.push_back(band_file(dir, "probabilities", b));
    instances.push_back(band_file(dir, "instances", b));
    if (!outputs.instances.empty()) {
      first_label.push_back(next);
      const std::string record = band_file(dir, "instances", b, "json");
      next += json_int(read_json(record, "band record"), "owned", record);
    }
  }
  if (!outputs.probabilities.empty()) assemble_tiled_tiff(outputs.probabilities, job.probabilities, probabilities);
  if (!outputs.instances.empty()) {
    // 16-bit labels where they fit (what Fiji reads as labels), 32-bit beyond 65,535 objects.
    result.objects = next - 1;
    TiledTiffSpec labels = job.instances;
    labels.dtype = result.objects <= 65535 ? at::kInt : at::kLong;
    assemble_tiled_tiff(outputs.instances, labels, instances,
                        [&](const at::Tensor& provisional) { return final_labels(provisional, first_label); },
                        job.instances.dtype);
  }
  assemble_tiled_tiff(outputs.masks, job.masks, masks);
  for (const std::string* path : {&outputs.masks, &outputs.probabilities, &outputs.instances})
    if (!path->empty()) result.written.push_back(*path);
  std::error_code ec;
  fs::remove_all(dir, ec);
  result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return result;
}

StreamedResult predict_streamed(Predictor& predictor, const std::string& input, const StreamedOutputs& outputs,
                                const std::string& model_id, const StreamOptions& options) {
  TORCH_CHECK(options.world == 1, "predict_streamed: one process (see predict_stream_share for more)");
  const auto start = Clock::now();
  (void)prepare_stream(predictor, input, outputs, model_id, options);
  StreamedResult r = predict_stream_share(predictor, input, outputs, options);
  const StreamedResult joined = join_stream(input, outputs, options);
  r.written = joined.written;
  r.objects = joined.objects;
  r.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return r;
}

}  // namespace unet
