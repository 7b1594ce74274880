// End-to-end: a small U-Net trained on the real ISBI 2012 data on the CPU, and the demo command.
#include "test_support.h"

#include "unet/data/dataset.h"
#include "unet/train/trainer.h"

#include <ATen/Parallel.h>

using namespace unet;

// Membrane is ~22% of the ISBI pixels. Predicting no membrane gives a membrane Dice of 0, and
// predicting membrane everywhere 2 * 0.22 / (1 + 0.22) = 0.36; a hard membrane Dice of 0.6 is
// well above both and is reached by a network that has learnt to trace membranes (the 2-minute run
// below reaches about 0.7; full-size networks reach about 0.8 at the original resolution).
constexpr double kMinMembraneDice = 0.6;

TEST(EndToEnd, SmallUNetLearnsIsbiMembranesOnCpu) {
  const std::string dir = unet::test::isbi_dir();
  if (dir.empty()) GTEST_SKIP() << "ISBI 2012 data not found at " << UNET_ISBI_DIR << " (set UNET_ISBI_DIR); skipping";
  at::set_num_threads(2);
  const DataSet data = load_dataset(dir, 2);
  const FoldSplit split = fold_split(static_cast<int64_t>(data.train.size()), 0, 0);
  UNetOptions model;
  model.depth(3).filters(8);
  TrainOptions t;
  t.input_size = 428;  // -> 340 output: membranes stay a few pixels wide after resizing
  t.batch_size = 4;
  t.max_steps = 250;
  t.learning_rate = 1e-3;
  Trainer trainer(model, t, unet::test::quiet_context());
  const TrainResult r = trainer.fit(select(data.train, split.train), select(data.train, split.eval));
  ASSERT_TRUE(r.evaluated);
  std::cout << "ISBI fold 0 after " << r.steps << " steps: membrane Dice " << r.metrics.membrane_dice << ", dice_score "
            << r.metrics.dice_score << ", pixel error " << r.metrics.pixel_error << std::endl;
  EXPECT_GT(r.metrics.membrane_dice, kMinMembraneDice);
  EXPECT_LT(r.metrics.pixel_error, 0.22) << "must beat predicting all background";
}

TEST(EndToEnd, DemoRunsOnSyntheticDataAndReportsItsDice) {
  unet::test::TempDir dir;
  const auto r = unet::test::run_unet("demo --max-steps 120 --threads 2 --quiet --model-dir " + dir.file("demo"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto at = r.out.find("demo membrane Dice: ");
  ASSERT_NE(at, std::string::npos) << r.out;
  const double dice = std::stod(r.out.substr(at + 20));
  // The synthetic membranes are easy: even 120 steps trace them (all-background would score 0).
  EXPECT_GT(dice, 0.7) << r.out;
  EXPECT_TRUE(std::filesystem::exists(dir.file("demo/predictions/test-masks.tif")));
}
