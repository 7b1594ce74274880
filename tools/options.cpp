// The option groups shared by the subcommands, bound to the library's option fields.
#include "options.h"

#include "pretrained.h"

#include "unet/data/dataset.h"
#include "unet/data/image_io.h"
#include "unet/data/object_scale.h"
#include "unet/model/checkpoint.h"
#include "unet/model/geometry.h"
#include "unet/runtime/device.h"
#include "unet/runtime/text.h"
#include "unet/runtime/version.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>

namespace unet::cli {

void take_last_values(CLI::App& app) {
  // A repeated option takes its last value, so that scripts can override defaults they pass.
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
}

void register_commands(CLI::App& app) {
  app.set_version_flag("--version", std::string("unet ") + kVersion);
  app.require_subcommand(1);
  app.fallthrough();
  take_last_values(app);
  register_train(app);
  register_evaluate(app);
  register_predict(app);
  register_benchmark(app);
  register_cross_validate(app);
  register_demo(app);
  register_export(app);
  register_quantize(app);
  register_score(app);
  register_launch(app);
  register_dist_info(app);
}

void add_data_options(CLI::App& app, DataOptions& data, bool synthetic_flag) {
  add_value(app, "--data-dir,--data_dir", "dir", data.dir,
            "Data directory: ISBI layout (train-volume.tif, train-labels.tif, test-volume.tif) or "
            "images/ + masks/ (+ test/); train, evaluate and cross-validate need it or --synthetic");
  CLI::Option* fold = app.add_option_function<std::string>(
      "--fold", [&data](const std::string& text) { data.fold = parse_fold(text); },
      "Cross-validation fold 0-4 held out for evaluation, or 'none': every labelled image (train: trains on all, "
      "evaluate: scores all)");
  fold->default_str(data.fold < 0 ? "none" : std::to_string(data.fold));
  name_field("fold", fold->get_name());
  add_choice(app, "--mask-encoding,--mask_encoding", "mask_encoding", data.mask_encoding, mask_encoding_names(),
             "Mask values: auto, binary (0/255), index, or instances (instance labels: with --classes 2 "
             "objects parted by background, with --classes 3 background/interior/boundary)");
  add_value(app, "--boundary-width", "boundary_width", data.boundary_width,
            "Width of the boundary class derived from instance masks (--classes 3), pixels");
  // The class schemes instance masks become: every scheme but plain.
  static const EnumNames<ClassScheme> instance_schemes = [] {
    EnumNames<ClassScheme> out;
    for (const auto& n : class_scheme_names())
      if (n.value != ClassScheme::kPlain) out.push_back(n);
    return out;
  }();
  add_choice(app, "--instance-targets", "instance_scheme", data.instance_scheme, instance_schemes,
             "Classes learnt from instance masks (more than 2): interior-boundary (3 classes), distance "
             "(background and distance-to-edge bins, " + std::to_string(kDistanceClasses) +
                 " classes unless --classes: objects grow from their own centres, which parts touching objects), or "
                 "directions (background, centre and " + std::to_string(kDirections) +
                 " directions to it: each pixel's way is followed to its centre)");
  if (synthetic_flag) {
    name_field("use_synthetic", app.add_flag("--synthetic", data.use_synthetic,
                                             "The built-in synthetic data instead of --data-dir (also implied by any "
                                             "--synthetic-* option)")->get_name());
  }
  // Asking for a kind, size or count of synthetic data asks for the synthetic data.
  const auto asks = [&data](const std::string&) { data.use_synthetic = true; };
  add_choice(app, "--synthetic-kind", "synthetic.kind", data.synthetic.kind, synthetic_kind_names(),
             "Synthetic data: em (membranes, as ISBI) or nuclei (touching nuclei, instance labels)")->each(asks);
  add_value(app, "--synthetic-size", "synthetic.size", data.synthetic.size, "Side of the synthetic slices, pixels")->each(asks);
  add_image_limit(app);
  add_value(app, "--synthetic-count", "synthetic.train_count", data.synthetic.train_count, "Labelled synthetic slices")
      ->each(asks);
  add_list(app, "--class-names", "class_names", data.class_names,
           "Class names in label order, comma-separated (default: membrane,cell for ISBI-style data, "
           "background,foreground for folder data)");
}

void add_image_limit(CLI::App& app) {
  CLI::Option* limit = app.add_option_function<int64_t>(
      "--max-image-pixels", [](int64_t pixels) { set_max_image_pixels(pixels); },
      "Largest image (width x height) a file may declare before it is read");
  limit->default_str(std::to_string(max_image_pixels()));
  name_field("max_image_pixels", limit->get_name());
}

void add_model_options(CLI::App& app, UNetOptions& model, TrainOptions& train) {
  add_value(app, "--filters", "filters", model.filters(), "Filters of the top level (doubling per level)");
  add_value(app, "--depth", "depth", model.depth(), "Number of poolings");
  add_choice(app, "--padding", "padding", model.padding(), padding_names(), "Convolution padding: valid (reference) or same");
  add_value(app, "--up-kernel,--up_kernel", "up_kernel", model.up_kernel(),
            "Transposed-convolution kernel: 3 (reference) or 2 (paper)");
  add_value(app, "--classes", "classes", model.classes(), "Output classes");
  add_value(app, "--dropout", "dropout", model.dropout(), "Dropout probability on the bottleneck output");
  add_value(app, "--input-size,--input_size", "input_size", train.input_size, "Network input side, pixels (must be legal)");
  add_choice(app, "--input-mode", "input_mode", train.input_mode, input_mode_names(),
             "resize (the reference) or tile (native-resolution crops)");
  CLI::Option* normalize = add_choice(app, "--normalize,--normalise", "normalisation.mode", train.normalisation.mode,
                                      intensity_mode_names(),
                                      "Each image's intensities: range (the type's, the reference), percentile (per channel: "
                                      "--percentiles to -1 and 1; dim or unevenly exposed images) or meanstd (per channel: "
                                      "zero mean, unit variance); recorded in the model, repeated by predict and the exports");
  CLI::Option* percentiles = app.add_option_function<std::string>(
      "--percentiles",
      [&train, normalize](const std::string& text) {
        Normalisation& n = train.normalisation;
        if (normalize->count() > 0 && n.mode != IntensityMode::kPercentile)
          throw OptionError("percentiles", " set --normalize percentile's percentiles; this run normalises by " + to_string(n.mode));
        const size_t comma = text.find(',');
        try {
          size_t used_low = 0, used_high = 0;
          if (comma == std::string::npos) throw std::invalid_argument(text);
          n.low = std::stod(text.substr(0, comma), &used_low);
          n.high = std::stod(text.substr(comma + 1), &used_high);
          if (used_low != comma || used_high != text.size() - comma - 1) throw std::invalid_argument(text);
        } catch (const std::exception&) {
          throw OptionError("percentiles", " " + text + ": expected LOW,HIGH, two numbers such as 1,99.8");
        }
        n.mode = IntensityMode::kPercentile;
        n.validate();
      },
      "With --normalize percentile (implied): the percentiles mapped to -1 and 1");
  percentiles->default_str(CLI::detail::to_string(train.normalisation.low) + "," +
                           CLI::detail::to_string(train.normalisation.high))
      ->type_name("LOW,HIGH");
  name_field("percentiles", percentiles->get_name());
}

namespace {

/// A whole number of steps, 0 or more (an `OptionError` for `field` otherwise).
int64_t parse_steps(const std::string& text, const std::string& field) {
  const bool digits = !text.empty() && text.size() < 19 && text.find_first_not_of("0123456789") == std::string::npos;
  if (!digits) throw OptionError(field, " " + text + ": expected a number of steps (0 or more) or 'auto'");
  return std::stoll(text);
}

}  // namespace

void add_train_options(CLI::App& app, TrainOptions& train) {
  add_value(app, "--object-diameter", "object_diameter", train.object_diameter,
            "Instance data: rescale each labelled image so that its median object is this many pixels across before "
            "training (implies --input-mode tile); recorded in the model, whose predictions then take the images' "
            "own --object-diameter; 0: the images' own sizes");
  add_value(app, "--batch-size,--batch_size", "batch_size", train.batch_size, "Images per step");
  add_value(app, "--learning-rate,--learning_rate", "learning_rate", train.learning_rate, "Adam learning rate");
  add_value(app, "--weight-decay,--weight_decay", "weight_decay", train.weight_decay, "L2 weight decay");
  add_value(app, "--max-steps,--max_steps", "max_steps", train.max_steps, "Training steps");
  add_value(app, "--log-every,--log_every", "log_every", train.log_every, "Log losses every N steps");
  CLI::Option* every = app.add_option_function<std::string>(
      "--evaluate-every,--evaluate_every",
      [&train](const std::string& text) {
        train.evaluate_every = text == "auto" ? TrainOptions::kEvaluateAuto : parse_steps(text, "evaluate_every");
      },
      "Evaluate on the held-out images every N steps, keeping the best checkpoint in MODEL_DIR/best; 0: only at the "
      "end; auto: a tenth of --max-steps, at least 50 steps");
  every->default_str(train.evaluate_every == TrainOptions::kEvaluateAuto ? "auto" : std::to_string(train.evaluate_every))
      ->type_name("N|auto");
  name_field("evaluate_every", every->get_name());
  add_value(app, "--checkpoint-every,--checkpoint_every", "checkpoint_every", train.checkpoint_every,
            "Checkpoint every N steps (0: at the end)");
  add_value(app, "--warmup-steps,--warmup_steps", "warmup_steps", train.warmup_steps, "Steps left out of throughput figures");
  add_switch(app, "--augment", "augment", train.augment, "Augment training data (flips, crop, brightness, elastic)");
  add_switch(app, "--border-weights", "border_weights", train.border_weights,
             "The U-Net paper's weighted cross-entropy: class balance plus weight between touching cells (instance masks: between touching objects)");
  add_value(app, "--border-w0", "weight_map.w0", train.weight_map.w0, "Border weights: weight of the gap term");
  add_value(app, "--border-sigma", "weight_map.sigma", train.weight_map.sigma, "Border weights: width of the gap term in pixels");
  add_switch(app, "--border-class-balance", "weight_map.class_balance", train.weight_map.class_balance,
             "Border weights: include the class-balance term (off: only the gap term on top of weight 1)");
  add_switch(app, "--elastic", "augment_options.elastic", train.augment_options.elastic, "Elastic deformation within --augment");
  add_switch(app, "--color-augment", "augment_options.color", train.augment_options.color,
             "Photometric jitter within --augment: contrast, gamma, blur and noise; for RGB also the H&E stains' amounts, "
             "hue and saturation (other microscopes' and labs' images)");
  add_choice(app, "--lr-schedule", "schedule.kind", train.schedule.kind, schedule_names(),
             "Learning-rate schedule: constant (the reference) or cosine decay");
  add_value(app, "--lr-warmup-steps", "schedule.warmup_steps", train.schedule.warmup_steps,
            "Linear learning-rate warm-up over the first N steps");
  add_value(app, "--final-lr-factor", "schedule.final_factor", train.schedule.final_factor,
            "Cosine schedule: final rate as a fraction of --learning-rate");
  name_field("resume", app.add_flag("--resume,--resume_training", train.resume,
                                    "Continue from the checkpoint in --model-dir: its network, optimisation and data unless given")
                           ->get_name());
  name_field("overwrite",
             app.add_flag("--overwrite", train.overwrite, "Start over even if --model-dir holds a checkpoint (it is replaced, and an earlier best/ removed)")->get_name());
  add_exec_options(app, train.exec);
}

void add_inference_options(CLI::App& app, InferenceOptions& infer) {
  add_value_or_auto(app, "--object-diameter", "object_diameter", infer.object_diameter,
                    InferenceOptions::kMeasuredObjectDiameter, "a diameter in pixels",
                    "Median diameter of the objects in the images, pixels, for a model trained with --object-diameter: "
                    "each image is rescaled by the model's diameter over this one before prediction and its outputs "
                    "mapped back; auto: each image's own, measured by the model (up to " +
                        std::to_string(kObjectSizePasses) + " passes, then confirmed at a smaller scale; models trained at "
                        "their images' own sizes, resize mode and images predicted band by band take the images as they "
                        "are); 0: the images as they are");
  add_value_or_auto(app, "--min-object-area", "min_object_area", infer.min_object_area, InferenceOptions::kAutoObjectArea,
                    "a number of pixels",
                    "Objects (evaluate's, predict --instances') smaller than this many pixels are dropped; auto: a tenth of the "
                    "model's training objects' median area (models trained on instance labels; none otherwise); 0: keep all");
  add_value_or_auto(app, "--split-radius", "split_radius", infer.split_radius, InferenceOptions::kAutoSplitRadius,
                    "a radius in pixels",
                    "Interior/boundary models: an interior that pinches (two or more parts farther than this many pixels from "
                    "its edge) is split into objects at its necks; auto: " + number_text(kNeckFraction) +
                        " of the radius of the model's median training object (none where it records none); 0: never");
  add_value(app, "--split-ratio", "split_ratio", infer.split_ratio,
            "With --split-radius: the parts must also be deeper than this fraction of their interior's deepest pixel; 0: no such condition");
  add_value_or_auto(app, "--object-threshold", "object_threshold", infer.object_threshold,
                    InferenceOptions::kAutoObjectThreshold, "a probability",
                    "Interior/boundary, distance and direction models: objects extend over the connected pixels whose "
                    "object probability (1 - background's) is above this, between 0 and 1; auto: the model's recorded one "
                    "(export --format checkpoint --object-threshold), " + number_text(kObjectThreshold) + " where it records none");
  add_value_or_auto(app, "--min-object-probability", "min_object_probability", infer.min_object_probability,
                    InferenceOptions::kAutoMinObjectProbability, "a probability",
                    "Objects (evaluate's, predict --instances') whose mean object probability (1 - background's, over "
                    "their pixels) is under this are dropped, at least 0 and below 1; auto: the model's recorded one "
                    "(export --format checkpoint --min-object-probability), none where it records none; 0: keep all");
  add_choice(app, "--input-mode", "input_mode", infer.input_mode, input_mode_names(/*with_auto=*/true),
             "resize, tile (native resolution, overlapping tiles) or auto (tile when the model was trained on tiles "
             "or the image size differs from the training images')");
  add_value(app, "--tile-overlap", "tile_overlap", infer.tiles.overlap, "Minimum overlap of output tiles, pixels");
  add_choice(app, "--blend", "blend", infer.tiles.blend, blend_names(), "Blending of overlapping tiles: gaussian or uniform");
  add_value(app, "--tile-batch", "tile_batch", infer.tiles.batch, "Tiles per forward pass (bounds memory)");
  add_value(app, "--tile-size", "tile_size", infer.tiles.input, "Tile (network input) side; 0: the model's training input size");
  add_switch(app, "--tta", "tta", infer.tiles.tta, "Average over the 8 flips and 90-degree rotations");
  add_exec_options(app, infer.exec);
}

void add_ensemble_option(CLI::App& app, InferenceOptions& infer) {
  add_list(app, "--ensemble", "ensemble", infer.ensemble,
           "Other models (model folders, checkpoint files or shipped model names, comma-separated; a file or a folder "
           "holding checkpoint.pt comes first) whose probabilities are averaged with the model's: an ensemble of seeds; "
           "each must match its network, input size, normalisation and object size; objects as the model records them; "
           "not in int8",
           [](const std::string& given) { return model_folder_or_name(given, "ensemble"); });
}

void add_segment_options(CLI::App& app, InferenceOptions& infer, RuntimeOptions& runtime) {
  add_value(app, "--batch-size,--batch_size", "batch_size", infer.batch_size, "Images per forward pass (resize mode)");
  add_inference_options(app, infer);
  add_ensemble_option(app, infer);
  add_image_limit(app);
  add_runtime_options(app, runtime, {}, /*training=*/false);
}

void add_conv_algorithm(CLI::App& app, ConvAlgorithm& algorithm) {
  add_choice(app, "--conv-algorithm", "exec.conv_algorithm", algorithm, conv_algorithm_names(),
             "With the CPU engine in float32: how 3x3 convolutions run: auto (Winograd where it measured faster: " +
                 std::to_string(kWinogradMinChannels) +
                 " or more channels in and out; F(6x6,3x3) in inference, or F(4x4,3x3) where 6x6 tiles would cover 7% more "
                 "area than 4x4 ones; F(4x4,3x3) in training), direct (oneDNN's "
                 "direct kernels), winograd (F(4x4,3x3) for every 3x3 convolution) or winograd6 (F(6x6,3x3) for every "
                 "3x3 convolution in inference, F(4x4,3x3) in training)");
}

void add_exec_options(CLI::App& app, ExecOptions& exec) {
  add_switch(app, "--channels-last", "exec.channels_last", exec.channels_last, "Channels-last (NHWC) tensors");
  add_switch(app, "--graphs", "exec.graphs", exec.graphs, "CUDA graphs for training and inference steps on CUDA devices (auto = on)",
             {}, {"auto"});
  app.add_flag_callback("--xla,--use_xla", [&exec] { exec.graphs = true; }, "Alias of --graphs on (the reference's XLA flag)");
  add_switch(app, "--fused", "exec.fused", exec.fused, "Fused CUDA kernels (bias + ReLU, loss) instead of the plain LibTorch path");
  add_switch(app, "--cpu-engine", "exec.cpu_engine", exec.cpu_engine,
             "On CPUs: oneDNN's convolutions with bias and ReLU fused (training: forward and backward; prediction: with "
             "prepacked weights, fp32 and bf16); off: the plain LibTorch path");
  add_conv_algorithm(app, exec.conv_algorithm);
}

void add_runtime_options(CLI::App& app, RuntimeOptions& runtime, const std::vector<uint64_t*>& seeds, bool training) {
  if (!seeds.empty()) {
    app.add_option_function<uint64_t>(
           "--seed", [seeds](uint64_t seed) { for (uint64_t* s : seeds) *s = seed; },
           training ? "Random seed (weights, data order, augmentation, fold split)" : "Seed of the fold split")
        ->default_str(std::to_string(*seeds.front()));
  }
  CLI::Option* device = app.add_option_function<std::string>(
      "--device",
      [&runtime](const std::string& text) {
        runtime.device = text == "auto" ? std::nullopt : std::optional<c10::Device>(parse_device_name(text));
      },
      "auto, cpu, cuda or cuda:N");
  device->default_str(runtime.device ? runtime.device->str() : "auto");
  name_field("device", device->get_name());
  add_choice(app, "--precision", "precision", runtime.precision, precision_names(),
             "fp32, tf32, fp16 (dynamic loss scaling), bf16, auto (bf16 on CPUs with AMX, fp32 elsewhere), or int8 (CPU inference after unet quantize)");
  app.add_flag_callback("--amp,--use_amp", [&runtime] { runtime.precision = Precision::kFP16; }, "Alias of --precision fp16");
  add_value(app, "--threads", "threads", runtime.threads, "CPU threads for LibTorch (0: all cores)");
  if (training) add_value(app, "--loader-threads", "loader_threads", runtime.loader_threads, "Data loader worker threads");
  add_switch(app, "--deterministic", "deterministic", runtime.deterministic,
             "Deterministic GPU algorithms (no cuDNN autotuning): same seed, same weights; slower");
  if (training)
    add_value(app, "--dist-timeout", "dist_timeout_s", runtime.dist_timeout_s,
              "Seconds to wait for other ranks before failing (data-parallel runs)");
  app.add_flag("--quiet,-q", runtime.quiet, "Print only the final results");
}

namespace {
bool g_parse_only = false;
}  // namespace

void on_run(CLI::App& command, std::function<void()> run) {
  command.callback([&command, run = std::move(run)] {
    refuse_doubtful_values(command);
    if (!g_parse_only) run();
  });
}

void set_parse_only(bool on) { g_parse_only = on; }

void check_after_parse(CLI::App& command, std::function<void()> check) {
  command.parse_complete_callback([&command, check = std::move(check)] {
    refuse_doubtful_values(command);  // first: a swallowed option explains the errors that follow from it
    check();
  });
}

UNetOptions model_for(UNetOptions model, const DataSet& data, int64_t input_size) {
  model.in_channels(data.channels).scheme(data.scheme);
  model.validate();
  output_size(model, input_size);  // throws with the nearest legal sizes
  return model;
}

std::vector<std::string> data_files(const DataOptions& data) {
  return data.dir.empty() ? std::vector<std::string>{} : dataset_files(data.dir);
}

void announce_reading(const DataOptions& data, const char* who, bool verbose) {
  if (!verbose || data.dir.empty()) return;
  size_t files = 0;
  std::error_code ec;
  for (const auto& file : dataset_files(data.dir)) files += std::filesystem::is_regular_file(file, ec) ? 1 : 0;
  if (files >= kAnnouncedFiles)
    std::fprintf(stderr, "%s: reading %zu image and mask files in %s\n", who, files, data.dir.c_str());
}

void rescale_training_objects(DataSet& data, const DataOptions& options, int64_t classes, double diameter, const char* who,
                              bool verbose) {
  if (diameter <= 0) return;
  for (const Sample& s : data.train)
    if (!s.instances.defined())
      throw OptionError("object_diameter", " needs instance labels ({mask_encoding} instances): " + s.name() +
                                               "'s mask holds classes, not objects whose size could be measured");
  const std::vector<double> scales = rescale_to_object_diameter(data.train, diameter, classes, options.instance_targets());
  if (!verbose || scales.empty()) return;
  const auto [low, high] = std::minmax_element(scales.begin(), scales.end());
  std::fprintf(stderr, "%s: %zu labelled images rescaled so that their median object is %g pixels across (scales %.3g to %.3g)\n",
               who, scales.size(), diameter, *low, *high);
}

void imply_tiles_for_object_size(const CLI::App& command, TrainOptions& train) {
  if (train.object_diameter > 0 && command.count("--input-mode") == 0) train.input_mode = InputMode::kTile;
}

void refuse_two_data_sources(const CLI::App& command) {
  // The --synthetic-* options only shape the synthetic data: beside --data-dir they have no effect.
  if (command.count("--data-dir") > 0 && command.get_option_no_throw("--synthetic") && command.count("--synthetic") > 0)
    throw OptionError("", "--data-dir and --synthetic name two data sets; give one");
}

void require_model_dir(const std::string& model_dir) {
  require_option(!model_dir.empty(), "model_dir", "must not be empty", std::string("''"));
}

void print_metrics(const std::string& title, const Metrics& m, const ClassNaming& naming, ClassScheme scheme) {
  const auto name = [&](size_t c) { return naming.name(static_cast<int64_t>(c)); };
  std::printf("%s (%lld images)\n", title.c_str(), static_cast<long long>(m.images));
  std::printf("  dice_score (reference, 1 - soft Dice)  %.4f\n", m.dice_score);
  std::printf("  cross_entropy                          %.4f\n", m.cross_entropy);
  const int64_t h = naming.headline;
  if (naming.has_headline() && h < static_cast<int64_t>(m.class_dice.size())) {
    const std::string label = name(static_cast<size_t>(h));
    std::printf("  %-38s %.4f\n", (label + " Dice (hard, original size)").c_str(), m.class_dice[h]);
    std::printf("  %-38s %.4f\n", (label + " IoU  (hard, original size)").c_str(), m.class_iou[h]);
  }
  if (!m.class_dice.empty()) {
    std::string per_class;
    for (size_t c = 0; c < m.class_dice.size(); ++c) {
      char buffer[96];
      std::snprintf(buffer, sizeof buffer, "%s%s %.4f", c ? ", " : "", name(c).c_str(), m.class_dice[c]);
      per_class += buffer;
    }
    std::printf("  Dice per class                         %s\n", per_class.c_str());
  }
  std::printf("  pixel error   (original size)          %.4f\n", m.pixel_error);
  if (m.has_objects) {
    const ObjectScores& o = m.objects;
    std::printf("  %-38s truth %lld, predicted %lld; F1 %.4f at IoU 0.5, %.4f at 0.75; mean AP %.4f; PQ %.4f; AJI %.4f; "
                "%lld split, %lld merged\n",
                (scheme == ClassScheme::kInteriorBoundary ? std::string("objects (interior grown over boundary)")
                 : scheme == ClassScheme::kDistance       ? std::string("objects (grown from their centres)")
                 : scheme == ClassScheme::kDirections     ? std::string("objects (directions followed to centres)")
                                                          : name(1) + " objects (4-connected)")
                    .c_str(), static_cast<long long>(o.truth_objects), static_cast<long long>(o.predicted_objects), o.f1(0),
                o.f1(5), o.mean_average_precision(), o.panoptic_quality(), o.aggregated_jaccard_index(),
                static_cast<long long>(o.split),
                static_cast<long long>(o.merged));
  }
  std::printf("  V_Rand (ISBI challenge, thinned)       %.4f   at threshold %.1f\n", m.v_rand_thinned, m.v_rand_thinned_threshold);
  std::printf("  V_Info (ISBI challenge, thinned)       %.4f   at threshold %.1f\n", m.v_info_thinned, m.v_info_thinned_threshold);
  std::printf("  V_Rand unthinned (threshold 0.5)       %.4f   best %.4f at %.1f\n", m.v_rand, m.v_rand_best, m.v_rand_threshold);
  std::printf("  V_Info unthinned (threshold 0.5)       %.4f   best %.4f at %.1f\n", m.v_info, m.v_info_best, m.v_info_threshold);
  std::fflush(stdout);
}

nlohmann::json class_record(const Metrics& m, const ClassNaming& naming) {
  nlohmann::json j = {{"class_names", naming.names}};
  const int64_t h = naming.headline;
  if (naming.has_headline() && h < static_cast<int64_t>(m.class_dice.size())) {
    j["headline"] = {{"class", naming.name(h)}, {"index", h}, {"dice", m.class_dice[h]}, {"iou", m.class_iou[h]}};
  }
  return j;
}

ClassNaming model_naming(const CheckpointInfo& info, const std::vector<std::string>& given) {
  validate_class_names(given);
  return rename_classes(recorded_naming(info.class_naming, info.model.classes(), info.model.scheme()), given);
}

}  // namespace unet::cli
