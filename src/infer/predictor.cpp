// Batched inference in resize mode and the prediction output files.
#include "unet/predictor.h"

#include "unet/error.h"
#include "unet/image_io.h"
#include "unet/loader.h"
#include "unet/metrics.h"
#include "unet/runtime.h"
#include "unet/step_graph.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <filesystem>

namespace unet {
namespace fs = std::filesystem;

Predictor::Predictor(UNet model, Geometry geometry, c10::Device device, int64_t batch_size, bool channels_last)
    : model_(std::move(model)),
      geometry_(geometry),
      device_(device),
      batch_size_(std::max<int64_t>(1, batch_size)),
      channels_last_(channels_last) {
  model_->to(device_);
  if (channels_last_) use_channels_last(*model_);
  model_->eval();
}

struct Predictor::CapturedForward {
  at::Tensor input, output;
  std::unique_ptr<StepGraph> graph;
};

at::Tensor Predictor::eager_forward(const at::Tensor& x) {
  PrecisionScope precision(device_, precision_);
  return model_->forward(x);
}

at::Tensor Predictor::forward(const at::Tensor& inputs, bool to_host) {
  c10::InferenceMode guard;
  at::Tensor x = inputs.to(device_, /*non_blocking=*/true);
  if (channels_last_) x = x.contiguous(at::MemoryFormat::ChannelsLast);
  auto finish = [to_host](const at::Tensor& logits) { return to_host ? logits.to(at::kFloat).cpu().contiguous() : logits; };
  if (!graphs_) return finish(eager_forward(x));
  const std::vector<int64_t> shape = x.sizes().vec();
  auto it = captured_.find(shape);
  if (it == captured_.end()) {
    // The first batch of a shape runs eagerly on the capture's stream (cuDNN picks its
    // algorithms), then is captured.
    auto captured = std::make_shared<CapturedForward>();
    // All shapes share the first graph's memory pool: they run one after another and each
    // output is copied out before the next replay.
    const StepGraph* first = captured_.empty() ? nullptr : captured_.begin()->second->graph.get();
    captured->graph = std::make_unique<StepGraph>(device_, first);
    at::Tensor out;
    captured->graph->warmup([&] { out = eager_forward(x); });
    out = finish(out);
    captured->input = x.clone(at::MemoryFormat::Preserve);
    try {
      captured->graph->capture([&] { captured->output = eager_forward(captured->input); });
      captured_.emplace(shape, std::move(captured));
    } catch (const Error& e) {
      notice(std::string(e.what()) + "; predicting without CUDA graphs");
      graphs_ = false;
    }
    return out;
  }
  it->second->input.copy_(x, /*non_blocking=*/true);
  it->second->graph->replay();
  // On the device the caller gets a copy: the graph's output buffer is overwritten by the next replay.
  return to_host ? finish(it->second->output) : it->second->output.clone();
}

void Predictor::use_tiles(const TileOptions& options) {
  tile_stride(model_->options(), options);  // validates the overlap
  output_size(model_->options(), options.input);  // and the tile size
  tiles_ = options;
  tiles_->tta = tiles_->tta || tta_;
  geometry_.input = options.input;
  geometry_.output = output_size(model_->options(), options.input);
  geometry_.tile = true;
}

void Predictor::run(const std::vector<Sample>& samples, const std::function<void(const PredictedBatch&)>& consume) {
  const int64_t classes = model_->options().classes();
  if (tiles_) {
    for (size_t i = 0; i < samples.size(); ++i) {
      PredictedBatch out;
      out.first = i;
      out.probabilities.push_back(
          predict_tiled([this](const at::Tensor& x) { return forward(x); }, model_->options(), samples[i].image, *tiles_));
      consume(out);
    }
    return;
  }
  for (size_t first = 0; first < samples.size(); first += static_cast<size_t>(batch_size_)) {
    const size_t n = std::min(samples.size() - first, static_cast<size_t>(batch_size_));
    const std::vector<Sample> chunk(samples.begin() + static_cast<std::ptrdiff_t>(first),
                                    samples.begin() + static_cast<std::ptrdiff_t>(first + n));
    const Batch batch = make_eval_batch(chunk, geometry_, classes);
    PredictedBatch out;
    out.first = first;
    at::Tensor probs;
    if (tta_) {
      for (int k = 0; k < 8; ++k) {
        const at::Tensor p = dihedral(at::softmax(forward(dihedral(batch.images, k, false)), 1), k, true);
        probs = probs.defined() ? probs + p : p;
      }
      c10::InferenceMode guard;
      probs = probs / 8;
      out.logits = probs.clamp_min(1e-12).log();  // log-probabilities: softmax gives probs back
    } else {
      out.logits = forward(batch.images);
      c10::InferenceMode guard;
      probs = at::softmax(out.logits, /*dim=*/1);
    }
    out.labels = batch.labels;
    c10::InferenceMode guard;
    for (size_t i = 0; i < n; ++i)
      out.probabilities.push_back(resize_maps(probs[static_cast<int64_t>(i)], chunk[i].image.size(1), chunk[i].image.size(2)));
    consume(out);
  }
}

std::vector<at::Tensor> Predictor::predict(const std::vector<Sample>& samples) {
  std::vector<at::Tensor> all;
  run(samples, [&](const PredictedBatch& b) { all.insert(all.end(), b.probabilities.begin(), b.probabilities.end()); });
  return all;
}

std::vector<std::string> write_predictions(const std::string& dir, const std::vector<Sample>& samples,
                                           const std::vector<at::Tensor>& probabilities, bool overlays,
                                           bool index_masks) {
  TORCH_CHECK(samples.size() == probabilities.size(), "write_predictions: one probability map per sample");
  ensure_writable_directory(dir, "prediction");
  std::vector<std::string> written;
  std::vector<at::Tensor> masks, class1;
  const bool two_classes = !probabilities.empty() && probabilities.front().size(0) == 2;
  for (const auto& p : probabilities) {
    const at::Tensor classes = maps_to_classes(p);
    masks.push_back(two_classes && !index_masks ? classes.mul(255).to(at::kByte) : classes.to(at::kByte));
    if (two_classes) class1.push_back(p[1].to(at::kFloat).contiguous());
  }
  // Pages of different sizes are fine in a multi-page TIFF, so one file holds every prediction.
  const std::string mask_path = (fs::path(dir) / "test-masks.tif").string();
  write_tiff(mask_path, masks, /*deflate=*/true);
  written.push_back(mask_path);
  if (two_classes) {
    const std::string prob_path = (fs::path(dir) / "test-probabilities.tif").string();
    write_tiff(prob_path, class1, /*deflate=*/true);
    written.push_back(prob_path);
  }
  if (overlays) {
    const fs::path overlay_dir = fs::path(dir) / "overlays";
    ensure_writable_directory(overlay_dir.string(), "overlay");
    for (size_t i = 0; i < samples.size(); ++i) {
      const at::Tensor gray = samples[i].image.mean(0).add(1.0).mul(127.5).clamp(0, 255);  // [H, W]
      const at::Tensor membrane = maps_to_classes(probabilities[i]) == kMembraneClass;
      at::Tensor rgb = gray.unsqueeze(0).repeat({3, 1, 1});
      // Tint predicted membrane: keep some of the image so that the underlying structure shows.
      rgb[0] = at::where(membrane, gray * 0.4 + 153.0, gray);
      rgb[1] = at::where(membrane, gray * 0.4, gray);
      rgb[2] = at::where(membrane, gray * 0.4, gray);
      // "stack.tif#3" -> "stack_3.png", "image.png" -> "image.png".
      const std::string& name = samples[i].name;
      const size_t hash = name.rfind('#');
      const std::string file = fs::path(name.substr(0, hash)).stem().string() +
                               (hash == std::string::npos ? "" : "_" + name.substr(hash + 1)) + ".png";
      const std::string path = (overlay_dir / file).string();
      write_png(path, rgb.round().to(at::kByte));
      written.push_back(path);
    }
  }
  return written;
}

}  // namespace unet
