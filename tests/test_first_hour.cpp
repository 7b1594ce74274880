// Issue 26, a newcomer's first hour, through the command line: commands run only on data the user
// named (never the synthetic data as a fallback), and `train --resume` alone continues a run with
// the checkpoint's network, optimisation and data.
#include "test_support.h"

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
  const auto asked = run_unet("evaluate --threads 1 --synthetic --synthetic-size 64 --model-dir " + model);
  EXPECT_EQ(asked.exit_code, 0) << asked.err;
  EXPECT_NE(asked.out.find("synthetic"), std::string::npos) << asked.out;
}

TEST(FirstHour, ResumeAloneContinuesTheCheckpointsNetworkAndData) {
  TempDir dir;
  const std::string data = dir.file("nuclei"), model = dir.file("m");
  ASSERT_EQ(run_unet("demo --max-steps 0 --synthetic-kind nuclei --write-data " + data + kSynthetic).exit_code, 0);
  const auto first = run_unet("train" + kTiny + "--max-steps 2 --mask-encoding instances --classes 3 --data-dir " + data +
                              " --model-dir " + model);
  ASSERT_EQ(first.exit_code, 0) << first.err;
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

TEST(FirstHour, ResumingASyntheticRunAsksForTheSyntheticData) {
  TempDir dir;
  const std::string model = dir.file("m");
  ASSERT_EQ(run_unet("train" + kTiny + kSynthetic + "--max-steps 1 --model-dir " + model).exit_code, 0);
  expect_one_line_error(run_unet("train --threads 1 --resume --max-steps 2 --model-dir " + model),
                        "was trained on the built-in synthetic data; pass --synthetic");
  const auto ok = run_unet("train --threads 1 --resume --max-steps 2 --model-dir " + model + kSynthetic);
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
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
  EXPECT_NE(r.out.find("train on it: unet train --data-dir " + dir.file("d") + " --mask-encoding instances --classes 3"),
            std::string::npos) << r.out;
}

TEST(FirstHour, EvaluationRecordsTheImagesItScored) {
  TempDir dir;
  const std::string data = dir.file("nuclei"), model = dir.file("m");
  ASSERT_EQ(run_unet("demo --max-steps 0 --synthetic-kind nuclei --write-data " + data + kSynthetic).exit_code, 0);
  ASSERT_EQ(run_unet("train" + kTiny + "--max-steps 1 --mask-encoding instances --classes 3 --data-dir " + data + " --model-dir " + model)
                .exit_code,
            0);
  const auto r = run_unet("evaluate --threads 1 --data-dir " + data + " --model-dir " + model);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string json = read_file(model + "/eval_results.json");
  EXPECT_NE(json.find("\"evaluated_images\""), std::string::npos) << json;
  EXPECT_NE(json.find("nuclei-0"), std::string::npos) << json;  // file names of the held-out fold
  EXPECT_NE(json.find("folder layout in " + data), std::string::npos) << json;
}
