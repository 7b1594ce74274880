// Tests of TorchScript export and the embedding API (Segmenter).
#include "test_support.h"

#include "unet/infer/export.h"
#include "unet/infer/segmenter.h"
#include "unet/model/checkpoint.h"
#include "unet/runtime/error.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <torch/csrc/jit/serialization/import.h>

#include <filesystem>

using namespace unet;
using unet::test::run_unet;
using unet::test::TempDir;

namespace {

std::string save_tiny_checkpoint(const TempDir& dir, const UNetOptions& options, int64_t input_size) {
  at::manual_seed(3);
  UNet model(options);
  std::filesystem::create_directories(dir.file("model"));
  save_checkpoint(checkpoint_path(dir.file("model")), model, nullptr, CheckpointInfo{options, input_size, 1});
  return dir.file("model");
}

}  // namespace

TEST(Export, TorchScriptModuleMatchesTheNativeModel) {
  for (const UNetOptions& o : {UNetOptions().depth(2).filters(4), UNetOptions().depth(2).filters(4).up_kernel(2).in_channels(3).classes(3),
                               UNetOptions().depth(2).filters(4).padding(Padding::kSame)}) {
    TempDir dir;
    at::manual_seed(1);
    UNet model(o);
    model->eval();
    const int64_t size = o.padding() == Padding::kSame ? 32 : 60;
    export_torchscript(model, size, dir.file("m.pt"));
    const LoadedExport loaded = load_export(dir.file("m.pt"), c10::Device(c10::kCPU));
    EXPECT_TRUE(loaded.options == o);
    EXPECT_EQ(loaded.input_size, size);
    c10::InferenceMode guard;
    for (int64_t s : {size, size + 16}) {
      const at::Tensor x = at::randn({2, o.in_channels(), s, s});
      const at::Tensor expected = model->forward(x);
      const at::Tensor got = loaded.forward(x);
      EXPECT_EQ(got.sizes(), expected.sizes());
      EXPECT_TRUE(at::allclose(got, expected, 1e-5, 1e-6)) << o.describe() << " at " << s;
    }
    // Plain torch::jit::load, without this project's helpers: the contract is an attribute.
    torch::jit::Module m = torch::jit::load(dir.file("m.pt"));
    EXPECT_NE(m.attr("contract").toStringRef().find("\"classes\":" + std::to_string(o.classes())), std::string::npos);
    const at::Tensor p = m.run_method("probabilities", at::zeros({1, o.in_channels(), size, size})).toTensor();
    EXPECT_TRUE(at::allclose(p.sum(1), at::ones_like(p.sum(1)), 1e-5, 1e-5));
  }
}

TEST(Export, RunsFromPythonWherePyTorchIsInstalled) {
  const std::string python = UNET_TEST_PYTHON;
  if (python.empty() || !std::filesystem::exists(python)) GTEST_SKIP() << "no Python with torch configured (UNET_TEST_PYTHON); skipping";
  TempDir dir;
  const std::string model = save_tiny_checkpoint(dir, UNetOptions().depth(2).filters(4), 60);
  auto r = run_unet("export --model-dir " + model + " --output " + dir.file("m.pt"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string command = "'" + python + "' -W ignore -c \"import torch; m = torch.jit.load('" + dir.file("m.pt") +
                              "'); print(tuple(m.probabilities(torch.zeros(1, 1, 60, 60)).shape))\" > " + dir.file("out");
  ASSERT_EQ(std::system(command.c_str()), 0);
  EXPECT_NE(unet::test::read_file(dir.file("out")).find("(1, 2, 20, 20)"), std::string::npos) << unet::test::read_file(dir.file("out"));
}

TEST(Export, CliRefusesAnUntrainedDirectoryAndWritesNothing) {
  TempDir dir;
  std::filesystem::create_directories(dir.file("empty"));
  auto r = run_unet("export --model-dir " + dir.file("empty") + " --output " + dir.file("m.pt"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("nothing trained to export"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir.file("m.pt")));
  unet::test::write_file(dir.file("bogus.pt"), "not a module");
  EXPECT_THROW(load_export(dir.file("bogus.pt"), c10::Device(c10::kCPU)), Error);
}

TEST(Segmenter, CheckpointAndExportSegmentBuffersAlike) {
  TempDir dir;
  const std::string model = save_tiny_checkpoint(dir, UNetOptions().depth(2).filters(4), 60);
  ASSERT_EQ(run_unet("export --model-dir " + model + " --output " + dir.file("m.pt")).exit_code, 0);
  Segmenter a = Segmenter::from_checkpoint(checkpoint_path(model));
  Segmenter b = Segmenter::from_export(dir.file("m.pt"));
  std::vector<uint8_t> pixels(37 * 91);
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<uint8_t>((i * 37) % 251);
  const Segmentation sa = a.segment(pixels.data(), 37, 91), sb = b.segment(pixels.data(), 37, 91);
  EXPECT_EQ(sa.probabilities.sizes(), (std::vector<int64_t>{2, 37, 91}));
  EXPECT_EQ(sa.mask.sizes(), (std::vector<int64_t>{37, 91}));
  EXPECT_TRUE(at::allclose(sa.probabilities, sb.probabilities, 1e-5, 1e-6));
  EXPECT_TRUE(at::equal(sa.mask, sb.mask));
  EXPECT_THROW(a.segment(at::zeros({3, 10, 10}, at::kByte)), Error);  // 3 channels for a 1-channel model
}
