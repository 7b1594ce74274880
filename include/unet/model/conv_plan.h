// How a U-Net's forward pass runs, in one place: the path a pass takes (the int8 engine, the CPU
// engine, or the modules, and on the modules' path CUDA's fused kernels, CPU's fused kernels or
// LibTorch's plain ones), the convolutions it runs with the shapes each one sees, and which CPU
// kernel runs each (oneDNN's direct convolution, Winograd F(4x4, 3x3) or F(6x6, 3x3)). Callers
// ask here and branch on the answer; nothing else decides a path.
//
// | path (who asks)                  | 3x3 convolution + bias + ReLU                 | up-sampling + bias + ReLU       | pooling + skip crop | 1x1 head |
// |----------------------------------|-----------------------------------------------|---------------------------------|---------------------|----------|
// | kInt8Engine (Predictor)          | oneDNN int8 (int8_ops.h)                      | oneDNN int8                     | ATen                | oneDNN int8 |
// | kCpuEngine (Predictor)           | `conv_kernel`: direct (prepacked), F(4x4), F(6x6) | oneDNN, prepacked           | ATen                | oneDNN   |
// | ModulePath::kCudaFused (modules) | cuDNN conv-bias-ReLU (inference) or cuDNN conv + unet's bias-ReLU kernel | cuDNN + bias-ReLU kernel | ATen | cuDNN    |
// | ModulePath::kCpuFused (modules)  | `conv_kernel`: oneDNN fused + unet's backward, F(4x4) | oneDNN fused + unet's backward | one node (pool_crop.cpp) | ATen |
// | ModulePath::kPlain (modules)     | at::conv2d, at::relu (the reference)          | at::conv_transpose2d, at::relu  | ATen                | ATen     |
#pragma once

#include "unet/model/unet.h"
#include "unet/runtime/error.h"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace unet {

/// The convolutions of a U-Net in the order its forward pass runs them: every level's two, the
/// bottleneck's two, each level's up-sampling (a transposed convolution) and two, the 1x1 head.
/// Their parameters are `name + ".weight"` and `name + ".bias"`.
struct ConvLayer {
  std::string name;
  enum Kind { kConv, kUpSample, kHead } kind = kConv;
};
std::vector<ConvLayer> conv_layers(const UNetOptions& options);

/// Pairs (up-sampling layer, skip layer) of `conv_layers` indices whose outputs are concatenated:
/// in int8 both must share one scale.
std::vector<std::pair<size_t, size_t>> concatenated_layers(const UNetOptions& options);

/// One convolution of the forward pass on an input [N, in_channels, side, side] of legal `side`:
/// its layer, channels, kernel size, padding and the side of the feature map it reads.
struct ConvStep {
  ConvLayer layer;
  int64_t in_channels = 0, out_channels = 0, kernel = 3, padding = 0, input_side = 0;
};
/// The steps in `conv_layers` order.
std::vector<ConvStep> conv_steps(const UNetOptions& options, int64_t input_side);

/// The path of a forward pass through the network's modules (`UNetImpl::forward`), for input x.
enum class ModulePath {
  kCudaFused,  ///< CUDA input and `use_fused`: cuDNN's fused kernels and unet's bias + ReLU kernel
  kCpuFused,   ///< CPU input, `use_cpu_fusion`, float32 or bfloat16 compute (`onednn_trainable`)
  kPlain,      ///< everything else: LibTorch's modules and at::relu
};
ModulePath module_path(const at::Tensor& x, bool fused, bool cpu_fusion);

/// The path of a prediction (`Predictor`): the int8 engine for `int8`; the CPU engine for a model
/// (not an export) on the CPU in fp32, tf32 or bf16 with the engine on, no CUDA fusion and
/// oneDNN's operators present (`engine_available`); else the modules (`module_path`).
enum class InferencePath { kInt8Engine, kCpuEngine, kModules };
InferencePath inference_path(bool int8, bool on_cpu, bool engine_precision, bool has_model, bool cpu_engine,
                             bool fused, bool engine_available);

/// The execution choices of a run, the same for training and prediction (one flag each; the path
/// a pass then takes is `module_path`'s or `inference_path`'s answer).
struct ExecOptions {
  /// Channels-last (NHWC) weights and activations: faster convolutions on CPUs and GPUs.
  bool channels_last = true;
  /// On CUDA: CUDA graphs (training: the whole step captured after `TrainOptions::graph_warmup`
  /// eager steps, the reference's XLA; prediction: one graph per input shape). CPUs never use them.
  bool graphs = true;
  /// On CUDA: the fused kernels (bias + ReLU after every convolution, cuDNN's fused convolution in
  /// prediction, the loss in one kernel each way) instead of the plain LibTorch path.
  bool fused = false;
  /// On CPUs: oneDNN's convolutions with bias and ReLU fused, forward and backward in training
  /// (`UNetImpl::use_cpu_fusion`), with prepacked weights in prediction (`CpuEngine`); off: the
  /// plain LibTorch path.
  bool cpu_engine = true;
  /// With the CPU engine in float32: how the 3x3 convolutions run (`conv_kernel`).
  ConvAlgorithm conv_algorithm = ConvAlgorithm::kAuto;
};

/// Whether a pass computes gradients: inference (the CPU engine, no autograd) or a training step.
enum class Pass { kInference, kTraining };

/// The kernels a CPU float convolution of the network runs on.
enum class ConvKernel {
  kOnednnDirect,  ///< oneDNN's direct convolution, bias and ReLU fused (every layer kind, fp32 and bf16)
  kWinograd4,     ///< Winograd F(4x4, 3x3): unet_cpu's transforms around LibTorch's BLAS
  kWinograd6,     ///< Winograd F(6x6, 3x3): the same with 64 points per 6x6 tile; inference only
};
/// "direct", "winograd F(4x4,3x3)", "winograd F(6x6,3x3)".
const char* conv_kernel_name(ConvKernel kernel);

/// The kernel that runs `step` under `algorithm` in `dtype` in `pass`, on the CPU's fused paths
/// (the CPU engine in inference, `use_cpu_fusion` in training). Winograd never runs bfloat16,
/// the transposed and 1x1 convolutions. `kWinograd` is F(4x4) on every 3x3 convolution;
/// `kWinograd6` F(6x6) on every 3x3 convolution in inference and F(4x4) in training (F(6x6) has
/// no backward here). `kAuto` takes Winograd where both channel counts are at least
/// `kWinogradMinChannels`: in inference F(6x6), unless its tiles cover more than
/// `kWinograd6MaxOverhang` times the area F(4x4)'s cover (the ragged edge computed in vain), and
/// F(4x4) otherwise. Measured per layer (`unet benchmark --exec-mode layers` and `train-layers`,
/// docs/performance.md; 2-core AMD EPYC, AVX2, reference network at 572): with 64 to 1024
/// channels F(4x4) is 1.1-3.0x direct in inference and 2.4-6.1x in training (LibTorch's direct
/// backward kernels run far below its forward ones), F(6x6) 1.00-1.30x F(4x4) in inference (medians
/// of three runs) except where its tiles cover most area in vain (28 pixels: 0.85-0.87x; 52:
/// 0.78-0.94x); the map is taken as square (`input_side`: the engine's inputs are square);
/// with 1 to 32 channels Winograd is 0.1-0.8x direct in inference and 0.55x for the first
/// convolution in training.
ConvKernel conv_kernel(ConvAlgorithm algorithm, const ConvStep& step, at::ScalarType dtype, Pass pass);
inline constexpr int64_t kWinogradMinChannels = 64;
inline constexpr double kWinograd6MaxOverhang = 1.07;

/// `conv_kernel` of every step of `conv_steps(options, input_side)`, in that order.
std::vector<ConvKernel> conv_kernels(const UNetOptions& options, int64_t input_side, ConvAlgorithm algorithm,
                                     at::ScalarType dtype, Pass pass);

/// Whether `conv_kernel` is one of the Winograd kernels.
inline bool runs_winograd(ConvAlgorithm algorithm, const ConvStep& step, at::ScalarType dtype, Pass pass) {
  return conv_kernel(algorithm, step, dtype, pass) != ConvKernel::kOnednnDirect;
}

}  // namespace unet
