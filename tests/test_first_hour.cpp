// Issue 26, a newcomer's first hour, through the command line: commands run only on data the user
// named (never the synthetic data as a fallback), and `train --resume` alone continues a run with
// the checkpoint's network, optimisation and data.
#include "test_support.h"

#include "unet/model/checkpoint.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdlib>
#include <filesystem>

using unet::test::expect_one_line_error;
using unet::test::read_file;
using unet::test::run_unet;
using unet::test::snapshot;
using unet::test::TempDir;
namespace fs = std::filesystem;

namespace {

const std::string kTiny = " --depth 2 --filters 4 --input-size 60 --threads 1 --batch-size 2 --quiet ";
const std::string kSynthetic = " --synthetic-size 64 --synthetic-count 6 ";

/// Writes the synthetic nuclei folder (images/, masks/, test/) into `data` and trains the tiny
/// interior/boundary network on it for `steps` steps into `model`.
void train_on_nuclei(const std::string& data, const std::string& model, int steps = 1) {
  ASSERT_EQ(run_unet("demo --max-steps 0 --synthetic-kind nuclei --write-data " + data + kSynthetic).exit_code, 0);
  const auto r = run_unet("train" + kTiny + "--max-steps " + std::to_string(steps) +
                          " --mask-encoding instances --classes 3 --data-dir " + data + " --model-dir " + model);
  ASSERT_EQ(r.exit_code, 0) << r.err;
}

}  // namespace

TEST(FirstHour, NoCommandFallsBackToTheSyntheticDataWhenNoDataIsNamed) {
  TempDir dir;
  const std::string model = dir.file("m");
  ASSERT_EQ(run_unet("train" + kTiny + kSynthetic + "--max-steps 1 --model-dir " + model).exit_code, 0);
  unet::test::write_file(model + "/eval_results.json", "{\"mine\": true}\n");
  const auto before = snapshot(model);
  const std::string expected = "no data named; give --data-dir DIR (the ISBI layout or images/ + masks/), or --synthetic";
  expect_one_line_error(run_unet("evaluate --threads 1 --model-dir " + model), expected);
  expect_one_line_error(run_unet("train" + kTiny + "--max-steps 1 --model-dir " + dir.file("fresh")), expected);
  expect_one_line_error(run_unet("cross-validate" + kTiny + "--max-steps 1 --folds 0 --model-dir " + dir.file("cv")), expected);
  EXPECT_EQ(snapshot(model), before);  // eval_results.json is still the user's
  EXPECT_FALSE(fs::exists(dir.file("fresh/checkpoint.pt")));
  // Asked for, the synthetic data is there: --synthetic alone, or a --synthetic-* option.
  const auto asked = run_unet("evaluate --threads 1 --synthetic --model-dir " + model);
  EXPECT_EQ(asked.exit_code, 0) << asked.err;
  EXPECT_NE(asked.out.find("synthetic"), std::string::npos) << asked.out;
}

TEST(FirstHour, ResumeAloneContinuesTheCheckpointsNetworkAndData) {
  TempDir dir;
  const std::string data = dir.file("nuclei"), model = dir.file("m");
  train_on_nuclei(data, model, /*steps=*/2);
  // No network, input, encoding or data flags: all come from the checkpoint.
  const auto resumed = run_unet("train --threads 1 --resume --max-steps 3 --model-dir " + model);
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_NE(resumed.err.find("resuming on the data the checkpoint was trained on, " + fs::absolute(data).string()), std::string::npos)
      << resumed.err;
  EXPECT_NE(resumed.out.find("(to step 3)"), std::string::npos) << resumed.out;
  // A network flag that contradicts the checkpoint is one line naming both values; nothing changes.
  const auto before = snapshot(model);
  expect_one_line_error(run_unet("train --threads 1 --resume --max-steps 4 --depth 3 --model-dir " + model),
                        "--depth 3 contradicts the checkpoint " + model + "/checkpoint.pt, trained with depth 2");
  EXPECT_EQ(snapshot(model), before);
}

TEST(FirstHour, ResumingASyntheticRunGoesOnWithTheSameSyntheticDataFoldAndSeed) {
  TempDir dir;
  const std::string model = dir.file("m");
  ASSERT_EQ(run_unet("train" + kTiny + kSynthetic + "--seed 7 --fold 3 --max-steps 1 --model-dir " + model).exit_code, 0);
  const auto r = run_unet("train --threads 1 --resume --no-augment --max-steps 2 --model-dir " + model);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("resuming on the synthetic data the checkpoint was trained on"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("6 labelled 64x64 slices, seed 7); fold 3"), std::string::npos) << r.err;
  // The resumed run's configuration record: the first run's optimisation, --no-augment as given.
  const std::string log = read_file(model + "/log.jsonl");
  const size_t resumed = log.rfind("\"type\":\"config\"");
  ASSERT_NE(resumed, std::string::npos);
  const size_t line = log.rfind('\n', resumed) + 1;  // npos + 1 == 0: the first line
  const std::string config = log.substr(line, log.find('\n', resumed) - line);
  EXPECT_NE(config.find("\"batch_size\":2"), std::string::npos) << config;
  EXPECT_NE(config.find("\"seed\":7"), std::string::npos) << config;
  EXPECT_NE(config.find("\"augment\":false"), std::string::npos) << config;
}

TEST(FirstHour, ResumeOnAMovedDataDirectoryOrTwoDataSourcesIsOneLine) {
  TempDir dir;
  const std::string data = dir.file("nuclei"), model = dir.file("m");
  train_on_nuclei(data, model);
  fs::rename(data, dir.file("moved"));
  expect_one_line_error(run_unet("train --threads 1 --resume --max-steps 2 --model-dir " + model),
                        model + "/checkpoint.pt was trained on " + fs::absolute(data).string() +
                            ", which is no longer there; name the data with --data-dir DIR");
  const auto moved = run_unet("train --threads 1 --resume --max-steps 2 --model-dir " + model + " --data-dir " + dir.file("moved"));
  EXPECT_EQ(moved.exit_code, 0) << moved.err;
  EXPECT_NE(moved.err.find("note: resuming on " + dir.file("moved") + ", not on the data"), std::string::npos) << moved.err;
  expect_one_line_error(run_unet("evaluate --threads 1 --synthetic --data-dir " + dir.file("moved") + " --model-dir " + model),
                        "--data-dir and --synthetic name two data sets; give one");
}

TEST(FirstHour, HelpSaysWhatEachCommandTakes) {
  const auto predict = run_unet("predict --help");
  EXPECT_EQ(predict.exit_code, 0);
  EXPECT_EQ(predict.out.find("BOOLEAN"), std::string::npos) << predict.out;
  EXPECT_EQ(predict.out.find("ENUM:"), std::string::npos) << predict.out;
  EXPECT_NE(predict.out.find("--mask-encoding,--mask_encoding binary|index=binary"), std::string::npos) << predict.out;
  EXPECT_NE(predict.out.find("off unless given"), std::string::npos) << predict.out;
  for (const char* training_only : {"--loader-threads", "--dist-timeout", "--seed"})
    EXPECT_EQ(predict.out.find(training_only), std::string::npos) << training_only;
  const auto evaluate = run_unet("evaluate --help");
  EXPECT_EQ(evaluate.out.find("to train on all"), std::string::npos) << evaluate.out;
  EXPECT_EQ(evaluate.out.find("--loader-threads"), std::string::npos);
  EXPECT_NE(evaluate.out.find("Seed of the fold split"), std::string::npos);
  const auto exported = run_unet("export --help");
  EXPECT_NE(exported.out.find("onnx (ONNX Runtime, OpenVINO)"), std::string::npos) << exported.out;
}

TEST(FirstHour, WrittenDataSaysHowToTrainOnIt) {
  TempDir dir;
  const auto r = run_unet("demo --max-steps 0 --synthetic-kind nuclei --write-data " + dir.file("d") + kSynthetic);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("train on it: unet train --data-dir " + dir.file("d") + " --model-dir runs/mine\n"), std::string::npos)
      << r.out;
}

TEST(FirstHour, EvaluationRecordsTheImagesItScored) {
  TempDir dir;
  const std::string data = dir.file("nuclei"), model = dir.file("m");
  train_on_nuclei(data, model);
  const auto r = run_unet("evaluate --threads 1 --data-dir " + data + " --model-dir " + model);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string json = read_file(model + "/eval_results.json");
  EXPECT_NE(json.find("\"evaluated_images\""), std::string::npos) << json;
  // The held-out fold of 6 images, by file name: one, not the five trained on.
  const size_t list = json.find("\"evaluated_images\"");
  const std::string names = json.substr(list, json.find(']', list) - list);
  EXPECT_EQ(std::count(names.begin(), names.end(), ','), 0) << names;
  EXPECT_NE(names.find("nuclei-0"), std::string::npos) << names;
  EXPECT_NE(json.find("folder layout in " + data), std::string::npos) << json;
}

TEST(FirstHour, TrainingEvaluatesAsItGoesAndKeepsTheBestCheckpointBesideTheLast) {
  TempDir dir;
  const std::string data = dir.file("nuclei"), model = dir.file("m");
  ASSERT_EQ(run_unet("demo --max-steps 0 --synthetic-kind nuclei --write-data " + data + kSynthetic).exit_code, 0);
  const std::string train = "train" + kTiny + "--mask-encoding instances --classes 3 --data-dir " + data + " --model-dir " + model;
  const auto r = run_unet(train + " --max-steps 8 --evaluate-every 2 --learning-rate 0.01");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // Evaluations at steps 2, 4, 6 and the end; the best one's objects F1 is the largest of them.
  const std::string log = read_file(model + "/log.jsonl");
  std::vector<double> f1;
  for (size_t at = log.find("\"type\":\"eval\""); at != std::string::npos; at = log.find("\"type\":\"eval\"", at + 1)) {
    const size_t line = log.rfind('\n', at) + 1;
    const auto j = nlohmann::json::parse(log.substr(line, log.find('\n', at) - line));
    f1.push_back(j["objects"]["f1_50"].get<double>());
  }
  ASSERT_EQ(f1.size(), 4u) << log;
  const auto best = nlohmann::json::parse(read_file(model + "/best/selection.json"));
  EXPECT_EQ(best["criterion"], "objects F1 at IoU 0.5");
  EXPECT_DOUBLE_EQ(best["value"].get<double>(), *std::max_element(f1.begin(), f1.end()));
  const int64_t step = best["step"].get<int64_t>();
  EXPECT_EQ(unet::read_checkpoint_info(model + "/best/checkpoint.pt").step, step);
  EXPECT_EQ(f1[static_cast<size_t>(step / 2 - 1)], best["value"].get<double>());
  // The best model is a model directory of its own.
  const auto predicted = run_unet("predict --threads 1 --quiet --model-dir " + model + "/best --data-dir " + data +
                                  " --output-dir " + dir.file("out"));
  EXPECT_EQ(predicted.exit_code, 0) << predicted.err;
  // A fresh run there would replace it: refused without --overwrite, and --overwrite starts the ranking afresh.
  fs::remove(model + "/checkpoint.pt");
  expect_one_line_error(run_unet(train + " --max-steps 1"), model + "/best/checkpoint.pt: an earlier run's best checkpoint is there; pass --overwrite");
  ASSERT_EQ(run_unet(train + " --max-steps 1 --overwrite").exit_code, 0);
  EXPECT_EQ(nlohmann::json::parse(read_file(model + "/best/selection.json"))["step"], 1);
  // --resume without a checkpoint to resume is a fresh run: an earlier best is not taken for its own.
  const auto before = snapshot(model + "/best");
  fs::remove(model + "/checkpoint.pt");
  expect_one_line_error(run_unet(train + " --max-steps 1 --resume"), model + "/best/checkpoint.pt: an earlier run's best checkpoint is there");
  EXPECT_EQ(snapshot(model + "/best"), before);
  ASSERT_EQ(run_unet(train + " --max-steps 1 --overwrite").exit_code, 0);
  // Only the final evaluation: the best is the last checkpoint itself (a link, no second copy).
  EXPECT_EQ(fs::hard_link_count(model + "/checkpoint.pt"), 2u);
}

TEST(FirstHour, TheExportHintPrintsWhatItComputesAndSaysHowAResizeModelWantsItsInput) {
  TempDir dir;
  const std::string model = dir.file("m");
  ASSERT_EQ(run_unet("train" + kTiny + kSynthetic + "--input-mode resize --max-steps 1 --model-dir " + model).exit_code, 0);
  const auto r = run_unet("export --format onnx --model-dir " + model + " --output " + dir.file("m.onnx"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // Depth 2, input 60, valid padding: a 20x20 output, 20 pixels of context per side.
  EXPECT_NE(r.out.find("print(p.shape)\"   # (1, 2, 20, 20)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("trained in resize mode, this model expects the whole image scaled to 20x20 and padded to 60x60"),
            std::string::npos) << r.out;
  EXPECT_NE(r.out.find("each side 40 pixels shorter than the input's"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"preprocessing\": \"resize (as trained): scale the whole image to 20x20"), std::string::npos) << r.out;
  // The hint runs as printed where a Python with ONNX Runtime is at hand, and prints the shape it promises.
  const std::string python = UNET_TEST_PYTHON;
  if (python.empty() || std::system((python + " -c 'import onnxruntime' 2>/dev/null").c_str()) != 0)
    GTEST_SKIP() << "no UNET_TEST_PYTHON with onnxruntime; the hint was not run";
  const size_t start = r.out.find("python3 -c \""), end = r.out.find("\"   #", start);
  ASSERT_NE(start, std::string::npos);
  const std::string command = python + r.out.substr(start + 7, end + 1 - start - 7) + " > " + dir.file("shape.txt");
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
  EXPECT_EQ(read_file(dir.file("shape.txt")), "(1, 2, 20, 20)\n");
}

TEST(FirstHour, EvaluatingOnOtherDataLeavesTheModelsOwnResultsAlone) {
  TempDir dir;
  const std::string data = dir.file("nuclei"), model = dir.file("m");
  train_on_nuclei(data, model);
  ASSERT_EQ(run_unet("evaluate --threads 1 --quiet --data-dir " + data + " --model-dir " + model).exit_code, 0);
  const std::string own = read_file(model + "/eval_results.json");
  EXPECT_NE(own.find("\"seed\": 0"), std::string::npos) << own;
  fs::copy(data, dir.file("other data"), fs::copy_options::recursive);
  const auto r = run_unet("evaluate --threads 1 --data-dir '" + dir.file("other data") + "' --model-dir " + model);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("note: " + model + "/checkpoint.pt was trained on " + fs::absolute(data).string() + ", not on " +
                       dir.file("other data") + ": the results go to " + model + "/eval_results_other_data.json"),
            std::string::npos) << r.err;
  EXPECT_EQ(read_file(model + "/eval_results.json"), own);
  EXPECT_NE(read_file(model + "/eval_results_other_data.json").find("folder layout in " + dir.file("other data")),
            std::string::npos);
}

TEST(FirstHour, APackagesDefaultSampleIsAnImageOfTheModelsOwnData) {
  TempDir dir;
  const std::string data = dir.file("nuclei"), model = dir.file("m");
  train_on_nuclei(data, model);
  const auto r = run_unet("export --format bioimageio --model-dir " + model + " --output " + dir.file("p.zip"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("input from " + fs::absolute(data).string() + "/test/nuclei-"), std::string::npos) << r.out;
}

TEST(FirstHour, ResumedCrossValidationKeepsItsFoldsNetworkAndOptimisation) {
  TempDir dir;
  const std::string cv = dir.file("cv");
  const std::string args = " --threads 1 --quiet --synthetic-size 64 --synthetic-count 6 --folds 0 --model-dir " + cv;
  ASSERT_EQ(run_unet("cross-validate" + kTiny + kSynthetic + "--input-mode resize --learning-rate 0.0002 --max-steps 1" + args)
                .exit_code, 0);
  // Resumed with nothing but --resume: the CPU's small preset must not replace the first run's choices.
  const auto r = run_unet("cross-validate --resume --max-steps 2" + args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string log = read_file(cv + "/fold-0/log.jsonl");
  const size_t second = log.rfind("\"type\":\"config\"");
  ASSERT_NE(second, std::string::npos);
  const size_t line = log.rfind('\n', second) + 1;
  const std::string config = log.substr(line, log.find('\n', second) - line);
  EXPECT_NE(config.find("\"input_mode\":\"resize\""), std::string::npos) << config;
  EXPECT_NE(config.find("\"learning_rate\":0.0002"), std::string::npos) << config;
  EXPECT_NE(config.find("\"filters\":4"), std::string::npos) << config;
}
