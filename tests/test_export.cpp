// Tests of the exports (TorchScript, ONNX) and the embedding API (Segmenter).
#include "test_support.h"

#include "unet/infer/bioimageio.h"
#include "unet/infer/export.h"
#include "unet/infer/segmenter.h"
#include "unet/model/checkpoint.h"
#include "unet/onnx/writer.h"
#include "unet/data/image_io.h"
#include "unet/data/preprocess.h"
#include "unet/data/tiles.h"
#include "unet/runtime/error.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <torch/csrc/jit/serialization/import.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

using namespace unet;
using unet::test::read_floats;
using unet::test::run_unet;
using unet::test::TempDir;
using unet::test::write_floats;

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

// What a model records about its objects travels in the contract's training record: read back as
// written; a value out of its range is refused in one line naming the file.
TEST(Export, TheContractCarriesTheObjectRecordAndRefusesADamagedOne) {
  TempDir dir;
  UNet model(UNetOptions().depth(2).filters(4));
  export_torchscript(model, 60, dir.file("m.pt"), R"({"object_area_median":400,"object_threshold":0.35,"min_object_probability":0.7})");
  const ObjectRecord read = load_export(dir.file("m.pt"), c10::Device(c10::kCPU)).objects;
  EXPECT_EQ(read.median_area, 400);
  EXPECT_DOUBLE_EQ(read.threshold, 0.35);
  EXPECT_DOUBLE_EQ(read.min_probability, 0.7);
  for (const auto& [record, expected] : {std::pair<std::string, std::string>{R"({"min_object_probability":1})", "smallest mean object probability"},
                                         {R"({"min_object_probability":"x"})", "smallest mean object probability"},
                                         {R"({"object_threshold":0})", "object threshold"}}) {
    export_torchscript(model, 60, dir.file("bad.pt"), record);
    try {
      load_export(dir.file("bad.pt"), c10::Device(c10::kCPU));
      ADD_FAILURE() << record << " was read";
    } catch (const Error& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find(dir.file("bad.pt") + ": damaged unet contract: " + expected), std::string::npos) << what;
      EXPECT_EQ(what.find('\n'), std::string::npos) << what;
    }
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

namespace {

/// UNET_TEST_PYTHON when it can import onnx, ONNX Runtime and OpenVINO, else "".
std::string python_with_runtimes() { return unet::test::python_with("numpy, onnx, onnxruntime, openvino"); }

}  // namespace

/// Runs the ONNX file `onnx` in ONNX Runtime and OpenVINO (tests/onnx_reference.py, in `python`)
/// on random inputs of each {N, H, W} in `shapes` and expects `model`'s probabilities (1e-4).
void expect_onnx_like(const std::string& python, UNet& model, const std::string& onnx,
                      const std::vector<std::vector<int64_t>>& shapes, const TempDir& dir) {
  nlohmann::json spec = {{"tolerance", 1e-4}, {"cases", nlohmann::json::array()}};
  c10::InferenceMode guard;
  model->eval();
  int i = 0;
  for (const auto& nhw : shapes) {
    const at::Tensor x = at::rand({nhw[0], model->options().in_channels(), nhw[1], nhw[2]}) * 2 - 1;
    const at::Tensor p = at::softmax(model->forward(x), 1);
    const std::string in = "x" + std::to_string(i) + ".f32", out = "p" + std::to_string(i++) + ".f32";
    write_floats(dir.file(in), x);
    write_floats(dir.file(out), p);
    spec["cases"].push_back({{"input", in}, {"expected", out}, {"shape", x.sizes().vec()}, {"output_shape", p.sizes().vec()}});
  }
  unet::test::write_file(dir.file("cases.json"), spec.dump());
  const std::string command = "'" + python + "' " + std::string(UNET_TEST_DATA_DIR) + "/../onnx_reference.py " + onnx + " " +
                              dir.file("cases.json") + " > " + dir.file("log") + " 2>&1";
  EXPECT_EQ(std::system(command.c_str()), 0) << model->options().describe() << "\n" << unet::test::read_file(dir.file("log"));
}

TEST(Export, OnnxRunsInOnnxRuntimeAndOpenVinoLikeTheNativeModel) {
  if (!onnx_export::available()) GTEST_SKIP() << "built without libonnx; skipping";
  const std::string python = python_with_runtimes();
  if (python.empty()) GTEST_SKIP() << "no UNET_TEST_PYTHON with onnx, onnxruntime and openvino (scripts/run.sh test installs them); skipping";
  struct Case {
    UNetOptions options;
    std::vector<int64_t> first, second;  // {N, H, W} of two inputs
  };
  const std::vector<Case> cases = {
      {UNetOptions(), {1, 188, 188}, {3, 204, 220}},  // the reference architecture
      {UNetOptions().depth(2).filters(4).in_channels(3).classes(3).up_kernel(2), {1, 60, 60}, {3, 76, 92}},
      {UNetOptions().depth(3).filters(4).padding(Padding::kSame), {1, 32, 32}, {3, 48, 40}},
  };
  for (const Case& c : cases) {
    TempDir dir;
    at::manual_seed(5);
    UNet model(c.options);
    model->eval();
    export_onnx(model, c.first[1], dir.file("m.onnx"));
    expect_onnx_like(python, model, dir.file("m.onnx"), {c.first, c.second}, dir);
  }
}

TEST(Export, OnnxWriterRefusesANetworkItCannotExpress) {
  if (!onnx_export::available()) GTEST_SKIP() << "built without libonnx; skipping";
  onnx_export::Network net;
  net.depth = 1;
  EXPECT_THROW(onnx_export::build_model(net, {}), std::runtime_error);  // no weights
  net.up_kernel = 5;
  try {
    onnx_export::build_model(net, {});
    ADD_FAILURE() << "an up-sampling kernel of 5 was exported";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("kernel 5"), std::string::npos) << e.what();
  }
  // A weight of the wrong shape is named.
  at::manual_seed(1);
  UNet model(UNetOptions().depth(1).filters(2));
  for (const auto& item : model->named_parameters()) {
    const at::Tensor w = item.value().detach().contiguous();
    net.weights.push_back({item.key(), w.sizes().vec(), std::vector<float>(w.data_ptr<float>(), w.data_ptr<float>() + w.numel())});
  }
  net.up_kernel = 3;
  EXPECT_NO_THROW(onnx_export::build_model(net, {}));
  net.weights[0].shape[1] = 7;
  try {
    onnx_export::build_model(net, {});
    ADD_FAILURE() << "a mis-shaped weight was exported";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(net.weights[0].name), std::string::npos) << e.what();
  }
}

TEST(Export, OnnxCliWritesTheFileOrNothing) {
  if (!onnx_export::available()) GTEST_SKIP() << "built without libonnx; skipping";
  TempDir dir;
  const std::string model = save_tiny_checkpoint(dir, UNetOptions().depth(2).filters(4), 60);
  auto r = run_unet("export --model-dir " + model + " --format onnx");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(std::filesystem::exists(dir.file("model/unet.onnx")));
  EXPECT_NE(r.out.find("\"format\": \"unet-onnx/1\""), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("onnxruntime"), std::string::npos) << r.out;
  // An unwritable output: one line, non-zero exit, nothing written.
  r = run_unet("export --model-dir " + model + " --format onnx --output " + dir.file("no/such/dir/m.onnx"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_FALSE(std::filesystem::exists(dir.file("no/such/dir")));
  // A directory without a checkpoint, in every format.
  std::filesystem::create_directories(dir.file("empty"));
  for (const std::string format : {"onnx", "bioimageio"}) {
    r = run_unet("export --model-dir " + dir.file("empty") + " --format " + format);
    EXPECT_EQ(r.exit_code, 1) << format;
    EXPECT_NE(r.err.find("nothing trained to export"), std::string::npos) << r.err;
  }
  EXPECT_TRUE(std::filesystem::is_empty(dir.file("empty")));
  // An unknown format.
  r = run_unet("export --model-dir " + model + " --format tflite --output " + dir.file("m.x"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("tflite"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir.file("m.x")));
}

namespace {

/// UNET_TEST_PYTHON when it has bioimageio.core (with ONNX Runtime and torch), else "".
std::string python_with_bioimageio() { return unet::test::python_with("bioimageio.core, onnxruntime, torch"); }

/// The sample for packages: a real ISBI slice where the data is present, else "" (synthetic).
std::string isbi_sample(const TempDir& dir) {
  const std::string volume = std::string(UNET_ISBI_DIR) + "/train-volume.tif";
  if (!std::filesystem::exists(volume)) return "";
  write_tiff(dir.file("slice.tif"), {read_tiff(volume).at(0).pixels});
  return dir.file("slice.tif");
}

}  // namespace

TEST(Export, OnnxCliFilePredictsWhatItsCheckpointPredicts) {
  if (!onnx_export::available()) GTEST_SKIP() << "built without libonnx; skipping";
  const std::string python = python_with_runtimes();
  if (python.empty()) GTEST_SKIP() << "no UNET_TEST_PYTHON with onnx, onnxruntime and openvino (scripts/run.sh test installs them); skipping";
  TempDir dir;
  const std::string model = save_tiny_checkpoint(dir, UNetOptions().depth(2).filters(4), 60);
  const auto r = run_unet("export --model-dir " + model + " --format onnx");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  UNet trained = load_model(checkpoint_path(model), read_checkpoint_info(checkpoint_path(model)));
  expect_onnx_like(python, trained, dir.file("model/unet.onnx"), {{1, 60, 60}, {2, 76, 92}}, dir);
}

TEST(Export, BioimageioPackagePassesBioimageioTestAndHoldsUnetsPrediction) {
  if (!bioimageio_available()) GTEST_SKIP() << "built without libzip or libonnx; skipping";
  const std::string python = python_with_bioimageio();
  if (python.empty()) GTEST_SKIP() << "no UNET_TEST_PYTHON with bioimageio.core, onnxruntime and torch (scripts/run.sh test installs them); skipping";
  TempDir dir;
  // A grayscale EM model with a real ISBI slice (or the synthetic one), and an RGB three-class
  // same-padding model with a 16-bit sample of odd size.
  at::manual_seed(2);
  write_png(dir.file("rgb16.png"), at::randint(0, 65536, {3, 70, 90}, at::kInt));
  struct Case {
    UNetOptions options;
    std::string sample;
    double max_value;
    std::vector<int64_t> crop;  // the largest legal crop of the sample
  };
  const std::string isbi = isbi_sample(dir);
  const std::vector<Case> cases = {
      {UNetOptions().depth(2).filters(4), isbi, 255.0, isbi.empty() ? std::vector<int64_t>{256, 256} : std::vector<int64_t>{512, 512}},
      {UNetOptions().depth(2).filters(4).in_channels(3).classes(3).padding(Padding::kSame).up_kernel(2), dir.file("rgb16.png"),
       65535.0, {68, 88}},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    const Case& c = cases[i];
    SCOPED_TRACE(c.options.describe());
    TempDir run;
    const std::string model = save_tiny_checkpoint(run, c.options, c.options.padding() == Padding::kSame ? 32 : 60);
    auto r = run_unet("export --model-dir " + model + " --format bioimageio --output " + run.file("p.zip") +
                      (c.sample.empty() ? "" : " --sample " + c.sample) + " --authors 'Ada Lovelace,Alan Turing'");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    // The spec's own checks, running both weight formats on the test input.
    const std::string test = "'" + python + "' -m bioimageio.core test " + run.file("p.zip") + " > " + run.file("log") + " 2>&1";
    EXPECT_EQ(std::system(test.c_str()), 0) << unet::test::read_file(run.file("log"));
    const std::string log = unet::test::read_file(run.file("log"));
    EXPECT_NE(log.find("weights.onnx"), std::string::npos) << log;
    EXPECT_NE(log.find("weights.torchscript"), std::string::npos) << log;
    // The test output is this model's probabilities for the test input.
    const std::string extract = "'" + python + "' -c \"import zipfile, io, numpy as np, json; z = zipfile.ZipFile('" +
        run.file("p.zip") + "'); x = np.load(io.BytesIO(z.read('test_input.npy'))); p = np.load(io.BytesIO(z.read('test_output.npy'))); "
        "x.astype('<f4').tofile('" + run.file("x.f32") + "'); p.astype('<f4').tofile('" + run.file("p.f32") + "'); "
        "print(json.dumps([list(x.shape), list(p.shape)]))\" > " + run.file("shapes");
    ASSERT_EQ(std::system(extract.c_str()), 0);
    const auto shapes = nlohmann::json::parse(unet::test::read_file(run.file("shapes")));
    const std::vector<int64_t> in_shape = shapes[0], out_shape = shapes[1];
    EXPECT_EQ(in_shape, (std::vector<int64_t>{1, c.options.in_channels(), c.crop[0], c.crop[1]}));
    const at::Tensor x = read_floats(run.file("x.f32"), in_shape), p = read_floats(run.file("p.f32"), out_shape);
    const CheckpointInfo info = read_checkpoint_info(checkpoint_path(model));
    UNet native = load_model(checkpoint_path(model), info);
    native->eval();
    c10::InferenceMode guard;
    const at::Tensor expected = at::softmax(native->forward(x / c.max_value * 2 - 1), 1);
    EXPECT_TRUE(at::allclose(p, expected, 1e-5, 1e-6)) << (p - expected).abs().max().item<float>();
  }
}

TEST(Export, BioimageioRefusesBadOptionsAndWritesNothing) {
  if (!bioimageio_available()) GTEST_SKIP() << "built without libzip or libonnx; skipping";
  TempDir dir;
  const std::string model = save_tiny_checkpoint(dir, UNetOptions().depth(2).filters(4), 60);
  write_png(dir.file("small.png"), at::zeros({1, 30, 30}, at::kByte));
  unet::test::write_file(dir.file("text.png"), "not an image");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"--sample " + dir.file("small.png"), "needs at least 44 per side"},
      {"--sample " + dir.file("text.png"), dir.file("text.png")},
      {"--class-names a,b,c", "3 names given for a model of 2 classes"},
      {"--name 'a/b c'", "bioimage.io name"},
  };
  for (const auto& [args, message] : cases) {
    auto r = run_unet("export --model-dir " + model + " --format bioimageio --output " + dir.file("p.zip") + " " + args);
    EXPECT_EQ(r.exit_code, 1) << args;
    EXPECT_NE(r.err.find(message), std::string::npos) << args << ": " << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_FALSE(std::filesystem::exists(dir.file("p.zip"))) << args;
  }
}

// The Segmenter against an independent reference: the checkpoint's network run once over the whole
// image, mirror-padded by the tiles' margin (68x68 -> 108x108 in, 68x68 out), on the image scaled
// as its type says. With the paper's 2x2 up-sampling the network is exactly shift-equivariant,
// so the tiles (60 -> 20, at multiples of 4) must give that pass; checkpoint and export both.
TEST(Segmenter, CheckpointAndExportSegmentAsOneWholeImagePass) {
  TempDir dir;
  const std::string model = save_tiny_checkpoint(dir, UNetOptions().depth(2).filters(4).up_kernel(2), 60);
  ASSERT_EQ(run_unet("export --model-dir " + model + " --output " + dir.file("m.pt")).exit_code, 0);
  std::vector<uint8_t> pixels(68 * 68);
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<uint8_t>((i * 37 + i / 68 * 11) % 251);
  RawImage raw;
  raw.pixels = at::from_blob(pixels.data(), {1, 68, 68}, at::kByte).clone();
  UNet net = load_model(checkpoint_path(model), read_checkpoint_info(checkpoint_path(model)));
  net->eval();
  at::Tensor whole;
  {
    c10::InferenceMode guard;
    const at::Tensor image = normalise(raw), idx = mirror_indices(68, -20, 108);
    whole = at::softmax(net->forward(image.index_select(1, idx).index_select(2, idx).unsqueeze(0)), 1)[0];
  }
  ASSERT_EQ(whole.sizes(), (std::vector<int64_t>{2, 68, 68}));
  for (const bool exported : {false, true}) {
    Segmenter s = exported ? Segmenter::from_export(dir.file("m.pt")) : Segmenter::from_checkpoint(checkpoint_path(model));
    const Segmentation out = s.segment(pixels.data(), 68, 68);
    EXPECT_TRUE(at::allclose(out.probabilities, whole, 1e-5, 1e-6))
        << (exported ? "export" : "checkpoint") << ": max difference " << (out.probabilities - whole).abs().max().item<double>();
    EXPECT_TRUE(at::equal(out.mask, whole.argmax(0).to(out.mask.scalar_type()))) << (exported ? "export" : "checkpoint");
  }
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
