// `unet predict`: masks, probabilities and overlays for a test stack, an image or a folder.
#include "options.h"

#include "unet/checkpoint.h"
#include "unet/error.h"
#include "unet/predictor.h"

#include <cstdio>
#include <filesystem>
#include <memory>

namespace unet::cli {
namespace fs = std::filesystem;

void register_predict(CLI::App& app) {
  auto o = std::make_shared<Options>();
  auto input = std::make_shared<std::string>();
  auto output_dir = std::make_shared<std::string>();
  auto no_overlays = std::make_shared<bool>(false);
  auto encoding = std::make_shared<std::string>("binary");
  CLI::App* cmd = app.add_subcommand("predict", "Predict masks with a trained checkpoint");
  cmd->add_option("--data-dir,--data_dir", o->data_dir, "Data directory whose test images (test-volume.tif or test/) are predicted");
  cmd->add_option("--input", *input, "A TIFF stack, an image or a folder of images to predict (instead of --data-dir)");
  cmd->add_option("--model-dir,--model_dir", o->model_dir, "Directory with checkpoint.pt")->capture_default_str();
  cmd->add_option("--output-dir", *output_dir, "Where predictions go (default: <model-dir>/predictions)");
  cmd->add_option("--batch-size,--batch_size", o->batch_size, "Images per forward pass")->capture_default_str();
  cmd->add_flag("--no-overlays", *no_overlays, "Skip the PNG overlays");
  cmd->add_option("--mask-encoding,--mask_encoding", *encoding,
                  "test-masks.tif values: binary (0/255, two-class models) or index (class indices)")
      ->capture_default_str();
  add_inference_options(*cmd, *o);
  add_runtime_options(*cmd, *o);
  cmd->callback([o, input, output_dir, no_overlays, encoding] {
    if (*encoding != "binary" && *encoding != "index")
      throw Error("--mask-encoding: expected binary or index, got '" + *encoding + "'");
    const c10::Device device = setup_runtime(*o);
    // One process does the work when a launcher started several (they would write the same files).
    if (detect_environment().rank > 0) return;
    const std::string ckpt = checkpoint_path(o->model_dir);
    const CheckpointInfo info = read_checkpoint_info(ckpt);
    std::vector<Sample> samples;
    if (!input->empty()) {
      samples = load_images(*input);
    } else if (!o->data_dir.empty()) {
      const fs::path d(o->data_dir);
      if (fs::exists(d / "test-volume.tif")) samples = load_images((d / "test-volume.tif").string());
      else if (fs::is_directory(d / "test")) samples = load_images((d / "test").string());
      else fail_file(o->data_dir, "no test-volume.tif or test/ to predict (or pass --input)");
    } else {
      throw Error("nothing to predict: pass --input FILE|DIR or --data-dir DIR");
    }
    for (const auto& s : samples) {
      if (s.image.size(0) != info.model.in_channels())
        throw Error(s.name + ": " + std::to_string(s.image.size(0)) + " channels, but the model expects " +
                    std::to_string(info.model.in_channels()));
    }
    Predictor predictor = checkpoint_predictor(*o, ckpt, info, device, samples);
    const std::string out = output_dir->empty() ? (fs::path(o->model_dir) / "predictions").string() : *output_dir;
    const auto probabilities = predictor.predict(samples);
    const auto written = write_predictions(out, samples, probabilities, !*no_overlays, *encoding == "index");
    std::printf("predicted %zu images with %s (step %lld)\n", samples.size(), ckpt.c_str(), static_cast<long long>(info.step));
    for (const auto& path : written) {
      if (path.find("/overlays/") == std::string::npos) std::printf("  wrote %s\n", path.c_str());
    }
    if (!*no_overlays) std::printf("  wrote %zu overlays in %s\n", samples.size(), (fs::path(out) / "overlays").c_str());
  });
}

}  // namespace unet::cli
