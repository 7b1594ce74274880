// Tests of data sets: fold splits, mask decoding, both layouts, preprocessing and the batch loader.
#include "test_support.h"

#include "unet/data/dataset.h"
#include "unet/data/loader.h"
#include "unet/data/preprocess.h"
#include "unet/data/synthetic.h"
#include "unet/runtime/error.h"
#include "unet/runtime/graph.h"
#include "unet/train/prefetcher.h"

#include <ATen/ATen.h>

#include <filesystem>
#include <set>

using namespace unet;
using unet::test::TempDir;
namespace fs = std::filesystem;

TEST(Folds, ShuffleIsBitIdenticalToNumpyLegacy) {
  // np.random.seed(0); a = np.arange(30); np.random.shuffle(a)   (NumPy 2.x, legacy generator)
  const std::vector<int64_t> numpy_seed0 = {2, 28, 13, 10, 26, 24, 27, 11, 17, 22, 5,  16, 8, 14, 23,
                                            20, 1, 29, 6,  4,  18, 19, 9,  7,  25, 3, 0,  21, 15, 12};
  EXPECT_EQ(fold_split(30, -1, 0).train, numpy_seed0);
  EXPECT_EQ(fold_split(7, -1, 123).train, (std::vector<int64_t>{1, 3, 4, 0, 2, 5, 6}));
}

TEST(Folds, FiveFoldsAreDisjointCoverEverythingAndAreDeterministic) {
  std::set<int64_t> seen;
  for (int fold = 0; fold < 5; ++fold) {
    const FoldSplit s = fold_split(30, fold, 7);
    EXPECT_EQ(s.train.size(), 24u);
    EXPECT_EQ(s.eval.size(), 6u);
    std::set<int64_t> train(s.train.begin(), s.train.end());
    for (int64_t e : s.eval) {
      EXPECT_EQ(train.count(e), 0u) << "fold " << fold << " evaluates on a training image";
      EXPECT_TRUE(seen.insert(e).second) << "image " << e << " is held out twice";
    }
    EXPECT_EQ(s.train, fold_split(30, fold, 7).train);
  }
  EXPECT_EQ(seen.size(), 30u);
  EXPECT_NE(fold_split(30, 0, 7).eval, fold_split(30, 0, 8).eval);
  // Fold k rotates the shuffled order right by 6k: fold 1's held-out images are fold 0's first 6 train.
  const FoldSplit f0 = fold_split(30, 0, 0), f1 = fold_split(30, 1, 0);
  EXPECT_EQ(f1.eval, std::vector<int64_t>(f0.train.end() - 6, f0.train.end()));
  EXPECT_THROW(fold_split(30, 5, 0), Error);
  EXPECT_THROW(fold_split(30, -2, 0), Error);
}

TEST(Masks, BinaryIndexAndBadValues) {
  RawImage binary{at::tensor({0, 255, 255, 0}, at::kByte).view({1, 2, 2}), SampleFormat::kUInt8};
  EXPECT_TRUE(at::equal(decode_mask(binary, 2, MaskEncoding::kAuto, "m"), at::tensor({0, 1, 1, 0}, at::kLong).view({2, 2})));
  RawImage index{at::tensor({0, 1, 2, 1}, at::kByte).view({1, 2, 2}), SampleFormat::kUInt8};
  EXPECT_TRUE(at::equal(decode_mask(index, 3, MaskEncoding::kAuto, "m"), at::tensor({0, 1, 2, 1}, at::kLong).view({2, 2})));
  RawImage grey{at::tensor({0, 128, 255, 0}, at::kByte).view({1, 2, 2}), SampleFormat::kUInt8};
  try {
    decode_mask(grey, 2, MaskEncoding::kAuto, "labels.tif");
    FAIL() << "128 is neither 0/255 nor a class index";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("labels.tif: unexpected mask values {0, 128, 255}"), std::string::npos) << e.what();
  }
  EXPECT_THROW(decode_mask(index, 2, MaskEncoding::kAuto, "m"), Error);    // 2 >= classes
  EXPECT_THROW(decode_mask(index, 3, MaskEncoding::kBinary, "m"), Error);  // binary needs 0/255
}

TEST(DataSet, IsbiLayoutFromSyntheticStacks) {
  TempDir dir;
  SyntheticOptions s;
  s.train_count = 5;
  s.test_count = 2;
  s.size = 64;
  write_synthetic_isbi(dir.path(), s);
  const DataSet data = load_dataset(dir.path(), 2);
  ASSERT_EQ(data.train.size(), 5u);
  ASSERT_EQ(data.test.size(), 2u);
  EXPECT_EQ(data.train[0].image.sizes(), (std::vector<int64_t>{1, 64, 64}));
  EXPECT_GE(data.train[0].image.min().item<float>(), -1.0f);
  EXPECT_LE(data.train[0].image.max().item<float>(), 1.0f);
  // The stored masks are the generator's exact masks (membrane = class 0).
  const auto [image, mask] = synthetic_slice(s, 3);
  EXPECT_TRUE(at::equal(data.train[3].mask, (mask.pixels[0] == 255).to(at::kLong)));
  EXPECT_FALSE(data.test[0].mask.defined());
}

TEST(DataSet, FolderLayoutMatchesByStemAcrossFormats) {
  TempDir dir;
  fs::create_directories(dir.file("images"));
  fs::create_directories(dir.file("masks"));
  const at::Tensor img = at::randint(0, 256, {1, 20, 30}, at::kByte);
  const at::Tensor msk = at::randint(0, 2, {1, 20, 30}, at::kByte).mul(255);
  write_png(dir.file("images/a.png"), img);
  write_tiff(dir.file("masks/a.tif"), {msk});
  write_png(dir.file("images/b.png"), img);
  write_png(dir.file("masks/b.png"), msk);
  const DataSet data = load_dataset(dir.path(), 2);
  ASSERT_EQ(data.train.size(), 2u);
  EXPECT_TRUE(at::equal(data.train[0].mask, (msk[0] == 255).to(at::kLong)));
  // An image without a mask is an error naming it.
  write_png(dir.file("images/c.png"), img);
  try {
    load_dataset(dir.path(), 2);
    FAIL() << "c.png has no mask";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("c.png: no mask"), std::string::npos) << e.what();
  }
  // A mask of another size likewise.
  write_png(dir.file("masks/c.png"), at::zeros({1, 21, 30}, at::kByte));
  EXPECT_THROW(load_dataset(dir.path(), 2), Error);
}

TEST(Preprocess, ResizeModeGeometry) {
  const Geometry g{572, 388};
  const at::Tensor image = at::rand({1, 512, 512}) * 2 - 1;
  const at::Tensor input = image_to_input(image, g);
  EXPECT_EQ(input.sizes(), (std::vector<int64_t>{1, 572, 572}));
  // The 92-pixel frame is zero padding, the inside the resized image.
  EXPECT_EQ(input.narrow(1, 0, 92).abs().max().item<float>(), 0.0f);
  EXPECT_GT(input.narrow(1, 92, 388).narrow(2, 92, 388).abs().max().item<float>(), 0.5f);
  // A constant mask stays constant; a half/half mask stays split at the middle.
  at::Tensor mask = at::zeros({512, 512}, at::kLong);
  mask.narrow(1, 256, 256).fill_(1);
  const at::Tensor out = mask_to_output(mask, g, 2);
  EXPECT_EQ(out.sizes(), (std::vector<int64_t>{388, 388}));
  EXPECT_EQ(out.narrow(1, 0, 194).sum().item<int64_t>(), 0);
  EXPECT_EQ(out.narrow(1, 194, 194).sum().item<int64_t>(), 388 * 194);
}

TEST(Loader, BatchesAreAPureFunctionOfSeedAndStep) {
  SyntheticOptions s;
  s.train_count = 6;
  s.test_count = 0;
  s.size = 48;
  auto samples = std::make_shared<const std::vector<Sample>>(synthetic_dataset(s).train);
  LoaderOptions o;
  o.batch_size = 4;
  o.augment = AugmentOptions{};
  o.seed = 5;
  const Geometry g{44, 4};
  // Every epoch visits every sample once.
  std::multiset<int64_t> visited;
  for (int64_t step = 0; step < 3; ++step)
    for (int64_t i : batch_indices(6, 4, 5, step)) visited.insert(i);
  for (int64_t i = 0; i < 6; ++i) EXPECT_EQ(visited.count(i), 2u);
  // The threaded loader, started anywhere, gives exactly make_batch's batches.
  o.threads = 3;
  o.start_step = 2;
  BatchLoader loader(samples, g, 2, o);
  for (int64_t step = 2; step < 6; ++step) {
    const Batch a = loader.next();
    const Batch b = make_batch(*samples, g, 2, o, step);
    EXPECT_EQ(a.step, step);
    EXPECT_TRUE(at::equal(a.images, b.images)) << "step " << step;
    EXPECT_TRUE(at::equal(a.labels, b.labels)) << "step " << step;
  }
  // Two ranks of batch 2 together see the samples of one rank of batch 4.
  const auto whole = batch_indices(6, 4, 5, 1, 0, 1);
  auto r0 = batch_indices(6, 2, 5, 1, 0, 2), r1 = batch_indices(6, 2, 5, 1, 1, 2);
  r0.insert(r0.end(), r1.begin(), r1.end());
  EXPECT_EQ(r0, whole);
}

TEST(Loader, DevicePrefetcherOnTheCpuHandsOutTheSourceBatchesInOrder) {
  int64_t counter = 0;
  DevicePrefetcher batches(
      [&counter] {
        Batch b;
        b.images = at::full({1, 1, 4, 4}, static_cast<float>(counter));
        b.labels = at::full({1, 2, 2}, counter, at::kLong);
        b.step = counter++;
        return b;
      },
      c10::Device(c10::kCPU), /*channels_last=*/false);
  for (int64_t k = 0; k < 4; ++k) {
    const Batch b = batches.next();
    if (k % 2 == 0) batches.prefetch();  // prefetching or not must not change the order
    EXPECT_EQ(b.step, k);
    EXPECT_EQ(b.images[0][0][0][0].item<float>(), static_cast<float>(k));
  }
  EXPECT_EQ(counter, 4);  // nothing fetched beyond the batches handed out
}
