// GPU tests of the fused kernels against their ATen references (label cuda; skipped without a GPU).
#include "test_support.h"

#include "unet/model/loss.h"
#include "unet/model/ops.h"
#include "unet/runtime/precision.h"
#include "unet/train/loss_scaler.h"
#include "unet/train/trainer.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <torch/cuda.h>

#include <cmath>
#include <limits>

using namespace unet;

namespace {

/// A visible GPU and a build with the kernels (nvcc was found at configure time).
bool have_gpu() { return torch::cuda::is_available() && fused_kernels_built(); }

const c10::Device kCuda(c10::kCUDA, 0);

/// Allocates and frees a NaN-filled block of `like`'s size, so that a kernel output allocated
/// next from the caching allocator starts as NaN and an element the kernel leaves unwritten shows.
void poison(const at::Tensor& like) {
  { at::Tensor junk = at::full_like(like, std::numeric_limits<float>::quiet_NaN()); }
}

struct Case {
  at::ScalarType dtype;
  double rtol, atol;
};
// fp32: kernel and reference differ by summation order only; fp16/bf16 by one rounding of the
// activations (the kernel adds the bias in float32, the reference in the reduced type).
const Case kCases[] = {{at::kFloat, 1e-5, 1e-5}, {at::kHalf, 2e-3, 2e-3}, {at::kBFloat16, 1.6e-2, 1.6e-2}};

}  // namespace

TEST(Fused_CUDA, BiasReluMatchesTheReferenceWithGradientsInEveryTypeAndLayout) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device visible or no CUDA kernels built; skipping";
  for (const Case& c : kCases)
    for (bool nhwc : {true, false}) {
      at::manual_seed(1);
      auto format = nhwc ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
      const at::Tensor x0 = at::randn({3, 48, 17, 23}, at::TensorOptions(kCuda).dtype(c.dtype)).contiguous(format);
      const at::Tensor b0 = at::randn({48}, at::TensorOptions(kCuda));
      const at::Tensor gy = at::randn_like(x0);
      // The kernel adds the float32 bias in float32 and decides the ReLU there; the reference does
      // the same in float32 (a reference in the reduced type rounds the bias first and flips the
      // ReLU mask wherever x is within that rounding of -bias).
      at::Tensor x1 = x0.clone().requires_grad_(), b1 = b0.clone().requires_grad_();
      at::Tensor x2 = x0.to(at::kFloat).requires_grad_(), b2 = b0.clone().requires_grad_();
      poison(x0);
      const at::Tensor y1 = fused_bias_relu(x1, b1);
      const at::Tensor y2 = bias_relu_reference(x2, b2).to(c.dtype);
      const std::string what = std::string(c10::toString(c.dtype)) + (nhwc ? " NHWC" : " NCHW");
      EXPECT_TRUE(at::allclose(y1.to(at::kFloat), y2.to(at::kFloat), c.rtol, c.atol)) << what;
      poison(x0);
      y1.backward(gy);
      y2.backward(gy);
      EXPECT_EQ(x1.grad().scalar_type(), c.dtype);
      EXPECT_TRUE(at::allclose(x1.grad().to(at::kFloat), x2.grad(), c.rtol, c.atol)) << what;
      // The bias gradient sums 3*17*23 values in float32 on both sides, in different orders.
      const at::Tensor gb_ref = b2.grad().to(at::kFloat);
      EXPECT_TRUE(at::allclose(b1.grad(), gb_ref, 4 * c.rtol, 4 * c.rtol * gb_ref.abs().max().item<double>())) << what;
      EXPECT_EQ(b1.grad().scalar_type(), at::kFloat);
    }
}

TEST(Fused_CUDA, LossMatchesTheReferenceWithGradientsWithAndWithoutWeights) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device visible or no CUDA kernels built; skipping";
  for (const Case& c : kCases)
    for (int64_t classes : {2, 3})
      for (bool weighted : {false, true}) {
        at::manual_seed(2);
        const at::Tensor logits0 = (3 * at::randn({4, classes, 37, 41}, at::TensorOptions(kCuda).dtype(c.dtype)))
                                       .contiguous(at::MemoryFormat::ChannelsLast);
        const at::Tensor labels = at::randint(classes, {4, 37, 41}, at::TensorOptions(kCuda).dtype(at::kLong));
        const at::Tensor weights = weighted ? 1 + 9 * at::rand({4, 37, 41}, at::TensorOptions(kCuda)) : at::Tensor();
        at::Tensor a = logits0.clone().requires_grad_(), b = logits0.clone().requires_grad_();
        const LossTerms fused = fused_segmentation_loss(a, labels, weights);
        const LossTerms reference = segmentation_loss(b, labels, weights);
        const std::string what = std::string(c10::toString(c.dtype)) + " classes " + std::to_string(classes) +
                                 (weighted ? " weighted" : "");
        EXPECT_NEAR(fused.cross_entropy.item<double>(), reference.cross_entropy.item<double>(), 1e-4) << what;
        EXPECT_NEAR(fused.dice_loss.item<double>(), reference.dice_loss.item<double>(), 1e-4) << what;
        poison(logits0);
        // Unequal upstream gradients exercise both terms' scales.
        (0.7 * fused.cross_entropy + 1.3 * fused.dice_loss).backward();
        (0.7 * reference.cross_entropy + 1.3 * reference.dice_loss).backward();
        const at::Tensor ga = a.grad().to(at::kFloat), gb = b.grad().to(at::kFloat);
        EXPECT_FALSE(at::isnan(ga).any().item<bool>()) << what << ": unwritten gradient elements";
        const double scale = gb.abs().max().item<double>();
        EXPECT_TRUE(at::allclose(ga, gb, c.rtol * 10, scale * c.atol * 10)) << what << " max diff "
                                                                           << (ga - gb).abs().max().item<double>();
      }
}

TEST(Fused_CUDA, FusedTrainingStepsMatchThePlainPathEagerAndInGraphs) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device visible or no CUDA kernels built; skipping";
  const UNetOptions model = UNetOptions().depth(2).filters(16).dropout(0.0);
  for (bool graphs : {false, true}) {
    TrainOptions plain;
    plain.input_size = 92;
    plain.batch_size = 2;
    plain.exec.graphs = graphs;
    plain.graph_warmup = 1;
    TrainOptions fused = plain;
    fused.exec.fused = true;
    const RunContext bf16 = unet::test::quiet_context(kCuda, Precision::kBF16);
    Trainer a(model, plain, bf16), b(model, fused, bf16);
    std::vector<at::Tensor> initial;
    for (const auto& p : a.model()->parameters()) initial.push_back(p.detach().clone());
    const int64_t out = output_size(model, 92);
    for (int k = 0; k < 4; ++k) {
      at::manual_seed(10 + k);
      Batch batch;
      batch.images = at::randn({2, 1, 92, 92});
      batch.labels = at::randint(2, {2, out, out}, at::kLong);
      const double la = a.step(batch).total.item<double>(), lb = b.step(batch).total.item<double>();
      EXPECT_NEAR(la, lb, 2e-2 * std::abs(la)) << (graphs ? "graphs" : "eager") << " step " << k;
    }
    if (graphs) EXPECT_TRUE(b.graph_captured());
    const auto pa = a.model()->parameters(), pb = b.model()->parameters();
    for (size_t i = 0; i < pa.size(); ++i)
      EXPECT_TRUE(at::allclose(pa[i], pb[i], 5e-2, 5e-3)) << (graphs ? "graphs" : "eager") << " parameter " << i;
    // The weights move by at most ~4e-4 in 4 steps of 1e-4, inside the tolerance above: compare the
    // updates themselves. Both paths update every parameter, and in the same direction (bf16
    // rounding may flip the sign of Adam's update where a gradient is near zero: a loose bound on
    // the whole update's difference, not per element).
    double difference = 0.0, size = 0.0;
    for (size_t i = 0; i < pa.size(); ++i) {
      const at::Tensor da = (pa[i] - initial[i]).to(at::kDouble), db = (pb[i] - initial[i]).to(at::kDouble);
      EXPECT_GT(da.abs().max().item<double>(), 0.0) << "plain path: parameter " << i << " never moved";
      EXPECT_GT(db.abs().max().item<double>(), 0.0) << "fused path: parameter " << i << " never moved";
      difference += (da - db).pow(2).sum().item<double>();
      size += da.pow(2).sum().item<double>();
    }
    EXPECT_LT(std::sqrt(difference), 0.5 * std::sqrt(size)) << (graphs ? "graphs" : "eager") << ": the updates differ";
  }
}

TEST(Fused_CUDA, FusedInferenceMatchesThePlainPathInEveryPrecision) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device visible or no CUDA kernels built; skipping";
  at::manual_seed(21);
  UNet model(UNetOptions().depth(2).filters(16));
  model->to(kCuda);
  use_channels_last(*model);
  model->eval();
  const at::Tensor x = at::randn({2, 1, 92, 92}, at::TensorOptions(kCuda)).contiguous(at::MemoryFormat::ChannelsLast);
  for (const Case& c : kCases) {
    c10::InferenceMode guard;
    const c10::Device d = kCuda;
    auto run = [&](bool fused) {
      model->use_fused(fused);
      PrecisionScope scope(d, c.dtype == at::kHalf ? Precision::kFP16 : c.dtype == at::kBFloat16 ? Precision::kBF16 : Precision::kFP32);
      return model->forward(x).to(at::kFloat);
    };
    const at::Tensor plain = run(false), fused = run(true);
    const double scale = plain.abs().max().item<double>();
    EXPECT_TRUE(at::allclose(fused, plain, 4 * c.rtol, 4 * c.rtol * scale)) << c10::toString(c.dtype) << " max diff "
                                                                              << (fused - plain).abs().max().item<double>();
  }
  model->use_fused(false);
}
