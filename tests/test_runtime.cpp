// Tests of the runtime part: the synchronising stopwatch, option errors by field, enumeration names.
#include "test_support.h"

#include "unet/model/unet.h"
#include "unet/runtime/device.h"
#include "unet/runtime/error.h"
#include "unet/runtime/precision.h"
#include "unet/runtime/timing.h"
#include "unet/train/options.h"

using namespace unet;

TEST(Runtime, StopwatchCountsQueuedDeviceWorkInTheIntervalThatQueuedIt) {
  // A fake device: launching work queues it without advancing the clock; synchronising waits for it.
  double now = 0.0, queued = 0.0;
  DeviceStopwatch watch([&] { now += queued, queued = 0.0; }, [&] { return now; });
  queued = 2.0;  // warm-up work launched before timing starts: not counted
  watch.start();
  queued += 3.0;  // two timed steps, launched asynchronously
  now += 0.5;     // the host's own time between the launches
  queued += 4.0;
  watch.stop();
  EXPECT_DOUBLE_EQ(watch.seconds(), 7.5);
  queued = 10.0;  // an evaluation between intervals: not counted
  now += 1.0;
  watch.start();
  queued += 1.0;
  watch.stop();
  EXPECT_DOUBLE_EQ(watch.seconds(), 8.5);
  EXPECT_FALSE(watch.running());
}

TEST(Runtime, OptionErrorsNameTheFieldAndTheValueButNoFlag) {
  auto error_of = [](const std::function<void()>& f) -> std::pair<std::string, std::string> {
    try {
      f();
    } catch (const OptionError& e) {
      return {e.field(), e.what()};
    }
    return {"", "no error"};
  };
  EXPECT_EQ(error_of([] { UNetOptions().depth(9).validate(); }),
            std::make_pair(std::string("depth"), std::string("depth must be between 1 and 8 (got 9)")));
  EXPECT_EQ(error_of([] { UNetOptions().in_channels(0).validate(); }).first, "in_channels");
  TrainOptions t;
  t.learning_rate = std::numeric_limits<double>::infinity();
  EXPECT_EQ(error_of([&] { t.validate(); }).first, "learning_rate");
  t = TrainOptions();
  t.schedule.warmup_steps = -1;
  EXPECT_EQ(error_of([&] { t.validate(); }),
            std::make_pair(std::string("schedule.warmup_steps"), std::string("schedule.warmup_steps must not be negative (got -1)")));
  t = TrainOptions();
  t.border_weights = true;
  t.weight_map.sigma = std::nan("");
  EXPECT_EQ(error_of([&] { t.validate(); }).first, "weight_map.sigma");
  // Other fields a problem mentions are plain names to the library's users.
  EXPECT_STREQ(OptionError("", "x: pass {resume} or {overwrite}").what(), "x: pass resume or overwrite");
}

TEST(Runtime, EnumerationNamesParseAliasesAndListTheChoices) {
  EXPECT_EQ(parse_precision("amp"), Precision::kFP16);
  EXPECT_EQ(to_string(Precision::kFP16), "fp16");
  EXPECT_EQ(to_string(parse_padding("same")), "same");
  // auto is made concrete per device: fp32 on GPUs for now, on CPUs bf16 only with a bf16 matrix engine.
  EXPECT_EQ(resolve_precision(Precision::kAuto, c10::Device(c10::kCUDA, 0)), Precision::kFP32);
  EXPECT_EQ(resolve_precision(Precision::kAuto, c10::Device(c10::kCPU)),
            cpu_has_bf16_matrix_engine() ? Precision::kBF16 : Precision::kFP32);
  EXPECT_EQ(resolve_precision(Precision::kFP16, c10::Device(c10::kCPU)), Precision::kFP16);
  // bf16 where the CPU cannot run it is refused up front, in one line, not deep inside oneDNN.
  if (cpu_runs_bf16()) {
    EXPECT_EQ(resolve_precision(Precision::kBF16, c10::Device(c10::kCPU)), Precision::kBF16);
  } else {
    EXPECT_THROW(resolve_precision(Precision::kBF16, c10::Device(c10::kCPU)), OptionError);
  }
  EXPECT_EQ(resolve_precision(Precision::kBF16, c10::Device(c10::kCUDA, 0)), Precision::kBF16);
  // The flags are read once, space-delimited: a flag is found whole, never as a prefix.
  EXPECT_FALSE(cpu_has_flag("avx512"));
  EXPECT_EQ(cpu_flags().empty() || cpu_flags().back() == ' ', true);
  try {
    parse_precision("fp8");
    FAIL() << "fp8 must be refused";
  } catch (const OptionError& e) {
    EXPECT_EQ(e.field(), "precision");
    EXPECT_EQ(e.problem(), ": expected fp32, tf32, fp16, bf16, auto or int8, got 'fp8'");  // "amp" is an alias, not listed
  }
}

TEST(Runtime, CpuThreadsFlushSubnormalFloatsToZero) {
  // 1e-30 * 1e-10 is subnormal in float32: kept without flushing, 0 with it, in the calling thread
  // and in the worker threads of a parallel element-wise product.
  configure_cpu_threads(2);
  const at::Tensor tiny = at::full({1 << 20}, 1e-30f) * 1e-10f;
  EXPECT_EQ(at::count_nonzero(tiny).item<int64_t>(), 0);
  const float product = static_cast<float>(1e-30) * at::full({1}, 1e-10f).item<float>();
  EXPECT_EQ(product, 0.0f);
}

TEST(Runtime, UnetsOwnParallelLoopsRunOnEveryIntraOpThread) {
  // ATen's at::parallel_for is inline and runs serially in a file compiled without OpenMP: unet's
  // Winograd convolutions once ran on one core of two that way. GCC builds compile with OpenMP.
#if defined(__GNUC__) && !defined(__clang__)
  configure_cpu_threads(2);
  EXPECT_EQ(parallel_loop_threads(), 2);
  configure_cpu_threads(1);
  EXPECT_EQ(parallel_loop_threads(), 1);
  configure_cpu_threads(2);
#else
  GTEST_SKIP() << "unet's parallel loops use OpenMP only in GCC builds";
#endif
}
