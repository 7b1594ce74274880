// Tests of ensembles (`Predictor::add_member`, `--ensemble`): the probabilities are the members'
// mean, in resize mode and in tiles; members that do not match are refused by name.
#include "test_support.h"

#include "unet/data/synthetic.h"
#include "unet/infer/predictor.h"
#include "unet/runtime/error.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <filesystem>

using namespace unet;
using unet::test::read_file;
using unet::test::run_unet;
using unet::test::TempDir;
namespace fs = std::filesystem;

namespace {

UNet small_net(uint64_t seed, int64_t filters = 4) {
  at::manual_seed(seed);
  UNet net(UNetOptions().depth(2).filters(filters).classes(3));
  net->eval();
  return net;
}

/// Probabilities of `samples` by `net` alone, or with `members` averaged in, in resize mode or in
/// tiles of 60 (CPU engine on, as predict runs).
std::vector<at::Tensor> probabilities(const UNet& net, const std::vector<UNet>& members, const std::vector<Sample>& samples,
                                      bool tiles) {
  Predictor predictor(net, geometry_of(net->options(), 60), c10::Device(c10::kCPU), /*batch_size=*/2, /*channels_last=*/false);
  for (const UNet& m : members) predictor.add_member(m);
  EXPECT_EQ(predictor.member_count(), 1 + members.size());
  if (tiles) {
    TileOptions t;
    t.input = 60;
    predictor.use_tiles(t);
  }
  return predictor.predict(samples);
}

std::vector<Sample> images() {
  at::manual_seed(11);
  std::vector<Sample> samples(2);
  samples[0].image = at::rand({1, 20, 20}) * 2 - 1;  // resize mode's own size
  samples[1].image = at::rand({1, 37, 51}) * 2 - 1;  // tiles of another size, in resize mode resized
  return samples;
}

}  // namespace

TEST(Ensemble, ProbabilitiesAreTheMembersMeanInResizeModeAndInTiles) {
  const UNet a = small_net(1), b = small_net(2), c = small_net(3);
  const std::vector<Sample> samples = images();
  for (const bool tiles : {false, true}) {
    SCOPED_TRACE(tiles ? "tiles" : "resize");
    const auto pa = probabilities(a, {}, samples, tiles), pb = probabilities(b, {}, samples, tiles),
               pc = probabilities(c, {}, samples, tiles), mean = probabilities(a, {b, c}, samples, tiles);
    ASSERT_EQ(mean.size(), samples.size());
    for (size_t i = 0; i < samples.size(); ++i) {
      const at::Tensor expected = (pa[i] + pb[i] + pc[i]) / 3;
      ASSERT_EQ(mean[i].sizes(), expected.sizes());
      EXPECT_TRUE(at::allclose(mean[i], expected, 1e-4, 1e-5)) << "max difference " << (mean[i] - expected).abs().max().item<double>();
      EXPECT_TRUE(at::allclose(mean[i].sum(0), at::ones_like(mean[i][0]), 1e-4, 1e-5));
      // Not one member's: the three nets disagree, so a member left out would show.
      EXPECT_GT((mean[i] - pa[i]).abs().max().item<double>(), 1e-3);
      EXPECT_GT((mean[i] - pb[i]).abs().max().item<double>(), 1e-3);
    }
  }
}

TEST(Ensemble, AModelWithItselfIsTheModel) {
  const UNet a = small_net(4);
  const std::vector<Sample> samples = images();
  const auto alone = probabilities(a, {}, samples, true), twice = probabilities(a, {a}, samples, true);
  for (size_t i = 0; i < samples.size(); ++i) EXPECT_TRUE(at::allclose(alone[i], twice[i], 1e-5, 1e-6));
}

TEST(Ensemble, MembersMustShareTheNetwork) {
  const UNet a = small_net(5), wider = small_net(6, 8);
  Predictor predictor(a, geometry_of(a->options(), 60), c10::Device(c10::kCPU), 1, false);
  EXPECT_THROW(predictor.add_member(wider), Error);
  EXPECT_EQ(predictor.member_count(), 1u);
  // Dropout, off in evaluation mode, is no difference.
  at::manual_seed(7);
  UNet other_dropout(UNetOptions().depth(2).filters(4).classes(3).dropout(0.2));
  predictor.add_member(other_dropout);
  EXPECT_EQ(predictor.member_count(), 2u);
}

// The command line: evaluate and predict average the members, evaluate's scores go beside the
// model's own, and a member that cannot join is one clear line naming its file.
TEST(Ensemble, EvaluateAndPredictTakeOtherModelsAndRefuseMismatches) {
  TempDir dir;
  SyntheticOptions s;
  s.train_count = 6;
  s.test_count = 1;
  s.size = 48;
  write_synthetic_isbi(dir.file("data"), s);
  const std::string net = " --depth 2 --filters 4 --input-size 60 --threads 2 --max-steps 2 --batch-size 2 --quiet ";
  for (const std::string seed : {"1", "2"})
    ASSERT_EQ(run_unet("train --data-dir " + dir.file("data") + net + "--seed " + seed + " --model-dir " + dir.file("m" + seed)).exit_code, 0);
  ASSERT_EQ(run_unet("train --data-dir " + dir.file("data") + " --depth 2 --filters 8 --input-size 60 --threads 2 --max-steps 1 "
                     "--batch-size 2 --quiet --model-dir " + dir.file("wide")).exit_code, 0);
  ASSERT_EQ(run_unet("train --data-dir " + dir.file("data") + net + "--normalize meanstd --model-dir " + dir.file("meanstd")).exit_code, 0);

  // Each seed drew its own fold split: a held-out fold would be another member's training data.
  unet::test::expect_one_line_error(
      run_unet("evaluate --data-dir " + dir.file("data") + " --model-dir " + dir.file("m1") + " --ensemble " + dir.file("m2")),
      "--ensemble scores models whose fold splits differ");
  auto r = run_unet("evaluate --data-dir " + dir.file("data") + " --fold none --model-dir " + dir.file("m1") + " --ensemble " + dir.file("m2"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("(step 2) and 1 more (an ensemble)"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(dir.file("m1/eval_results.json")));  // the model's own scores are not these
  const auto j = nlohmann::json::parse(read_file(dir.file("m1/eval_results_ensemble2.json")));
  ASSERT_TRUE(j.contains("ensemble")) << j.dump();
  EXPECT_EQ(j["ensemble"][0], dir.file("m2/checkpoint.pt"));

  r = run_unet("predict --data-dir " + dir.file("data") + " --model-dir " + dir.file("m1") + " --ensemble " +
               dir.file("m2/checkpoint.pt") + " --output-dir " + dir.file("out") + " --threads 2");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("and 1 more (an ensemble)"), std::string::npos) << r.out;
  EXPECT_TRUE(fs::exists(dir.file("out/test-masks.tif")));
  // Band by band too: the members' files are part of the stopped run's model id (resume checks it).
  r = run_unet("predict --input " + dir.file("data/test-volume.tif") + " --stream --model-dir " + dir.file("m1") +
               " --ensemble " + dir.file("m2") + " --output-dir " + dir.file("streamed") + " --threads 2");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(fs::exists(dir.file("streamed/test-masks.tif")));

  const std::string base = "evaluate --data-dir " + dir.file("data") + " --fold none --model-dir " + dir.file("m1") + " --ensemble ";
  unet::test::expect_one_line_error(run_unet(base + dir.file("wide")), dir.file("wide/checkpoint.pt") + ": cannot join the ensemble: its network");
  unet::test::expect_one_line_error(run_unet(base + dir.file("meanstd")), dir.file("meanstd/checkpoint.pt") + ": cannot join the ensemble: its normalisation");
  unet::test::expect_one_line_error(run_unet(base + dir.file("none")), dir.file("none") + ": no such file");
  unet::test::expect_one_line_error(run_unet(base + dir.file("m2") + " --precision int8"), "--ensemble");
  EXPECT_FALSE(fs::exists(dir.file("m1/eval_results.json")));
}
