// Tests of `unet export --precision int8`: the ONNX QDQ file run in ONNX Runtime (and OpenVINO
// where importable) against unet's own int8 engine on the same calibration, the kernels the
// runtimes pick, and the refusals (no calibration, a format other than ONNX).
#include "test_support.h"

#include "unet/infer/bioimageio.h"
#include "unet/infer/export.h"
#include "unet/infer/int8_engine.h"
#include "unet/infer/quantize.h"
#include "unet/model/checkpoint.h"
#include "unet/model/int8_ops.h"
#include "unet/onnx/writer.h"
#include "unet/runtime/files.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

using namespace unet;
using unet::test::run_unet;
using unet::test::TempDir;
using unet::test::read_floats;
using unet::test::write_floats;

namespace {

/// Inputs in [-1, 1] with structure (smoothed noise), as preprocessed images are.
at::Tensor images(int64_t n, int64_t channels, int64_t size, uint64_t seed) {
  at::manual_seed(seed);
  const at::Tensor x = at::avg_pool2d(at::randn({n, channels, size + 4, size + 4}), 5, 1);
  return (x / x.abs().max()).contiguous();
}


/// A model directory with a checkpoint of `o` (random weights, step 1) and, when `calibrated`, its
/// int8.json by min-max over a few inputs of `size`; returns the scales.
Int8Scales save_model(const std::string& dir, const UNetOptions& o, int64_t size, bool calibrated, UNet* out = nullptr) {
  at::manual_seed(11);
  UNet model(o);
  model->eval();
  {
    // Default initialization shrinks the signal from layer to layer (logits within 0.1 of each
    // other); doubled weights keep activations and logits spread as a trained network's are.
    c10::InferenceMode guard;
    for (auto& p : model->parameters()) p.mul_(2.0);
    // Channels whose weights are all 0 but whose bias is not (dead or pruned filters): their
    // weight scale must let the int32 bias hold the bias.
    auto params = model->named_parameters();
    params["down.1.conv1.weight"][0].zero_();
    params["down.1.conv1.bias"][0].fill_(0.3);
    params["up_sample.0.weight"].select(1, 0).zero_();
    params["up_sample.0.bias"][0].fill_(0.2);
  }
  std::filesystem::create_directories(dir);
  const std::string ckpt = checkpoint_path(dir);
  save_checkpoint(ckpt, model, nullptr, CheckpointInfo{o, size, 1});
  if (out) *out = model;
  if (!calibrated) return {};
  Calibrator c(o);
  c.observe(model, images(4, o.in_channels(), size, 3));
  Int8Record r;
  r.scales = c.scales(CalibrationMethod::kMinMax);
  r.method = "minmax";
  r.step = 1;
  r.fingerprint = weights_fingerprint(model);
  write_text_atomically(int8_scales_path(ckpt), int8_record_json(r, o));
  return r.scales;
}

/// The logits' change when every input of the head moves by one u8 step: the last activation's
/// scale times the largest sum of |head weight| over a class's inputs.
float output_step(const UNet& model, const Int8Scales& scales) {
  c10::InferenceMode guard;
  const at::Tensor w = model->named_parameters()["head.weight"];
  return scales.outputs[scales.outputs.size() - 2] * w.abs().sum({1, 2, 3}).max().item<float>();
}

}  // namespace

TEST(Int8Onnx, QdqFileRunsInOnnxRuntimeLikeTheInt8Engine) {
  if (!onnx_export::available()) GTEST_SKIP() << "built without libonnx; skipping";
  if (!Int8Engine::available()) GTEST_SKIP() << "no int8 engine on this CPU or LibTorch; skipping";
  // The file holds 8-bit weights for any machine; without VNNI the engine keeps 7 (int8_weight_levels).
  if (int8_weight_levels() != 127)
    GTEST_SKIP() << "the int8 engine uses 7-bit weights on this CPU (" << cpu_int8_units()
                 << "), the file 8-bit ones: the comparison needs VNNI or AMX; skipping";
  const std::string python = unet::test::python_with("numpy, onnx, onnxruntime");
  if (python.empty()) GTEST_SKIP() << "no UNET_TEST_PYTHON with onnx and onnxruntime (scripts/run.sh test installs them); skipping";
  struct Case {
    UNetOptions options;
    int64_t size;
  };
  const std::vector<Case> cases = {{UNetOptions().depth(2).filters(8), 60},
                                   {UNetOptions().depth(2).filters(8).padding(Padding::kSame).up_kernel(2).classes(3), 32}};
  for (const Case& c : cases) {
    TempDir dir;
    UNet model(c.options);
    const Int8Scales scales = save_model(dir.file("model"), c.options, c.size, true, &model);
    auto r = run_unet("export --model-dir " + dir.file("model") + " --format onnx --precision int8");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    ASSERT_TRUE(std::filesystem::exists(dir.file("model/unet_int8.onnx"))) << r.out;
    EXPECT_NE(r.out.find("\"precision\": \"int8"), std::string::npos) << r.out;
    // unet's int8 engine on two inputs: the trained size and a larger legal one.
    Int8Engine engine(model, scales);
    // One output step: what the logits move by when every input of the head moves by one u8 step.
    const float step = output_step(model, scales);
    // Measured (2026-12-04, ONNX Runtime 1.32.0, OpenVINO 2026.4.1, AMX-INT8 CPU), with the
    // engine's bias on the accumulator's grid as the file's int32 bias: ONNX Runtime within 1e-3
    // output steps of the engine, OpenVINO 0.24, argmax agreement >= 99.9%; fp32 is 2.2 to 8.3
    // steps away on these inputs, a float bias 0.9, a transposed DepthToSpace 22, a dead
    // channel's bias lost 6.4.
    nlohmann::json spec = {{"logit_tolerance", 0.5 * step}, {"onnxruntime_logit_tolerance", 0.05 * step},
                           {"probability_tolerance", 0.25 * step}, {"min_agreement", 0.995},
                           {"output_step", step}, {"cases", nlohmann::json::array()}};
    int i = 0;
    for (int64_t s : {c.size, c.size + 16}) {
      const at::Tensor x = images(2, c.options.in_channels(), s, 20 + static_cast<uint64_t>(i));
      const at::Tensor logits = engine.forward(x);
      {
        c10::InferenceMode guard;
        std::printf("fp32 vs int8 engine: max |logit diff| %.3e (%.2f output steps of %.3e), logits in [%.3f, %.3f]\n",
                    (model->forward(x) - logits).abs().max().item<float>(),
                    (model->forward(x) - logits).abs().max().item<float>() / step, step, logits.min().item<float>(), logits.max().item<float>());
      }
      const std::string in = "x" + std::to_string(i) + ".f32", out = "l" + std::to_string(i++) + ".f32";
      write_floats(dir.file(in), x);
      write_floats(dir.file(out), logits);
      spec["cases"].push_back({{"input", in}, {"logits", out}, {"shape", x.sizes().vec()}, {"output_shape", logits.sizes().vec()}});
    }
    unet::test::write_file(dir.file("cases.json"), spec.dump());
    const std::string command = "'" + python + "' " + std::string(UNET_TEST_DATA_DIR) + "/../onnx_int8_reference.py " +
                                dir.file("model/unet_int8.onnx") + " " + dir.file("cases.json") + " > " + dir.file("log") + " 2>&1";
    EXPECT_EQ(std::system(command.c_str()), 0) << c.options.describe() << "\n" << unet::test::read_file(dir.file("log"));
    std::printf("%s\n%s", c.options.describe().c_str(), unet::test::read_file(dir.file("log")).c_str());
  }
}

TEST(Int8Onnx, BioimageioPackagePassesBioimageioTestWithTheInt8Output) {
  if (!onnx_export::available() || !bioimageio_available()) GTEST_SKIP() << "built without libonnx or libzip; skipping";
  if (!Int8Engine::available()) GTEST_SKIP() << "no int8 engine on this CPU or LibTorch; skipping";
  if (int8_weight_levels() != 127) GTEST_SKIP() << "int8 packages need VNNI or AMX (" << cpu_int8_units() << "); skipping";
  const std::string python = unet::test::python_with("bioimageio.core, onnxruntime");
  if (python.empty()) GTEST_SKIP() << "no UNET_TEST_PYTHON with bioimageio.core and onnxruntime (scripts/run.sh test installs them); skipping";
  TempDir dir;
  const UNetOptions o = UNetOptions().depth(2).filters(8);
  UNet model(o);
  const Int8Scales scales = save_model(dir.file("model"), o, 60, true, &model);
  auto r = run_unet("export --model-dir " + dir.file("model") + " --format bioimageio --precision int8");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string zip = dir.file("model/unet_int8.bioimageio.zip");
  ASSERT_TRUE(std::filesystem::exists(zip)) << r.out;
  // The spec's own checks: the one weight format (the QDQ file) run by ONNX Runtime reproduces the
  // test output within the package's stated tolerance.
  const std::string test = "'" + python + "' -m bioimageio.core test " + zip + " > " + dir.file("log") + " 2>&1";
  EXPECT_EQ(std::system(test.c_str()), 0) << unet::test::read_file(dir.file("log"));
  const std::string log = unet::test::read_file(dir.file("log"));
  EXPECT_NE(log.find("weights.onnx"), std::string::npos) << log;
  EXPECT_EQ(log.find("torchscript"), std::string::npos) << log;
  // Its test output is unet's int8 engine on the test input; the rdf says int8 and its tolerance.
  const std::string extract = "'" + python + "' -c \"import zipfile, io, numpy as np, json; z = zipfile.ZipFile('" + zip +
      "'); x = np.load(io.BytesIO(z.read('test_input.npy'))); p = np.load(io.BytesIO(z.read('test_output.npy'))); "
      "x.astype('<f4').tofile('" + dir.file("x.f32") + "'); p.astype('<f4').tofile('" + dir.file("p.f32") + "'); "
      "r = json.loads(z.read('rdf.yaml')); "
      "print(json.dumps([list(x.shape), list(p.shape), sorted(r['weights']), r['config']]))\" > " + dir.file("facts");
  ASSERT_EQ(std::system(extract.c_str()), 0);
  const auto facts = nlohmann::json::parse(unet::test::read_file(dir.file("facts")));
  const std::vector<int64_t> in_shape = facts[0], out_shape = facts[1];
  EXPECT_EQ(facts[2], nlohmann::json::array({"onnx"}));
  EXPECT_EQ(facts[3]["unet"]["precision"], "int8");
  const at::Tensor x = read_floats(dir.file("x.f32"), in_shape), p = read_floats(dir.file("p.f32"), out_shape);
  // One output step, within the spec's bound of 1% of the largest test value.
  const double tolerance = facts[3]["bioimageio"]["reproducibility_tolerance"][0]["absolute_tolerance"];
  const double step = output_step(model, scales), cap = 0.01 * p.max().item<double>();
  EXPECT_LE(tolerance, cap);
  EXPECT_NEAR(tolerance, std::min(std::max(1e-3, step), 0.999 * cap), 1e-6);
  Int8Engine engine(model, scales);
  const at::Tensor expected = at::softmax(engine.forward(x / 255.0 * 2 - 1), 1);
  EXPECT_LT((p - expected).abs().max().item<float>(), 1e-6);
  // fp32 differs from it by more than rounding: the test output is not the float model's.
  c10::InferenceMode guard;
  EXPECT_GT((p - at::softmax(model->forward(x / 255.0 * 2 - 1), 1)).abs().max().item<float>(), 1e-4);
}

TEST(Int8Onnx, ExportRefusesWithoutCalibrationAndOutsideOnnx) {
  if (!onnx_export::available()) GTEST_SKIP() << "built without libonnx; skipping";
  TempDir dir;
  const UNetOptions o = UNetOptions().depth(2).filters(4);
  save_model(dir.file("model"), o, 60, false);
  // No int8.json: one line that says what to run, nothing written.
  auto r = run_unet("export --model-dir " + dir.file("model") + " --format onnx --precision int8");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("run unet quantize --model-dir"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir.file("model/unet_int8.onnx")));
  // A package needs it as well.
  r = run_unet("export --model-dir " + dir.file("model") + " --format bioimageio --precision int8");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("run unet quantize --model-dir"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir.file("model/unet_int8.bioimageio.zip")));
  // int8 in TorchScript: refused as the command line is parsed.
  r = run_unet("export --model-dir " + dir.file("model") + " --format torchscript --precision int8 --output " + dir.file("m"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("--precision int8 is exported as ONNX or a bioimage.io package: add --format onnx or --format bioimageio"),
            std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir.file("m")));
  // The calibration is an input: not written over.
  unet::test::write_file(dir.file("model/int8.json"), "{}");
  r = run_unet("export --model-dir " + dir.file("model") + " --format onnx --precision int8 --output " + dir.file("model/int8.json"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("is an input of this command"), std::string::npos) << r.err;
  EXPECT_EQ(unet::test::read_file(dir.file("model/int8.json")), "{}");
  // Precisions an export does not write.
  r = run_unet("export --model-dir " + dir.file("model") + " --format onnx --precision fp16");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("fp32 or int8"), std::string::npos) << r.err;
  // fp32 stays the default and its name.
  r = run_unet("export --model-dir " + dir.file("model") + " --format onnx");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(std::filesystem::exists(dir.file("model/unet.onnx")));
}

TEST(Int8Onnx, ExportRefusesScalesTheGraphCannotCarry) {
  if (!onnx_export::available()) GTEST_SKIP() << "built without libonnx; skipping";
  TempDir dir;
  const UNetOptions o = UNetOptions().depth(2).filters(4);
  at::manual_seed(2);
  UNet model(o);
  Int8Scales scales;
  scales.input_scale = 1.0f / 127.5f;
  scales.input_zero_point = 128;
  scales.outputs.assign(conv_layers(o).size(), 0.05f);
  EXPECT_NO_THROW(export_onnx(model, 60, dir.file("ok.onnx"), ExportFormat::kOnnx, "{}", {}, &scales));
  // A concatenated pair (up_sample.0 joins down.1.conv2) at two scales: u8 values of two scales
  // cannot share one tensor.
  const auto layers = conv_layers(o);
  Int8Scales split = scales;
  for (size_t k = 0; k < layers.size(); ++k)
    if (layers[k].name == "up_sample.0") split.outputs[k] = 0.07f;
  for (const auto& [bad, text] : std::vector<std::pair<Int8Scales, std::string>>{
           {split, "the int8 scales of up_sample.0 and down.1.conv2 differ: they are concatenated"},
           {Int8Scales{scales.input_scale, 300, scales.outputs}, "zero point in [0, 255]"},
           {Int8Scales{scales.input_scale, 0, {0.05f}}, "this model has " + std::to_string(layers.size())}}) {
    try {
      export_onnx(model, 60, dir.file("bad.onnx"), ExportFormat::kOnnx, "{}", {}, &bad);
      ADD_FAILURE() << "exported: " << text;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(text), std::string::npos) << e.what();
    }
    EXPECT_FALSE(std::filesystem::exists(dir.file("bad.onnx")));
  }
}
