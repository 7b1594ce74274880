// Issue 25 through the command line: outputs checked against every input (through symbolic and hard
// links), option values that would swallow the next option, raw library messages, hangs and late
// checks, and what a full disk leaves behind. Each case checks the exit code, the one line, and
// that the files on disk are byte-identical where nothing should change.
#include "test_support.h"

#include "unet/model/checkpoint.h"

#include <nlohmann/json.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

using unet::test::expect_one_line_error;
using unet::test::read_file;
using unet::test::run_unet;
using unet::test::snapshot;
using unet::test::TempDir;
namespace fs = std::filesystem;

namespace {

const std::string kData = " --synthetic-size 64 --synthetic-count 6 --threads 1 ";
const std::string kTiny = " --depth 2 --filters 4 --input-size 60" + kData;

/// The synthetic EM data in the ISBI layout under `dir`.
void write_em(const std::string& dir) {
  const auto r = run_unet("demo --max-steps 0 --write-data " + dir + kData);
  ASSERT_EQ(r.exit_code, 0) << r.err;
}

/// The synthetic nuclei in the folder layout (images/, masks/) under `dir`.
void write_nuclei(const std::string& dir) {
  const auto r = run_unet("demo --max-steps 0 --synthetic-kind nuclei --write-data " + dir + kData);
  ASSERT_EQ(r.exit_code, 0) << r.err;
}

std::string benchmark_loader(const std::string& data) {
  return "benchmark --exec-mode loader --max-steps 1 --warmup-steps 0 --batch-size 1 --data-dir " + data + kTiny;
}

}  // namespace

TEST(HostileIo, BenchmarkOutputsNeverReplaceTheTrainingDataDirectlyOrThroughLinks) {
  TempDir dir;
  const std::string em = dir.file("em");
  write_em(em);
  const auto before = snapshot(em);
  expect_one_line_error(run_unet(benchmark_loader(em) + " --output " + em + "/train-volume.tif"),
                        em + "/train-volume.tif: is an input of this command");
  expect_one_line_error(run_unet(benchmark_loader(em) + " --output " + dir.file("b.json") + " --profile " + em + "/train-labels.tif"),
                        em + "/train-labels.tif: is an input of this command");
  ASSERT_EQ(::link((em + "/train-volume.tif").c_str(), dir.file("hard.json").c_str()), 0);
  ASSERT_EQ(::symlink((em + "/test-volume.tif").c_str(), dir.file("soft.json").c_str()), 0);
  expect_one_line_error(run_unet(benchmark_loader(em) + " --output " + dir.file("hard.json")), "the same file through a link");
  expect_one_line_error(run_unet("benchmark --exec-mode train --max-steps 1 --warmup-steps 0 --batch-size 1 --data-dir " + em + kTiny +
                                 " --output " + dir.file("soft.json")),
                        "the same file through a link");
  EXPECT_EQ(snapshot(em), before);
  // Outputs beside the inputs are fine.
  const auto ok = run_unet(benchmark_loader(em) + " --quiet --output " + em + "/bench.json");
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
}

TEST(HostileIo, TrainingLogsAndPlotsNeverReplaceAnInputImage) {
  TempDir dir;
  const std::string data = dir.file("nuclei");
  write_nuclei(data);
  // An image named like the learning-curve plot, in the folder given as the log directory.
  fs::copy_file(data + "/images/nuclei-000.png", data + "/images/training_curves.png");
  fs::copy_file(data + "/masks/nuclei-000.png", data + "/masks/training_curves.png");
  const auto before = snapshot(data + "/images");
  expect_one_line_error(run_unet("train" + kTiny + "--quiet --max-steps 1 --mask-encoding instances --classes 3 --data-dir " + data +
                                 " --model-dir " + dir.file("m") + " --log-dir " + data + "/images"),
                        "images/training_curves.png: is an input of this command");
  EXPECT_EQ(snapshot(data + "/images"), before);
  EXPECT_FALSE(fs::exists(dir.file("m")));
}

TEST(HostileIo, AFolderWhereTheCheckpointGoesIsRefusedBeforeTraining) {
  TempDir dir;
  fs::create_directories(dir.file("m/checkpoint.pt"));
  expect_one_line_error(run_unet("train" + kTiny + "--quiet --overwrite --max-steps 50 --model-dir " + dir.file("m")),
                        "m/checkpoint.pt: is a folder; cannot write a file there");
  EXPECT_FALSE(fs::exists(dir.file("m/log.jsonl")));  // checked before any log was started
}

TEST(HostileIo, AnOptionValueThatLooksEmptyNeverSwallowsTheNextOption) {
  TempDir dir;
  expect_one_line_error(run_unet("train --class-names , --log-dir " + dir.file("x") + kTiny + "--max-steps 1 --model-dir " + dir.file("m")),
                        "--class-names: an empty item in ','");
  expect_one_line_error(run_unet("train --class-names a,,b" + kTiny + "--max-steps 1 --model-dir " + dir.file("m")),
                        "--class-names: an empty item in 'a,,b'");
  expect_one_line_error(run_unet("train --log-dir ''" + kTiny + "--max-steps 1 --model-dir " + dir.file("m")),
                        "--log-dir: an empty value");
  expect_one_line_error(run_unet("train --model-dir --quiet" + kTiny + "--max-steps 1"),
                        "--model-dir: got '--quiet', an option, as its value");
  expect_one_line_error(run_unet("export --format bioimageio --model-dir " + dir.file("m") + " --class-names , --output " + dir.file("x.zip")),
                        "--class-names");
  expect_one_line_error(run_unet("train --class-names a,a" + kTiny + "--max-steps 1 --model-dir " + dir.file("m")), "given twice");
  expect_one_line_error(run_unet("train --class-names \"$(printf '\\377')\",b" + kTiny + "--max-steps 1 --model-dir " + dir.file("m")),
                        "--class-names: name 1 is not UTF-8 text");
  EXPECT_FALSE(fs::exists(dir.file("m")));
  EXPECT_FALSE(fs::exists(dir.file("x")));
  EXPECT_FALSE(fs::exists(dir.file("x.zip")));
  // Negative numbers are values, not options.
  expect_one_line_error(run_unet("train" + kTiny + "--threads -1"), "--threads must not be negative");
}

TEST(HostileIo, FileNamesThatAreNotUtf8AreWrittenToJsonNotRefused) {
  TempDir dir;
  const std::string em = dir.file("em");
  write_em(em);
  const std::string folder = dir.file("scores");
  fs::create_directories(folder);
  fs::copy_file(em + "/train-labels.tif", folder + "/p\xff.tif");
  const auto r = run_unet("score --prediction " + folder + " --truth " + folder + " --output " + dir.file("s.json"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("not UTF-8 with U+FFFD"), std::string::npos) << r.err;
  const auto j = nlohmann::json::parse(read_file(dir.file("s.json")));
  EXPECT_NE(j["images"][0]["prediction"].get<std::string>().find("p\xEF\xBF\xBD.tif"), std::string::npos);  // U+FFFD
}

TEST(HostileIo, BadBaselinesAreRefusedBeforeTimingWithOneLine) {
  TempDir dir;
  const std::string run = "benchmark --exec-mode predict --synthetic --max-steps 1 --warmup-steps 0 --batch-size 1" + kTiny +
                          "--output " + dir.file("out.json") + " --baseline ";
  ASSERT_EQ(::mkfifo(dir.file("fifo").c_str(), 0600), 0);
  expect_one_line_error(run_unet(run + dir.file("fifo")), "fifo: not a regular file");  // no hang opening it
  fs::create_directories(dir.file("folder"));
  expect_one_line_error(run_unet(run + dir.file("folder")), "folder: not a regular file");
  unet::test::write_file(dir.file("string.json"), R"({"images_per_second": "fast"})");
  expect_one_line_error(run_unet(run + dir.file("string.json")), "string.json: images_per_second is not a number");
  unet::test::write_file(dir.file("negative.json"), R"({"global_images_per_second": -3.5})");
  expect_one_line_error(run_unet(run + dir.file("negative.json")), "negative.json: global_images_per_second must be a positive number");
  unet::test::write_file(dir.file("text.json"), "not json");
  const auto late = run_unet(run + dir.file("text.json"));
  expect_one_line_error(late, "text.json: not a benchmark JSON file");
  EXPECT_EQ(late.out.find("throughput"), std::string::npos) << "the baseline must be read before the timed run";
  EXPECT_FALSE(fs::exists(dir.file("out.json")));
}

TEST(HostileIo, ASymbolicLinkLoopAmongTheImagesIsNamed) {
  TempDir dir;
  const std::string data = dir.file("nuclei");
  write_nuclei(data);
  ASSERT_EQ(::symlink("loop.png", (data + "/images/loop.png").c_str()), 0);
  expect_one_line_error(run_unet("train" + kTiny + "--quiet --max-steps 1 --mask-encoding instances --classes 3 --data-dir " + data +
                                 " --model-dir " + dir.file("m")),
                        "images/loop.png: cannot read (Too many levels of symbolic links)");
  expect_one_line_error(run_unet("score --prediction " + data + "/images --truth " + data + "/masks"),
                        "images/loop.png: cannot read (Too many levels of symbolic links)");
}

TEST(HostileIo, ThreadAndProcessCountsAreBounded) {
  TempDir dir;
  const std::string model = " --max-steps 1 --model-dir " + dir.file("m");
  expect_one_line_error(run_unet("train" + kTiny + model + " --threads 100000"), "--threads must be at most");
  expect_one_line_error(run_unet("train" + kTiny + model + " --loader-threads 100000"), "--loader-threads must be at most");
  expect_one_line_error(run_unet("launch --nproc-per-node 100000 -- train" + kTiny + model), "--nproc-per-node must be at most");
  EXPECT_FALSE(fs::exists(dir.file("m")));
}

TEST(HostileIo, AFullDiskLeavesNoEmptyEventFileOrPredictionFolder) {
  TempDir dir;
  unet::test::SmallDisk disk(0);
  const auto r = run_unet("train" + kTiny + "--batch-size 2 --quiet --max-steps 2 --model-dir " + dir.file("model") + " --log-dir " +
                              disk.path(),
                          disk.prefix());
  EXPECT_NE(r.exit_code, 0);
  for (const auto& e : fs::directory_iterator(disk.path()))
    EXPECT_GT(fs::file_size(e.path()), 0u) << e.path() << " left empty (tmpfs: " << disk.tmpfs() << ")";
  // A prediction folder that this run created is not left behind empty.
  write_em(dir.file("em"));
  ASSERT_EQ(run_unet("train" + kTiny + "--batch-size 2 --quiet --max-steps 1 --model-dir " + dir.file("m")).exit_code, 0);
  unet::test::SmallDisk small(0);
  const auto p = run_unet("predict --no-overlays --threads 1 --model-dir " + dir.file("m") + " --data-dir " + dir.file("em") +
                              " --output-dir " + small.file("out"),
                          small.prefix());
  expect_one_line_error(p, small.file("out") + "/test-");
  EXPECT_EQ(p.err.find("damaged or truncated"), std::string::npos) << "a full disk is not damaged data: " << p.err;
  EXPECT_TRUE(!fs::exists(small.file("out")) || !fs::is_empty(small.file("out")));
}

TEST(HostileIo, PredictionsAndOverlaysNeverReplaceTheImagesTheyAreMadeFrom) {
  TempDir dir;
  const std::string data = dir.file("nuclei");
  write_nuclei(data);
  ASSERT_EQ(run_unet("train" + kTiny + "--batch-size 2 --quiet --max-steps 1 --model-dir " + dir.file("m")).exit_code, 0);
  // The images to predict sit in X/overlays; predictions into X with overlays would write X/overlays/<stem>.png.
  fs::create_directories(dir.file("x"));
  fs::rename(data + "/test", dir.file("x/overlays"));
  const auto before = snapshot(dir.file("x/overlays"));
  expect_one_line_error(run_unet("predict --overlays --threads 1 --model-dir " + dir.file("m") + " --input " + dir.file("x/overlays") +
                                 " --output-dir " + dir.file("x")),
                        "is an input of this command");
  EXPECT_EQ(snapshot(dir.file("x/overlays")), before);
  // A folder of images predicted into itself: <stem>.png is the input.
  expect_one_line_error(run_unet("predict --no-overlays --threads 1 --model-dir " + dir.file("m") + " --input " + dir.file("x/overlays") +
                                 " --output-dir " + dir.file("x/overlays")),
                        "is an input of this command");
  EXPECT_EQ(snapshot(dir.file("x/overlays")), before);
}

TEST(HostileIo, ExportScoreDemoAndBenchmarkOutputsOntoInputsFifosAndEachOther) {
  TempDir dir;
  const std::string em = dir.file("em");
  write_em(em);
  ASSERT_EQ(run_unet("train" + kTiny + "--batch-size 2 --quiet --max-steps 1 --model-dir " + dir.file("m")).exit_code, 0);
  const auto before = snapshot(em);
  expect_one_line_error(run_unet("export --format bioimageio --model-dir " + dir.file("m") + " --sample " + em +
                                 "/test-volume.tif --output " + em + "/test-volume.tif"),
                        "test-volume.tif: is an input of this command");
  expect_one_line_error(run_unet("score --prediction " + em + "/train-labels.tif --truth " + em + "/train-labels.tif -o " + em +
                                 "/train-labels.tif"),
                        "train-labels.tif: is an input of this command");
  expect_one_line_error(run_unet("demo --max-steps 0 --write-data " + em + kData), "is not empty");
  EXPECT_EQ(snapshot(em), before);
  ASSERT_EQ(::mkfifo(dir.file("fifo").c_str(), 0600), 0);
  const std::string bench = "benchmark --exec-mode predict --synthetic --max-steps 1 --warmup-steps 0 --batch-size 1" + kTiny;
  expect_one_line_error(run_unet(bench + "--output " + dir.file("fifo")), "fifo: is not a regular file");
  expect_one_line_error(run_unet(bench + "--output " + dir.file("b.json") + " --profile " + dir.file("b.json")),
                        "b.json: would be written twice by this command");
  EXPECT_FALSE(fs::exists(dir.file("b.json")));
}
