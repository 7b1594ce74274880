// Tests of data-parallel training on Gloo over loopback: launcher environments, equivalence with
// one process, resume across world sizes, and failure of a rank.
#include "test_support.h"

#include "unet/dist/dist.h"
#include "unet/model/checkpoint.h"
#include "unet/runtime/error.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <map>
#include <sstream>
#include <unistd.h>

using namespace unet;
using unet::test::read_file;
using unet::test::run_unet;
using unet::test::TempDir;

namespace {

EnvLookup lookup_in(const std::map<std::string, std::string>& vars) {
  return [vars](const std::string& name) -> std::optional<std::string> {
    const auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

/// A port per test and process, so that parallel or repeated runs do not collide.
int port(int offset) { return 20000 + (static_cast<int>(::getpid()) * 7 + offset * 101) % 20000; }

// The reference's optimisation and resized inputs (not the CPU preset's), which the tolerances assume.
const std::string kTrain =
    "train --preset reference --depth 2 --filters 4 --input-size 60 --synthetic-size 64 --dropout 0 --threads 1 --quiet ";

/// The last evaluation record of a run's log (model_dir/log.jsonl), or null.
nlohmann::json last_evaluation(const std::string& model_dir) {
  std::istringstream lines(read_file(model_dir + "/log.jsonl"));
  nlohmann::json last;
  for (std::string line; std::getline(lines, line);) {
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_object() && j.value("type", "") == "eval") last = j;
  }
  return last;
}

UNet load_weights(const std::string& model_dir) {
  const CheckpointInfo info = read_checkpoint_info(checkpoint_path(model_dir));
  UNet model(info.model);
  load_checkpoint(checkpoint_path(model_dir), model, nullptr, false);
  return model;
}

}  // namespace

TEST(DistEnv, TorchrunSlurmAndMpiGiveTheSameAssignment) {
  const DistEnv torchrun = detect_environment(lookup_in(
      {{"RANK", "3"}, {"WORLD_SIZE", "8"}, {"LOCAL_RANK", "1"}, {"MASTER_ADDR", "node07"}, {"MASTER_PORT", "1234"}}));
  const DistEnv slurm = detect_environment(lookup_in({{"SLURM_PROCID", "3"}, {"SLURM_NTASKS", "8"}, {"SLURM_LOCALID", "1"},
                                                      {"SLURM_JOB_NODELIST", "node[07-10]"}, {"MASTER_PORT", "1234"}}));
  const DistEnv mpi = detect_environment(lookup_in({{"OMPI_COMM_WORLD_RANK", "3"}, {"OMPI_COMM_WORLD_SIZE", "8"},
                                                    {"OMPI_COMM_WORLD_LOCAL_RANK", "1"}, {"OMPI_COMM_WORLD_LOCAL_SIZE", "2"},
                                                    {"MASTER_ADDR", "node07"}, {"MASTER_PORT", "1234"}}));
  for (const DistEnv& e : {torchrun, slurm, mpi}) {
    EXPECT_EQ(e.rank, 3) << e.launcher;
    EXPECT_EQ(e.world_size, 8) << e.launcher;
    EXPECT_EQ(e.local_rank, 1) << e.launcher;
    EXPECT_EQ(e.master_addr, "node07") << e.launcher;
    EXPECT_EQ(e.master_port, 1234) << e.launcher;
  }
  EXPECT_EQ(detect_environment(lookup_in({})).world_size, 1);
  EXPECT_EQ(detect_environment(lookup_in({})).launcher, "none");
  EXPECT_THROW(detect_environment(lookup_in({{"RANK", "2"}, {"WORLD_SIZE", "2"}})), Error);
  EXPECT_THROW(detect_environment(lookup_in({{"OMPI_COMM_WORLD_RANK", "0"}, {"OMPI_COMM_WORLD_SIZE", "4"},
                                              {"OMPI_COMM_WORLD_LOCAL_SIZE", "2"}})),
               Error);  // several machines need MASTER_ADDR
}

TEST(DistEnv, SlurmNodeLists) {
  EXPECT_EQ(first_slurm_host("gpu[07-09,12],cpu1"), "gpu07");
  EXPECT_EQ(first_slurm_host("node3"), "node3");
  EXPECT_EQ(first_slurm_host("a,b"), "a");
  EXPECT_EQ(first_slurm_host("rack[2,5]-n[1-4]"), "rack2-n[1-4]");
}

TEST(DistLaunch, LaunchAndMpiStyleEnvironmentsAssignRanksAlike) {
  const auto r = run_unet("launch --nproc-per-node 2 --master-port " + std::to_string(port(1)) + " -- dist-info");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string expect0 = "rank 0 of 2, local rank 0, master 127.0.0.1:" + std::to_string(port(1)) + ", launcher torchrun";
  const std::string expect1 = "rank 1 of 2, local rank 1, master 127.0.0.1:" + std::to_string(port(1)) + ", launcher torchrun";
  EXPECT_NE(r.out.find(expect0), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(expect1), std::string::npos) << r.out;
  const auto mpi = run_unet("dist-info");  // sanity: no launcher
  EXPECT_NE(mpi.out.find("rank 0 of 1"), std::string::npos) << mpi.out;
  TempDir dir;
  const std::string env = "env OMPI_COMM_WORLD_RANK=1 OMPI_COMM_WORLD_SIZE=2 OMPI_COMM_WORLD_LOCAL_RANK=1 MASTER_PORT=" +
                          std::to_string(port(1)) + " '" + UNET_EXE + "' dist-info > " + dir.file("out");
  ASSERT_EQ(std::system(env.c_str()), 0);
  const std::string out = read_file(dir.file("out"));
  EXPECT_NE(out.find("rank 1 of 2, local rank 1, master 127.0.0.1:" + std::to_string(port(1)) + ", launcher mpi"), std::string::npos)
      << out;
}

TEST(DistTraining, TwoRanksOfBatchTwoEqualOneRankOfBatchFour) {
  TempDir dir;
  auto two = run_unet("launch --nproc-per-node 2 --master-port " + std::to_string(port(2)) + " -- " + kTrain +
                      "--batch-size 2 --max-steps 20 --model-dir " + dir.file("two"));
  ASSERT_EQ(two.exit_code, 0) << two.err;
  auto one = run_unet(kTrain + "--batch-size 4 --max-steps 20 --model-dir " + dir.file("one"));
  ASSERT_EQ(one.exit_code, 0) << one.err;
  UNet a = load_weights(dir.file("one")), b = load_weights(dir.file("two"));
  const auto pa = a->parameters(), pb = b->parameters();
  double max_difference = 0.0, max_change = 0.0;
  at::manual_seed(0);  // the runs' seed: the same initial weights
  UNet initial(read_checkpoint_info(checkpoint_path(dir.file("one"))).model);
  const auto p0 = initial->parameters();
  for (size_t i = 0; i < pa.size(); ++i) {
    max_difference = std::max(max_difference, (pa[i] - pb[i]).abs().max().item<double>());
    max_change = std::max(max_change, (pa[i] - p0[i]).abs().max().item<double>());
  }
  // Training moved the weights by ~1e-3 (20 Adam steps of 1e-4); the two runs differ only by
  // float rounding of the gradient sums.
  EXPECT_GT(max_change, 5e-4);
  EXPECT_LT(max_difference, 2e-5) << "max change " << max_change;
  std::cout << "max |one - two| " << max_difference << ", max change " << max_change << std::endl;
  // The closing evaluation of the held-out images: two ranks each score half and sum their
  // counts; the result is one rank's (every image counted once, the same scores to rounding).
  const nlohmann::json e1 = last_evaluation(dir.file("one")), e2 = last_evaluation(dir.file("two"));
  ASSERT_TRUE(e1.is_object() && e2.is_object()) << "no evaluation logged";
  EXPECT_GT(e1["images"].get<int64_t>(), 1);
  EXPECT_EQ(e2["images"], e1["images"]) << "images counted by the two-rank evaluation";
  for (const char* score : {"dice_score", "cross_entropy", "pixel_error"})
    EXPECT_NEAR(e2[score].get<double>(), e1[score].get<double>(), 1e-3) << score;
}

TEST(DistTraining, TwoRankCheckpointResumesOnOneAndOnTwoRanks) {
  TempDir dir;
  auto r = run_unet("launch --nproc-per-node 2 --master-port " + std::to_string(port(3)) + " -- " + kTrain +
                    "--batch-size 2 --max-steps 4 --model-dir " + dir.file("a"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::filesystem::copy(dir.file("a"), dir.file("b"), std::filesystem::copy_options::recursive);
  r = run_unet(kTrain + "--batch-size 2 --max-steps 6 --resume --model-dir " + dir.file("a"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(read_checkpoint_info(checkpoint_path(dir.file("a"))).step, 6);
  r = run_unet("launch --nproc-per-node 2 --master-port " + std::to_string(port(4)) + " -- " + kTrain +
               "--batch-size 2 --max-steps 7 --resume --model-dir " + dir.file("b"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(read_checkpoint_info(checkpoint_path(dir.file("b"))).step, 7);
}

TEST(DistTraining, KilledRankMakesTheOtherExitAndKeepsTheCheckpoint) {
  TempDir dir;
  const std::string model = dir.file("m");
  const std::string common = "MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(port(5)) + " WORLD_SIZE=2 '" + UNET_EXE + "' " +
                             kTrain + "--batch-size 2 --max-steps 1000000 --checkpoint-every 3 --dist-timeout 20 --model-dir " + model;
  // Rank 1 is killed once the first checkpoint exists; rank 0 must then stop by itself (its
  // collectives time out after --dist-timeout): it is given five minutes, a bound on a hang, not a
  // speed, and is killed and reported as hung after them.
  const std::string script =
      "RANK=0 " + common + " 2>" + dir.file("err0") + " & p0=$!\n" +
      "RANK=1 " + common + " 2>/dev/null & p1=$!\n" +
      "for i in $(seq 3000); do [ -f " + model + "/checkpoint.pt ] && break; sleep 0.1; done\n" +
      "sleep 0.5; kill -9 $p1\n" +
      "for i in $(seq 3000); do kill -0 $p0 2>/dev/null || break; sleep 0.1; done\n" +
      "if kill -0 $p0 2>/dev/null; then kill -9 $p0; echo hung > " + dir.file("result") + "\n" +
      "else wait $p0; echo $? > " + dir.file("result") + "; fi\n";
  unet::test::write_file(dir.file("run.sh"), script);
  ASSERT_EQ(std::system(("bash " + dir.file("run.sh")).c_str()), 0);
  const std::string result = read_file(dir.file("result"));
  ASSERT_EQ(result.find("hung"), std::string::npos) << "rank 0 did not stop after its peer was killed";
  const int code = std::atoi(result.c_str());
  EXPECT_NE(code, 0);
  EXPECT_LT(code, 128) << "rank 0 must exit with an error, not crash";
  EXPECT_NE(read_file(dir.file("err0")).find("another rank stopped"), std::string::npos) << read_file(dir.file("err0"));
  EXPECT_GE(read_checkpoint_info(checkpoint_path(model)).step, 3);  // the last complete checkpoint loads
}

// A stop asked of one rank (Ctrl-C reaching one process, a scheduler's SIGINT to one task) stops
// every rank at the same step: the ranks agree on it when they exchange their losses, rank 0
// writes the checkpoint, and each exits as SIGINT asks (130). A rank that stopped alone would
// leave the other waiting in its next collective until the timeout.
TEST(DistTraining, OneRanksStopStopsEveryRankAtTheSameStep) {
  TempDir dir;
  const std::string model = dir.file("m");
  const std::string common = "MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(port(6)) + " WORLD_SIZE=2 '" + UNET_EXE + "' " +
                             kTrain + "--batch-size 2 --max-steps 1000000 --log-every 1 --checkpoint-every 0 --dist-timeout 60 "
                             "--model-dir " + model;
  // SIGINT to rank 1 once rank 0 has logged two steps; both are then given five minutes (a bound on
  // a hang, not a speed) and reported as hung after them.
  const std::string script =
      "RANK=0 " + common + " 2>" + dir.file("err0") + " & p0=$!\n" +
      "RANK=1 " + common + " 2>" + dir.file("err1") + " & p1=$!\n" +
      "for i in $(seq 3000); do [ \"$(wc -l < " + model + "/log.jsonl 2>/dev/null || echo 0)\" -ge 3 ] && break; sleep 0.1; done\n" +
      "kill -INT $p1\n" +
      "for i in $(seq 3000); do kill -0 $p0 2>/dev/null || kill -0 $p1 2>/dev/null || break; sleep 0.1; done\n" +
      "for p in $p0 $p1; do if kill -0 $p 2>/dev/null; then kill -9 $p; echo hung; else wait $p; echo $?; fi; done > " +
      dir.file("result") + "\n";
  unet::test::write_file(dir.file("run.sh"), script);
  ASSERT_EQ(std::system(("bash " + dir.file("run.sh")).c_str()), 0);
  const std::string result = read_file(dir.file("result")), err0 = read_file(dir.file("err0"));
  EXPECT_EQ(result, "130\n130\n") << "exit codes of ranks 0 and 1\nrank 0: " << err0 << "\nrank 1: " << read_file(dir.file("err1"));
  const std::string stopped = "stopped by SIGINT at step ";
  const size_t at = err0.find(stopped);
  ASSERT_NE(at, std::string::npos) << err0;
  EXPECT_EQ(read_checkpoint_info(checkpoint_path(model)).step, std::stoll(err0.substr(at + stopped.size())));
}

TEST(DistLaunch, FailingRankMakesLaunchFail) {
  TempDir dir;
  // Every rank fails at once on a missing data directory; launch must report it and fail too.
  const auto r = run_unet("launch --nproc-per-node 2 --master-port " + std::to_string(port(6)) + " -- " + kTrain +
                          "--data-dir " + dir.file("nowhere") + " --model-dir " + dir.file("m"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("no such data directory"), std::string::npos) << r.err;
}
