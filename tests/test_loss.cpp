// Tests of the loss and metrics against hand-computed values, and a finite-difference gradient check.
#include "test_support.h"

#include "unet/data/components.h"
#include "unet/eval/isbi.h"
#include "unet/eval/metrics.h"
#include "unet/infer/evaluate.h"
#include "unet/model/geometry.h"
#include "unet/model/loss.h"
#include "unet/model/unet.h"

#include <ATen/ATen.h>

#include <cmath>

using namespace unet;

TEST(Loss, UniformLogitsGiveLn2AndHandComputedDice) {
  // One image of one pixel, label class 1, logits 0 -> p = (0.5, 0.5).
  const at::Tensor logits = at::zeros({1, 2, 1, 1});
  const at::Tensor labels = at::ones({1, 1, 1}, at::kLong);
  const LossTerms t = segmentation_loss(logits, labels);
  EXPECT_NEAR(t.cross_entropy.item<double>(), std::log(2.0), 1e-6);
  // class 0: (0 + eps) / (0.25 + eps) ~ 4e-6; class 1: (2 * 0.5 + eps) / (0.25 + 1 + eps) = 0.8.
  const double d0 = 1e-6 / (0.25 + 1e-6), d1 = (1.0 + 1e-6) / (1.25 + 1e-6);
  EXPECT_NEAR(t.dice_loss.item<double>(), ((1 - d0) + (1 - d1)) / 2, 1e-6);
  EXPECT_NEAR(t.total.item<double>(), std::log(2.0) + ((1 - d0) + (1 - d1)) / 2, 1e-6);
}

TEST(Loss, DiceIsAveragedOverImagesBeforeClasses) {
  // Image 0: perfect, confident prediction; image 1: every pixel wrong and confident.
  at::Tensor logits = at::zeros({2, 2, 2, 2});
  at::Tensor labels = at::zeros({2, 2, 2}, at::kLong);
  labels[0][0][0] = 1;
  labels[1][0][0] = 1;
  // Image 0 predicts its labels, image 1 the opposite, with logit gap 40 (p ~ 1 or ~ 0).
  for (int64_t y = 0; y < 2; ++y)
    for (int64_t x = 0; x < 2; ++x) {
      const int64_t c = labels[0][y][x].item<int64_t>();
      logits[0][c][y][x] = 20;
      logits[0][1 - c][y][x] = -20;
      logits[1][c][y][x] = -20;
      logits[1][1 - c][y][x] = 20;
    }
  const LossTerms t = segmentation_loss(logits, labels);
  // Per class: Dice 1 on image 0 and ~0 on image 1 -> mean 0.5 -> loss 0.5 for each class.
  EXPECT_NEAR(t.dice_loss.item<double>(), 0.5, 1e-4);
  // Cross-entropy: 0 on image 0, 40 on image 1 -> mean 20.
  EXPECT_NEAR(t.cross_entropy.item<double>(), 20.0, 1e-3);
}

TEST(Metrics, HardMembraneDiceIoUAndPixelErrorByHand) {
  // 2x3 image; class 0 = membrane. Truth: membrane at 3 pixels; prediction: 2 of them + 1 false.
  const at::Tensor truth = at::tensor({0, 0, 0, 1, 1, 1}, at::kLong).view({2, 3});
  const at::Tensor predicted = at::tensor({0, 0, 1, 0, 1, 1}, at::kLong).view({2, 3});
  const at::Tensor probs = at::stack({(predicted == 0).to(at::kFloat), (predicted == 1).to(at::kFloat)});
  MetricAccumulator acc;
  acc.add_original(probs, truth);
  const Metrics m = acc.result();
  // TP 2, FP 1, FN 1: Dice 4/6, IoU 2/4; 2 of 6 pixels wrong.
  EXPECT_NEAR(m.membrane_dice, 4.0 / 6.0, 1e-12);
  EXPECT_NEAR(m.membrane_iou, 0.5, 1e-12);
  EXPECT_NEAR(m.pixel_error, 2.0 / 6.0, 1e-12);
}

TEST(Metrics, DiceScoreIsOneMinusTheDiceLoss) {
  at::manual_seed(3);
  const at::Tensor logits = at::randn({3, 2, 8, 8});
  const at::Tensor labels = at::randint(2, {3, 8, 8}, at::kLong);
  MetricAccumulator acc;
  acc.add_network_output(logits.narrow(0, 0, 2), labels.narrow(0, 0, 2));
  acc.add_network_output(logits.narrow(0, 2, 1), labels.narrow(0, 2, 1));
  const LossTerms t = segmentation_loss(logits, labels);
  EXPECT_NEAR(acc.result().dice_score, 1.0 - t.dice_loss.item<double>(), 1e-6);
  EXPECT_NEAR(acc.result().cross_entropy, t.cross_entropy.item<double>(), 1e-6);
}

TEST(Gradient, TinyNetworkMatchesFiniteDifferencesInDouble) {
  at::manual_seed(0);
  UNet net(UNetOptions().depth(1).filters(2).padding(Padding::kSame).dropout(0.0));
  net->to(at::kDouble);
  const at::Tensor x = at::randn({2, 1, 8, 8}, at::kDouble);
  const at::Tensor labels = at::randint(2, {2, 8, 8}, at::kLong);
  // segmentation_loss computes in float32 by design, so the check runs the same formula in double;
  // Loss.Fp32LossMatchesADoubleComputation ties the two together.
  auto loss_double = [&] {
    const at::Tensor logits = net->forward(x);
    const at::Tensor target = at::one_hot(labels, 2).permute({0, 3, 1, 2}).to(at::kDouble);
    const at::Tensor log_p = at::log_softmax(logits, 1);
    const at::Tensor p = log_p.exp();
    const at::Tensor dice = ((2 * (p * target).sum({2, 3}) + 1e-6) / ((p * p + target * target).sum({2, 3}) + 1e-6)).mean(0);
    return -(target * log_p).sum(1).mean() + (1 - dice).mean();
  };
  net->zero_grad();
  loss_double().backward();
  int checked = 0;
  for (auto& p : net->parameters()) {
    const at::Tensor flat = p.detach().view({-1});
    const at::Tensor grad = p.grad().view({-1});
    for (int64_t i = 0; i < flat.numel(); i += std::max<int64_t>(1, flat.numel() / 3)) {
      const double saved = flat[i].item<double>();
      const double h = 1e-6;
      flat[i] = saved + h;
      const double up = loss_double().item<double>();
      flat[i] = saved - h;
      const double down = loss_double().item<double>();
      flat[i] = saved;
      const double numeric = (up - down) / (2 * h);
      EXPECT_NEAR(grad[i].item<double>(), numeric, 1e-6 + 1e-5 * std::abs(numeric)) << "parameter element " << i;
      ++checked;
    }
  }
  EXPECT_GT(checked, 20);
}

TEST(Loss, Fp32LossMatchesADoubleComputation) {
  at::manual_seed(1);
  const at::Tensor logits = at::randn({2, 3, 5, 4}, at::kDouble);
  const at::Tensor labels = at::randint(3, {2, 5, 4}, at::kLong);
  const at::Tensor target = at::one_hot(labels, 3).permute({0, 3, 1, 2}).to(at::kDouble);
  const at::Tensor log_p = at::log_softmax(logits, 1);
  const at::Tensor p = log_p.exp();
  const double ce = (-(target * log_p).sum(1).mean()).item<double>();
  const double dice = (1 - ((2 * (p * target).sum({2, 3}) + 1e-6) / ((p * p + target * target).sum({2, 3}) + 1e-6)).mean(0))
                          .mean()
                          .item<double>();
  const LossTerms t = segmentation_loss(logits.to(at::kFloat), labels);
  EXPECT_NEAR(t.cross_entropy.item<double>(), ce, 1e-5);
  EXPECT_NEAR(t.dice_loss.item<double>(), dice, 1e-5);
}

TEST(IsbiMetrics, ConnectedComponentsAreFourConnected) {
  const at::Tensor f = at::tensor({1, 1, 0, 1,  //
                                   0, 0, 0, 1,  //
                                   1, 0, 1, 0},
                                  at::kLong)
                           .view({3, 4})
                           .to(at::kBool);
  const at::Tensor labels = connected_components(f);
  EXPECT_EQ(labels.max().item<int64_t>(), 4);  // the diagonal neighbours at (2,2)/(1,3) are separate
  EXPECT_EQ(labels[0][0].item<int64_t>(), labels[0][1].item<int64_t>());
  EXPECT_EQ(labels[0][3].item<int64_t>(), labels[1][3].item<int64_t>());
  EXPECT_EQ(labels[0][2].item<int64_t>(), 0);
}

TEST(IsbiMetrics, RandAndInformationScoresByHand) {
  const at::Tensor truth = at::tensor({1, 1, 2, 2}, at::kLong).view({1, 4});
  // Perfect (labels may differ by name): both 1.
  SegmentationScores s = segmentation_scores(truth, at::tensor({7, 7, 3, 3}, at::kLong).view({1, 4}));
  EXPECT_NEAR(s.v_rand, 1.0, 1e-12);
  EXPECT_NEAR(s.v_info, 1.0, 1e-12);
  // Merge of two halves: sum p^2 = 1/2, sum s^2 = 1/2, sum t^2 = 1 -> 0.5 / 0.75; I(S;T) = 0.
  s = segmentation_scores(truth, at::ones({1, 4}, at::kLong));
  EXPECT_NEAR(s.v_rand, 2.0 / 3.0, 1e-12);
  EXPECT_NEAR(s.v_info, 0.0, 1e-12);
  // Split of one segment into two: symmetric, the same scores.
  s = segmentation_scores(at::ones({1, 4}, at::kLong), truth);
  EXPECT_NEAR(s.v_rand, 2.0 / 3.0, 1e-12);
  EXPECT_NEAR(s.v_info, 0.0, 1e-12);
  // True boundary pixels are ignored; predicted boundary inside a segment is a singleton each:
  // truth {1,1,1,1}, proposal {5,5,0,0} -> segments sizes 2,1,1: sum t^2 = (4+1+1)/16, sum p^2 the same,
  // sum s^2 = 1 -> (6/16) / (0.5 + 3/16) = 6/11.
  s = segmentation_scores(at::tensor({1, 1, 1, 1, 0}, at::kLong).view({1, 5}),
                          at::tensor({5, 5, 0, 0, 9}, at::kLong).view({1, 5}));
  EXPECT_NEAR(s.v_rand, 6.0 / 11.0, 1e-12);
  // Information: H(S) = 0, H(T) = 1.5 ln 2, I = 0 -> 0.
  EXPECT_NEAR(s.v_info, 0.0, 1e-12);
  // A 2x2 contingency by hand: truth {1,1,1,2}, proposal {1,1,2,2}.
  s = segmentation_scores(at::tensor({1, 1, 1, 2}, at::kLong).view({2, 2}), at::tensor({1, 1, 2, 2}, at::kLong).view({2, 2}));
  // p = [[1/2, 1/4], [0, 1/4]]: sum p^2 = 6/16; s = (3/4, 1/4): 10/16; t = (1/2, 1/2): 8/16.
  EXPECT_NEAR(s.v_rand, (6.0 / 16) / (0.5 * 10.0 / 16 + 0.5 * 8.0 / 16), 1e-12);
  const double hs = -(0.75 * std::log(0.75) + 0.25 * std::log(0.25)), ht = std::log(2.0);
  const double mi = 0.5 * std::log(0.5 / (0.75 * 0.5)) + 0.25 * std::log(0.25 / (0.75 * 0.5)) + 0.25 * std::log(0.25 / (0.25 * 0.5));
  EXPECT_NEAR(s.v_info, mi / (0.5 * hs + 0.5 * ht), 1e-12);
}
