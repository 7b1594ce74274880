// Issue 26, items 5, 6, 7 and 10's cover, through the command line: class names come from the
// data and travel with the model (records, score, exports say background/foreground or
// interior/boundary, and membrane only for ISBI-style data), overlays tint the objects, masks and
// instance labels can be looked at, and score warns about or refuses truths it would misread.
#include "test_support.h"

#include "unet/data/dataset.h"
#include "unet/data/image_io.h"
#include "unet/infer/bioimageio.h"
#include "unet/model/checkpoint.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

using unet::test::expect_one_line_error;
using unet::test::read_file;
using unet::test::run_unet;
using unet::test::TempDir;
namespace fs = std::filesystem;

namespace {

const std::string kTiny = " --depth 2 --filters 4 --input-size 60 --threads 1 --batch-size 2 --quiet ";
const std::string kSynthetic = " --synthetic-size 64 --synthetic-count 6 ";

/// The synthetic nuclei folder (images/, masks/ of 16-bit instance labels, test/) in `data`.
void write_nuclei(const std::string& data) {
  ASSERT_EQ(run_unet("demo --max-steps 0 --synthetic-kind nuclei --write-data " + data + kSynthetic).exit_code, 0);
}

/// `data`'s images with binary masks (0/255: objects 255) in `binary`.
void write_binary_copy(const std::string& data, const std::string& binary) {
  fs::create_directories(binary + "/masks");
  fs::copy(data + "/images", binary + "/images");
  fs::copy(data + "/test", binary + "/test");
  for (const auto& e : fs::directory_iterator(data + "/masks")) {
    const at::Tensor labels = unet::read_png(e.path().string()).pixels[0];
    unet::write_png(binary + "/masks/" + e.path().filename().string(), (labels > 0).to(at::kByte).mul(255));
  }
}

void train(const std::string& args) {
  const auto r = run_unet("train" + kTiny + args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
}

/// The last "eval" record of `model`/log.jsonl.
nlohmann::json last_eval(const std::string& model) {
  std::istringstream lines(read_file(model + "/log.jsonl"));
  nlohmann::json found;
  for (std::string line; std::getline(lines, line);) {
    const auto j = nlohmann::json::parse(line);
    if (j.value("type", "") == "eval") found = j;
  }
  return found;
}

/// A tiny checkpoint (two classes unless `options` say otherwise) in `model` whose every pixel is class `favoured` (the head's weights
/// zero, its bias 50 for that class), with `naming` recorded.
void save_constant_model(const std::string& model, int favoured, const unet::ClassNaming& naming,
                         unet::UNetOptions options = unet::UNetOptions().depth(2).filters(4)) {
  unet::UNet net(options);
  for (const auto& p : net->named_parameters()) {
    if (p.key() == "head.weight") p.value().detach().zero_();
    if (p.key() == "head.bias") p.value().detach().zero_()[favoured].fill_(50.0);
  }
  fs::create_directories(model);
  unet::CheckpointInfo info{options, 60, 1};
  info.class_naming = naming;
  unet::save_checkpoint(unet::checkpoint_path(model), net, nullptr, info);
}

/// Extracts `name` from the zip `zip` into `out` (the system's Python reads the zip).
bool unzip(const std::string& zip, const std::string& name, const std::string& out) {
  const std::string command = "python3 -c \"import zipfile; open('" + out + "', 'wb').write(zipfile.ZipFile('" + zip +
                              "').read('" + name + "'))\"";
  return std::system(command.c_str()) == 0;
}

}  // namespace

TEST(FirstHourOutputs, FolderDataNamesItsClassesInRecords) {
  TempDir dir;
  const std::string data = dir.file("nuclei"), binary = dir.file("binary"), model = dir.file("m");
  write_nuclei(data);
  write_binary_copy(data, binary);
  train("--max-steps 1 --data-dir " + binary + " --model-dir " + model);
  // log.jsonl: the headline (the foreground) by name, class Dice always; no membrane anywhere.
  const auto eval = last_eval(model);
  ASSERT_FALSE(eval.is_null());
  EXPECT_EQ(eval["headline_class"], "foreground");
  EXPECT_EQ(eval["headline_dice"], eval["class_dice"][1]);
  EXPECT_TRUE(eval.contains("headline_iou"));
  EXPECT_EQ(read_file(model + "/log.jsonl").find("membrane"), std::string::npos);
  EXPECT_EQ(unet::read_checkpoint_info(unet::checkpoint_path(model)).class_naming.headline, 1);
  const auto r = run_unet("evaluate --threads 1 --data-dir " + binary + " --model-dir " + model);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("foreground Dice (hard, original size)"), std::string::npos) << r.out;
  const std::string results = read_file(model + "/eval_results.json");
  EXPECT_EQ(results.find("membrane"), std::string::npos) << results;
  const auto j = nlohmann::json::parse(results);
  EXPECT_EQ(j["class_names"], nlohmann::json({"background", "foreground"}));
  EXPECT_EQ(j["headline"]["class"], "foreground");
}

TEST(FirstHourOutputs, OverlaysTintTheHeadlineClassAndLeaveTheRestGray) {
  TempDir dir;
  const std::string data = dir.file("nuclei");
  write_nuclei(data);
  // Overlays of a model that predicts `favoured` everywhere: all tinted red, or all gray.
  const auto overlay = [&](int favoured, bool membranes, int classes = 2) {
    std::ostringstream name;  // m1-folder-2: favoured class, layout, classes
    name << "m" << favoured << (membranes ? "-isbi-" : "-folder-") << classes;
    const std::string model = dir.file(name.str());
    const auto scheme = classes == 3 ? unet::ClassScheme::kInteriorBoundary : unet::ClassScheme::kPlain;
    save_constant_model(model, favoured, unet::default_class_naming(classes, scheme, membranes),
                        unet::UNetOptions().depth(2).filters(4).classes(classes).scheme(scheme));
    const auto r = run_unet("predict --threads 1 --input " + unet::image_files(data + "/test").front() + " --model-dir " + model +
                            " --output-dir " + model + "/out");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    const std::string stem = fs::path(unet::image_files(data + "/test").front()).stem().string();
    return unet::read_png(model + "/out/overlays/" + stem + ".png").pixels.to(at::kInt);
  };
  const auto all_gray = [](const at::Tensor& rgb) { return (rgb[0].eq(rgb[1]) & rgb[1].eq(rgb[2])).all().item<bool>(); };
  const auto all_red = [](const at::Tensor& rgb) { return (rgb[0].gt(rgb[1] + 100) & rgb[0].gt(rgb[2] + 50)).all().item<bool>(); };
  // Folder data: the foreground (class 1) is tinted, the background stays gray.
  EXPECT_TRUE(all_red(overlay(1, false)));
  EXPECT_TRUE(all_gray(overlay(0, false)));
  // ISBI-style data: the membranes (class 0) are tinted, the cells stay gray.
  EXPECT_TRUE(all_red(overlay(0, true)));
  EXPECT_TRUE(all_gray(overlay(1, true)));
  // Interior/boundary models: the interior red, the boundary green, the background gray.
  EXPECT_TRUE(all_red(overlay(1, false, 3)));
  const at::Tensor boundary = overlay(2, false, 3);
  EXPECT_TRUE((boundary[1].gt(boundary[0] + 50) & boundary[1].gt(boundary[2] + 50)).all().item<bool>());
  EXPECT_TRUE(all_gray(overlay(0, false, 3)));
}

TEST(FirstHourOutputs, InteriorBoundaryModelsWritePaletteMasksAndColouredInstancePreviews) {
  TempDir dir;
  const std::string data = dir.file("nuclei"), model = dir.file("m");
  write_nuclei(data);
  train("--max-steps 20 --learning-rate 1e-2 --mask-encoding instances --classes 3 --data-dir " + data + " --model-dir " + model);
  const auto eval = last_eval(model);
  ASSERT_FALSE(eval.is_null());
  EXPECT_FALSE(eval.contains("headline_dice"));  // three classes: no headline
  EXPECT_EQ(eval["class_dice"].size(), 3u);
  auto r = run_unet("evaluate --threads 1 --data-dir " + data + " --model-dir " + model);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string results = read_file(model + "/eval_results.json");
  EXPECT_EQ(results.find("membrane"), std::string::npos) << results;
  EXPECT_EQ(nlohmann::json::parse(results)["class_names"], nlohmann::json({"background", "interior", "boundary"}));
  r = run_unet("predict --threads 1 --instances --input " + data + "/images --model-dir " + model + " --output-dir " + dir.file("out"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string stem = fs::path(unet::image_files(data + "/images").front()).stem().string();
  // The 3-class mask: a palette PNG whose values are the class indices.
  const unet::RawImage mask = unet::read_png(dir.file("out/" + stem + ".png"));
  ASSERT_TRUE(mask.palette.defined());
  EXPECT_EQ(mask.pixels.size(0), 1);
  EXPECT_LE(mask.pixels.max().item<int64_t>(), 2);
  EXPECT_GE(mask.palette.size(0), 3);
  EXPECT_FALSE(at::equal(mask.palette[1], mask.palette[2]));  // interior and boundary differ
  // The labels stay 16-bit for programs; beside them an RGB preview in several colours.
  EXPECT_EQ(unet::read_tiff(dir.file("out/" + stem + "_instances.tif")).front().format, unet::SampleFormat::kUInt16);
  const unet::RawImage preview = unet::read_png(dir.file("out/instances/" + stem + ".png"));
  ASSERT_EQ(preview.pixels.size(0), 3);
  const at::Tensor colours = std::get<0>(at::_unique(
      (preview.pixels[0].to(at::kLong) * 65536 + preview.pixels[1].to(at::kLong) * 256 + preview.pixels[2].to(at::kLong)).flatten()));
  EXPECT_GT(colours.numel(), 3);
  const at::Tensor labels = unet::read_tiff(dir.file("out/" + stem + "_instances.tif")).front().pixels[0];
  const at::Tensor coloured = preview.pixels[0].ne(preview.pixels[1]) | preview.pixels[1].ne(preview.pixels[2]);
  EXPECT_TRUE(at::equal(coloured.logical_and(labels == 0), at::zeros_like(coloured)));  // background not coloured
  // The previews do not disturb score's matching by stem: the labels score against the truth.
  r = run_unet("score --instances --prediction " + dir.file("out") + " --truth " + data + "/masks");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  // The palette mask scores as a mask (its non-zero classes the objects).
  r = run_unet("score --prediction " + dir.file("out/" + stem + ".png") + " --truth " + data + "/masks/" + stem + ".png");
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

TEST(FirstHourOutputs, ScoreWarnsAboutInstanceTruthAndRefusesARawImage) {
  TempDir dir;
  const std::string data = dir.file("nuclei");
  write_nuclei(data);
  const std::string truth = unet::image_files(data + "/masks").front();
  const at::Tensor labels = unet::read_png(truth).pixels[0];
  unet::write_png(dir.file("binary.png"), (labels > 0).to(at::kByte).mul(255));
  unet::write_tiff(dir.file("labels.tif"), {labels.to(at::kInt)});
  // Without --instances: scored, with one warning line; the classes are background/foreground.
  auto r = run_unet("score --prediction " + dir.file("binary.png") + " --truth " + truth + " -o " + dir.file("s.json"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("looks like instance labels"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.out.find("foreground Dice"), std::string::npos) << r.out;
  const std::string plain = read_file(dir.file("s.json"));
  EXPECT_EQ(plain.find("membrane"), std::string::npos);
  EXPECT_EQ(nlohmann::json::parse(plain)["overall"]["headline"]["class"], "foreground");
  // A label image as the prediction without --instances is refused (read as probabilities it would be ~0).
  expect_one_line_error(run_unet("score --prediction " + dir.file("labels.tif") + " --truth " + truth),
                        "holds 16-bit instance labels");
  // With --instances: the ISBI scores (1.0 for any instance labels) are left out of table and JSON.
  r = run_unet("score --instances --prediction " + dir.file("labels.tif") + " --truth " + truth + " -o " + dir.file("i.json"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(r.err.empty()) << r.err;
  EXPECT_EQ(r.out.find("V_Rand (ISBI"), std::string::npos) << r.out;
  const auto inst = nlohmann::json::parse(read_file(dir.file("i.json")));
  EXPECT_FALSE(inst["overall"].contains("v_rand_thinned"));
  EXPECT_FALSE(inst["images"][0].contains("v_rand"));
  EXPECT_EQ(inst["overall"]["objects"]["f1_50"], 1.0);
  // A raw image (many values, neighbours differing) as the truth: one line naming it.
  const std::string image = unet::image_files(data + "/images").front();
  expect_one_line_error(run_unet("score --prediction " + dir.file("binary.png") + " --truth " + image),
                        image + ": does not look like a mask");
}

TEST(FirstHourOutputs, ExportsCarryTheModelsClassNamesAndAReadableCover) {
  TempDir dir;
  const std::string data = dir.file("nuclei"), model = dir.file("m");
  write_nuclei(data);
  train("--max-steps 1 --mask-encoding instances --classes 3 --data-dir " + data + " --model-dir " + model);
  auto r = run_unet("export --model-dir " + model + " --output " + dir.file("m.pt"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("\"background\",\n"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("membrane"), std::string::npos) << r.out;
  if (!unet::bioimageio_available()) GTEST_SKIP() << "built without libzip or libonnx; no bioimage.io package";
  r = run_unet("export --format bioimageio --sample " + unet::image_files(data + "/test").front() + " --model-dir " + model +
               " --output " + dir.file("p.zip"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_TRUE(unzip(dir.file("p.zip"), "rdf.yaml", dir.file("rdf.json")));
  const auto rdf = nlohmann::json::parse(read_file(dir.file("rdf.json")));
  EXPECT_EQ(rdf["outputs"][0]["axes"][1]["channel_names"], nlohmann::json({"background", "interior", "boundary"}));
  EXPECT_EQ(rdf.dump().find("membrane"), std::string::npos);
  ASSERT_TRUE(unzip(dir.file("p.zip"), "cover.png", dir.file("cover.png")));
  const unet::RawImage cover = unet::read_png(dir.file("cover.png"));
  EXPECT_EQ(cover.pixels.size(0), 3);
  EXPECT_GE(cover.height(), 256);
  EXPECT_EQ(cover.width(), 2 * cover.height());
}

TEST(FirstHourOutputs, IsbiStyleModelsStillSayMembrane) {
  TempDir dir;
  const std::string model = dir.file("m");
  train("--max-steps 1" + kSynthetic + "--model-dir " + model);
  EXPECT_EQ(last_eval(model)["headline_class"], "membrane");
  auto r = run_unet("evaluate --threads 1 --synthetic" + kSynthetic + "--model-dir " + model);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("membrane Dice (hard, original size)"), std::string::npos) << r.out;
  const auto j = nlohmann::json::parse(read_file(model + "/eval_results.json"));
  EXPECT_EQ(j["class_names"], nlohmann::json({"membrane", "cell"}));
  EXPECT_EQ(j["headline"]["index"], 0);
  r = run_unet("export --model-dir " + model + " --output " + dir.file("m.pt"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("\"headline_class\": \"membrane\""), std::string::npos) << r.out;
}
