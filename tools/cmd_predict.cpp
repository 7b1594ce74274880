// `unet predict`: masks, probabilities and overlays for a test stack, an image or a folder (one
// output per input file).
#include "options.h"
#include "pretrained.h"

#include "unet/data/tiff_region.h"
#include "unet/dist/dist.h"
#include "unet/infer/output.h"
#include "unet/infer/streamed.h"
#include "unet/model/checkpoint.h"
#include "unet/runtime/files.h"

#include <cctype>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <thread>
#include <unistd.h>

namespace unet::cli {
namespace fs = std::filesystem;
namespace {

struct PredictCommand {
  InferenceOptions infer;
  RuntimeOptions runtime;
  std::string data_dir, input, model_dir = kDefaultModelDir, output_dir;
  PredictionFiles files;
  /// Read and write the image band by band (a TIFF larger than memory); automatic beyond the
  /// whole-image pixel limit.
  bool stream = false;
  /// Continue a stopped streamed prediction.
  bool resume = false;
};

/// The folder whose files are predicted one output each, or "" for a single file (a stack or an
/// image: test-masks.tif and test-probabilities.tif, as the reference).
std::string input_folder(const PredictCommand& o) {
  if (!o.input.empty()) return fs::is_directory(o.input) ? o.input : "";
  const fs::path d(o.data_dir);
  return !fs::exists(d / "test-volume.tif") && fs::is_directory(d / "test") ? (d / "test").string() : "";
}

/// The files that `images_to_predict` reads.
std::vector<std::string> input_files(const PredictCommand& o) {
  if (!o.input.empty()) return image_files(o.input);
  if (o.data_dir.empty()) return {};
  const fs::path d(o.data_dir);
  return image_files(fs::exists(d / "test-volume.tif") ? (d / "test-volume.tif").string() : (d / "test").string());
}

std::vector<Sample> images_to_predict(const PredictCommand& o) {
  if (!o.input.empty()) return load_images(o.input);
  if (o.data_dir.empty()) throw Error("nothing to predict: pass --input FILE|DIR or --data-dir DIR");
  const fs::path d(o.data_dir);
  if (fs::exists(d / "test-volume.tif")) return load_images((d / "test-volume.tif").string());
  if (fs::is_directory(d / "test")) return load_images((d / "test").string());
  fail_file(o.data_dir, "no test-volume.tif or test/ to predict (or pass --input)");
}

/// Whether the image file `path` is predicted band by band: a TIFF, and `forced` (--stream) or
/// larger than a whole-image read may be.
bool streams_file(const std::string& path, bool forced) {
  std::string ext = fs::path(path).extension().string();
  for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (forced) return ext != ".png";  // the TIFF reader names whatever is wrong with the file
  const auto size = tiff_size(path);
  return size && size->first * size->second > max_image_pixels();
}

/// One progress line: redrawn in place on a terminal; otherwise (a log) a line every 30 s and the
/// last one, so that a short run writes none.
std::function<void(const std::string&, bool)> progress_printer() {
  const bool tty = ::isatty(STDERR_FILENO) != 0;
  struct State {
    std::chrono::steady_clock::time_point last = std::chrono::steady_clock::now();
    bool printed = false;
  };
  auto state = std::make_shared<State>();
  return [tty, state](const std::string& line, bool last) {
    const auto now = std::chrono::steady_clock::now();
    if (tty) {
      std::fprintf(stderr, "\r%s\033[K", line.c_str());
    } else if (now - state->last >= std::chrono::seconds(30) || (state->printed && last)) {
      std::fprintf(stderr, "%s\n", line.c_str());
      state->last = now;
      state->printed = true;
    }
  };
}

/// Where a streamed prediction of `input` goes: a single file in gives the reference's names, a
/// folder in `<stem>.tif`, `<stem>_probabilities.tif` and `<stem>_instances.tif` (as in memory).
StreamedOutputs streamed_outputs(const PredictCommand& o, const std::string& out, const std::string& input, bool per_file) {
  const OutputNames names = output_names(out, per_file ? input : "", o.files);
  StreamedOutputs outputs;
  outputs.masks = names.masks;
  outputs.probabilities = names.probabilities;
  outputs.instances = names.instances;
  outputs.index_masks = o.files.index_masks;
  outputs.probability_bits = o.files.probability_bits;
  outputs.method = o.files.instance_method;
  return outputs;
}

/// The models averaged with the checkpoint, as a streamed prediction's model id names them (each
/// file's CRC-32C): bands of another ensemble do not join these.
std::string ensemble_id(const InferenceOptions& infer) {
  std::string id;
  for (const std::string& member : ensemble_checkpoints(infer))
    id += ", with " + fs::absolute(member).string() + " crc32c " + std::to_string(file_crc32c(member));
  return id;
}

/// A TIFF predicted band by band, and where its outputs go.
struct StreamedFile {
  std::string input;
  StreamedOutputs outputs;
};

/// Whether a `--resume` run skips `f`: its outputs are all there and no stopped run is (a file of
/// a folder finished before the stop).
bool already_predicted(const StreamedFile& f) {
  std::error_code ec;
  for (const std::string* path : {&f.outputs.masks, &f.outputs.probabilities, &f.outputs.instances})
    if (!path->empty() && !fs::exists(*path, ec)) return false;
  return !fs::exists(stream_work_dir(f.outputs), ec);
}

/// Rank 0's side after its shares: waits until every process's bands of `f` are there (a launcher
/// stops it if another process fails), then joins them.
void join_when_done(const PredictCommand& o, const StreamedFile& f, const StreamOptions& stream, int64_t bands, bool many) {
  bool said = false;
  for (int64_t done; many && (done = stream_bands_done(f.input, f.outputs, stream)) < bands;) {
    if (!said) std::printf("waiting for the other processes' bands of %s (%lld of %lld done)\n", f.input.c_str(),
                           static_cast<long long>(done), static_cast<long long>(bands));
    std::fflush(stdout);
    said = true;
    std::this_thread::sleep_for(std::chrono::seconds(2));
  }
  const StreamedResult joined = join_stream(f.input, f.outputs, stream);
  for (const auto& path : joined.written) std::printf("  wrote %s\n", path.c_str());
  if (o.files.instances) std::printf("  %lld objects\n", static_cast<long long>(joined.objects));
}

/// `predict` of TIFFs band by band into tiled OME-TIFF pyramids (unet/infer/streamed.h), the bands
/// shared by the processes of a launched job: rank 0 prepares every file, one barrier, every
/// process predicts its shares, rank 0 joins the files as their bands complete. No process waits at
/// a barrier while another predicts or joins (either can take hours).
void run_streamed(const PredictCommand& o, RunContext& context, std::vector<StreamedFile> files) {
  if (o.infer.input_mode == InputMode::kResize)
    throw OptionError("input_mode", " resize would shrink the whole image to one network input; streamed images are "
                                    "predicted in tiles (--input-mode tile or auto)");
  // Before any file is prepared: a size given is refused; auto (the default) leaves the images as they are.
  refuse_object_scale_by_rows(o.infer.object_diameter > 0);
  const std::string ckpt = checkpoint_path(o.model_dir);
  const CheckpointInfo info = read_checkpoint_info(ckpt);
  if (o.files.instances && !has_objects(info.model.classes(), info.model.scheme()))
    throw OptionError("instances", " cuts out the objects of class 1 of a two-class model, or of a model trained on "
                                   "interior/boundary classes; this model has " + std::to_string(info.model.classes()) +
                                       " classes");
  CommandFiles check;
  check.reads(ckpt).reads(ensemble_checkpoints(o.infer));
  for (StreamedFile& f : files) {
    f.outputs.scheme = info.model.scheme();
    check.reads(f.input).writes_into(fs::path(f.outputs.masks).parent_path().string());
    check.writes(f.outputs.masks).writes(f.outputs.probabilities).writes(f.outputs.instances);
  }
  check.check();
  InferenceOptions infer = o.infer;
  infer.input_mode = InputMode::kTile;
  if (infer.object_diameter == InferenceOptions::kMeasuredObjectDiameter) infer.object_diameter = 0;
  Predictor predictor = load_predictor(ckpt, info, infer, context, {});
  for (StreamedFile& f : files) f.outputs.objects = predictor.object_rule();
  connect(context, o.runtime.dist_timeout_s);
  const bool many = context.world_size() > 1;
  StreamOptions stream;
  stream.resume = o.resume;
  stream.rank = context.rank();
  stream.world = context.world_size();
  if (context.verbose()) stream.progress = progress_printer();
  if (o.resume) {  // every process decides alike, before rank 0 prepares anything
    std::vector<StreamedFile> left;
    for (StreamedFile& f : files) {
      if (!already_predicted(f)) left.push_back(std::move(f));
      else if (context.verbose()) std::printf("%s: predicted before the stop\n", f.input.c_str());
    }
    files = std::move(left);
  }
  std::vector<int64_t> bands;
  if (context.leader()) {
    // The file's CRC-32C: weights replaced at the same path and step (a shipped model updated, a
    // model retrained with --overwrite) are another model, whose bands would not join these.
    const std::string model_id = fs::absolute(ckpt).string() + " step " + std::to_string(info.step) + " crc32c " +
                                 std::to_string(file_crc32c(ckpt)) + ", " +
                                 to_string(context.precision) + ", cpu engine " + (infer.exec.cpu_engine ? "on" : "off") +
                                 ", " + name_of(conv_algorithm_names(), infer.exec.conv_algorithm) + ", tile batch " +
                                 std::to_string(infer.tiles.batch) + ensemble_id(infer);
    for (const StreamedFile& f : files) {
      ensure_writable_directory(fs::path(f.outputs.masks).parent_path().string(), "prediction");
      const StreamStart start = prepare_stream(predictor, f.input, f.outputs, model_id, stream);
      bands.push_back(start.bands);
      std::printf("streaming %s (%s) band by band%s%s\n", f.input.c_str(), TiffRegionReader(f.input, 0).layout().describe().c_str(),
                  many ? (" in " + std::to_string(context.world_size()) + " processes").c_str() : "",
                  start.resumed ? (": " + std::to_string(start.complete_bands) + " of " + std::to_string(start.bands) +
                                   " bands done before the stop").c_str()
                  : o.resume    ? ": no stopped run, from the top"
                                : "");
    }
    if (o.files.overlays && !files.empty())
      std::fprintf(stderr, "unet: no overlays for images predicted band by band (open the pyramids in QuPath, napari or Fiji)\n");
    std::fflush(stdout);
  }
  if (many) context.dist->barrier();  // the work folders are ready
  for (const StreamedFile& f : files) {
    const StreamedResult share = predict_stream_share(predictor, f.input, f.outputs, stream);
    if (stream.progress && ::isatty(STDERR_FILENO)) std::fprintf(stderr, "\n");
    if (context.leader())
      std::printf("predicted %s with %s (step %lld): %lld tiles in %.1f s%s\n", f.input.c_str(), ckpt.c_str(),
                  static_cast<long long>(info.step), static_cast<long long>(share.tiles), share.seconds,
                  many ? " (this process's share)" : "");
  }
  if (!context.leader()) return;
  for (size_t i = 0; i < files.size(); ++i) join_when_done(o, files[i], stream, bands[i], many);
}

/// A folder with a streamed TIFF: no two files may share a stem (a.tif and a.tiff would write one
/// `a.tif`); the in-memory files check their own outputs as before.
void require_distinct_stems(const std::string& out, const std::vector<std::string>& files) {
  std::map<std::string, std::string> stems;
  for (const std::string& file : files) {
    const auto [it, fresh] = stems.emplace(fs::path(file).stem().string(), file);
    if (!fresh)
      fail_file((fs::path(out) / it->first).string() + ".*", "two input files would write it (" +
                                                                 fs::path(it->second).filename().string() + " and " +
                                                                 fs::path(file).filename().string() + ")");
  }
}

void run_predict(const PredictCommand& o) {
  RunContext context = make_run_context(o.runtime);
  const std::string out = o.output_dir.empty() ? (fs::path(o.model_dir) / "predictions").string() : o.output_dir;
  const std::string folder = input_folder(o);
  // TIFFs larger than a whole-image read (or all with --stream) are predicted band by band, each
  // by every process of a launched job; the rest in memory, by one process.
  std::vector<std::string> whole;
  std::vector<StreamedFile> streamed;
  if (folder.empty() && !o.input.empty()) {
    if (streams_file(o.input, o.stream)) return run_streamed(o, context, {{o.input, streamed_outputs(o, out, o.input, false)}});
    if (o.stream) fail_file(o.input, "--stream reads TIFF and BigTIFF files, not PNG");
  } else if (!folder.empty()) {
    for (const std::string& file : image_files(folder)) {
      if (streams_file(file, o.stream)) streamed.push_back({file, streamed_outputs(o, out, file, true)});
      else whole.push_back(file);
    }
    if (!streamed.empty()) {
      require_distinct_stems(out, image_files(folder));
      run_streamed(o, context, streamed);
    }
    if (whole.empty()) return;
  }
  // One process does the work when a launcher started several (they would write the same files).
  if (!context.leader()) return;
  const std::string ckpt = checkpoint_path(o.model_dir);
  const CheckpointInfo info = read_checkpoint_info(ckpt);
  if (o.files.instances && !has_objects(info.model.classes(), info.model.scheme())) {
    throw OptionError("instances", " cuts out the objects of class 1 of a two-class model, or of a model trained on "
                                   "interior/boundary classes; this model has " + std::to_string(info.model.classes()) +
                                       " classes");
  }
  if (o.resume && streamed.empty())
    throw OptionError("resume", " continues a streamed prediction (a TIFF predicted band by band, --stream)");
  PredictionFiles files = o.files;
  files.scheme = info.model.scheme();
  files.naming = info.class_naming;
  std::vector<Sample> samples;
  if (whole.empty()) {
    samples = images_to_predict(o);
  } else {
    for (const std::string& file : whole) {
      std::vector<Sample> some = load_images(file);
      samples.insert(samples.end(), some.begin(), some.end());
    }
  }
  for (const auto& s : samples) {
    if (s.image.size(0) != info.model.in_channels())
      throw Error(s.name() + ": " + std::to_string(s.image.size(0)) + " channels, but the model expects " +
                  std::to_string(info.model.in_channels()));
  }
  CommandFiles()
      .reads(ckpt)
      .reads(ensemble_checkpoints(o.infer))
      .reads(input_files(o))
      .writes_into(out)
      .writes_into(o.files.overlays ? (fs::path(out) / "overlays").string() : "")
      .writes_into(o.files.instances ? (fs::path(out) / "instances").string() : "")
      .writes(prediction_outputs(out, samples, files, !folder.empty()))
      .check();
  Predictor predictor = load_predictor(ckpt, info, o.infer, context, samples);
  files.objects = predictor.object_rule();
  const auto probabilities = predictor.predict(samples, &files.object_scales,
                                               // kept only to cut objects from: up to 16x an image's maps each
                                               files.instances ? &files.scaled_probabilities : nullptr);
  std::error_code ec;
  const bool out_existed = fs::exists(out, ec);
  std::vector<std::string> written;
  try {
    written = folder.empty() ? write_predictions(out, samples, probabilities, files)
                             : write_predictions_per_file(out, samples, probabilities, files);
  } catch (...) {
    // A folder this run created is not left behind empty (a full disk); files already written stay.
    if (!out_existed) {
      fs::remove(fs::path(out) / "overlays", ec);
      fs::remove(fs::path(out) / "instances", ec);
      fs::remove(out, ec);
    }
    throw;
  }
  std::printf("predicted %zu images with %s (step %lld)%s\n", samples.size(), ckpt.c_str(), static_cast<long long>(info.step),
              o.infer.ensemble.empty() ? "" : (" and " + std::to_string(o.infer.ensemble.size()) + " more (an ensemble)").c_str());
  size_t shown = 0, count = 0;
  for (const auto& path : written) {
    if (path.find("/overlays/") != std::string::npos || path.find("/instances/") != std::string::npos) continue;
    if (count++ < 6) {
      std::printf("  wrote %s\n", path.c_str());
      ++shown;
    }
  }
  if (count > shown) std::printf("  ... and %zu more files in %s\n", count - shown, out.c_str());
  if (predictor.measures_object_scale()) {
    // What the measured scales mean to the user: the size of the objects the model found.
    for (size_t i = 0; i < samples.size() && i < files.object_scales.size(); ++i)
      if (i < 6 || context.verbose())
        std::printf("  %s: predicted at scale %.3g (auto object size; the model's objects are %g pixels across)\n",
                    samples[i].name().c_str(), files.object_scales[i], info.object_diameter);
  }
  if (o.files.overlays) std::printf("  wrote %zu overlays in %s\n", samples.size(), (fs::path(out) / "overlays").c_str());
  if (o.files.instances)
    std::printf("  wrote %zu instance previews in %s\n", samples.size(), (fs::path(out) / "instances").c_str());
}

}  // namespace

void register_predict(CLI::App& app) {
  auto o = std::make_shared<PredictCommand>();
  CLI::App* cmd = app.add_subcommand("predict", "Predict masks with a trained checkpoint");
  add_value(*cmd, "--data-dir,--data_dir", "dir", o->data_dir,
            "Data directory whose test images (test-volume.tif or test/) are predicted");
  add_value(*cmd, "--input", "input", o->input,
            "A TIFF stack or an image (-> test-masks.tif), or a folder of images (-> one <stem>.png/.tif each) to predict "
            "(instead of --data-dir)");
  add_value(*cmd, "--model-dir,--model_dir", "model_dir", o->model_dir, "Directory with checkpoint.pt");
  add_value(*cmd, "--output-dir", "output_dir", o->output_dir, "Where predictions go (default: <model-dir>/predictions)");
  add_model_option(*cmd, o->model_dir, o->output_dir);
  add_switch(*cmd, "--overlays", "overlays", o->files.overlays, "PNG overlays of the image with the predicted objects tinted (the model's headline class)");
  add_switch(*cmd, "--probabilities", "probabilities", o->files.probabilities,
             "Float TIFFs of the class probabilities (test-probabilities.tif, or <stem>_probabilities.tif per input file)");
  static const EnumNames<int> bits = {{"32", 32}, {"8", 8}};
  add_choice(*cmd, "--probability-bits", "probability_bits", o->files.probability_bits, bits,
             "Probability files as float32 (32) or 8-bit (8: round(255 p), a quarter of the size; for large images)");
  static const EnumNames<bool> mask_values = {{"binary", false}, {"index", true}};
  add_choice(*cmd, "--mask-encoding,--mask_encoding", "mask_values", o->files.index_masks, mask_values,
             "Mask values: binary (0/255, two-class models) or index (class indices, as a palette image that viewers "
             "show in colour)");
  // --instances [components|watershed]: off unless given; given alone, components.
  CLI::Option* instances = add_choice(*cmd, "--instances", "instances", o->files.instance_method, instance_method_names(),
                                      "Instance-label images of the objects (class 1): components, or watershed to "
                                      "split touching objects; interior/boundary models grow their interior either way "
                                      "(test-instances.tif or <stem>_instances.tif, 16-bit; coloured PNG previews in instances/)");
  instances->expected(0, 1)->default_str("components");
  instances->option_text("[components|watershed] (off unless given; given alone: components)");
  instances->each([o](const std::string&) { o->files.instances = true; });
  add_switch(*cmd, "--stream", "stream", o->stream,
             "Read and write --input (one TIFF or BigTIFF) band by band, for images larger than memory: tiled "
             "OME-TIFF pyramids out (automatic for images over --max-image-pixels)");
  add_switch(*cmd, "--resume", "resume", o->resume,
             "Continue a stopped streamed prediction from its last complete band (same model and settings)");
  add_segment_options(*cmd, o->infer, o->runtime);
  check_after_parse(*cmd, [o] {
    o->infer.validate();
    o->runtime.validate();
  });
  on_run(*cmd, [o] { run_predict(*o); });
}

}  // namespace unet::cli
