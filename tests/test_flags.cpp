// Every flag's default is the library's: the option groups bind flags straight into the library's
// option structures, so the value a flag shows as its default must be the value the structure
// holds when default-constructed, and giving a flag that value must change nothing. Each group is
// registered on default-constructed structures; then, for every option with a default, fresh
// structures are parsed from "--flag DEFAULT" and the group registered again on them: every
// option's shown default must be as before. A flag whose shown default is written by hand, or a
// field whose default is set a second time somewhere, fails here.
#include "options.h"

#include "unet/data/source.h"
#include "unet/infer/predictor.h"
#include "unet/model/unet.h"
#include "unet/runtime/context.h"
#include "unet/train/options.h"

#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <vector>

using namespace unet;
using namespace unet::cli;

namespace {

/// The structures one option group binds, default-constructed.
struct Bound {
  DataOptions data;
  UNetOptions model;
  TrainOptions train;
  InferenceOptions infer;
  RuntimeOptions runtime;
};

using Group = std::function<void(CLI::App&, Bound&)>;

/// The default an option shows in the help: a switch's is in its option text ("[on|off]=off"; its
/// default string is the value a bare switch takes), any other's its default string.
std::string shown_default(const CLI::Option* o) {
  const std::string text = o->get_option_text();
  const size_t eq = text.rfind("]=");
  return eq != std::string::npos ? text.substr(eq + 2) : o->get_default_str();
}

/// Each option's name and the default it shows.
std::map<std::string, std::string> shown_defaults(const Group& group, Bound& bound) {
  CLI::App app;
  take_last_values(app);
  group(app, bound);
  std::map<std::string, std::string> out;
  for (const CLI::Option* o : app.get_options())
    if (!o->get_lnames().empty()) out["--" + o->get_lnames().front()] = shown_default(o);
  return out;
}

/// Parses `args` into fresh default structures and returns the defaults shown afterwards.
std::map<std::string, std::string> defaults_after(const Group& group, const std::vector<std::string>& args) {
  Bound bound;
  CLI::App app;
  take_last_values(app);
  group(app, bound);
  std::vector<std::string> reversed(args.rbegin(), args.rend());  // CLI11 parses a reversed vector
  app.parse(reversed);
  return shown_defaults(group, bound);
}

/// Options that set another one by design: giving --percentiles asks for percentile normalisation.
const std::map<std::string, std::string> kImplies = {{"--percentiles", "--normalize"}};

void expect_defaults_are_the_librarys(const Group& group, const std::string& name) {
  Bound fresh;
  const auto before = shown_defaults(group, fresh);
  ASSERT_FALSE(before.empty()) << name;
  int checked = 0;
  for (const auto& [flag, shown] : before) {
    if (shown.empty()) continue;  // flags without a value (--resume) and options with no default
    SCOPED_TRACE(name + " " + flag + " " + shown);
    std::map<std::string, std::string> after;
    ASSERT_NO_THROW(after = defaults_after(group, {flag, shown})) << "the shown default is not a value the flag takes";
    auto expected = before;
    if (kImplies.count(flag) && after.count(kImplies.at(flag))) expected[kImplies.at(flag)] = after.at(kImplies.at(flag));
    EXPECT_EQ(after, expected) << "giving " << flag << " its shown default '" << shown << "' changed a field";
    ++checked;
  }
  EXPECT_GT(checked, 3) << name;
}

}  // namespace

/// A valid value other than `shown` for an option of type `type` ("INT", "on|off", "N|auto", ...).
std::string other_value(const std::string& flag, std::string type, const std::string& shown) {
  static const std::map<std::string, std::string> text = {{"--fold", "2"}, {"--device", "cpu"}};
  if (text.count(flag)) return text.at(flag);
  if (type.find(':') != std::string::npos) type = type.substr(type.find(':') + 1);  // "BOOLEAN:on|off"
  if (type.find('|') != std::string::npos && type != "N|auto") {  // a choice: another one
    std::stringstream names(type);
    std::string name;
    while (std::getline(names, name, '|'))
      if (name != shown) return name;
  }
  if (type == "LOW,HIGH") return "2,98";
  if (type == "TEXT") return "other";
  return shown == "3" ? "5" : "3";  // numbers, and N|auto
}

/// Every option's shown default follows its field: registered again after "--flag OTHER" was
/// parsed, the flag shows OTHER. A default typed in by hand ("0") stays and fails here, whatever
/// the field holds.
void expect_defaults_follow_their_fields(const Group& group, const std::string& name) {
  Bound fresh;
  CLI::App probe;
  group(probe, fresh);
  int checked = 0;
  for (const CLI::Option* o : probe.get_options()) {
    if (o->get_lnames().empty() || shown_default(o).empty() || o->get_type_size() == 0) continue;
    const std::string flag = "--" + o->get_lnames().front();
    if (flag == "--max-image-pixels") continue;  // a process-wide limit, not a field (tested in test_cli)
    const std::string other = other_value(flag, o->get_type_name(), shown_default(o));
    SCOPED_TRACE(name + " " + flag + " " + other);
    std::map<std::string, std::string> after;
    ASSERT_NO_THROW(after = defaults_after(group, {flag, other}));
    EXPECT_EQ(after.at(flag), other) << flag << " shows '" << after.at(flag) << "' whatever its field holds";
    ++checked;
  }
  EXPECT_GT(checked, 3) << name;
}

TEST(Flags, DataOptionsShowTheLibrarysDefaults) {
  expect_defaults_are_the_librarys([](CLI::App& app, Bound& b) { add_data_options(app, b.data); }, "data");
}

TEST(Flags, ModelOptionsShowTheLibrarysDefaults) {
  expect_defaults_are_the_librarys([](CLI::App& app, Bound& b) { add_model_options(app, b.model, b.train); }, "model");
}

TEST(Flags, TrainOptionsShowTheLibrarysDefaults) {
  expect_defaults_are_the_librarys([](CLI::App& app, Bound& b) { add_train_options(app, b.train); }, "train");
}

TEST(Flags, InferenceOptionsShowTheLibrarysDefaults) {
  expect_defaults_are_the_librarys([](CLI::App& app, Bound& b) { add_segment_options(app, b.infer, b.runtime); },
                                   "segment");
}

TEST(Flags, RuntimeOptionsShowTheLibrarysDefaults) {
  expect_defaults_are_the_librarys(
      [](CLI::App& app, Bound& b) { add_runtime_options(app, b.runtime, {&b.train.seed, &b.data.seed}); }, "runtime");
}

TEST(Flags, EveryShownDefaultFollowsItsField) {
  expect_defaults_follow_their_fields([](CLI::App& app, Bound& b) { add_data_options(app, b.data); }, "data");
  expect_defaults_follow_their_fields([](CLI::App& app, Bound& b) { add_model_options(app, b.model, b.train); }, "model");
  expect_defaults_follow_their_fields([](CLI::App& app, Bound& b) { add_train_options(app, b.train); }, "train");
  expect_defaults_follow_their_fields([](CLI::App& app, Bound& b) { add_segment_options(app, b.infer, b.runtime); }, "segment");
  expect_defaults_follow_their_fields(
      [](CLI::App& app, Bound& b) { add_runtime_options(app, b.runtime, {&b.train.seed, &b.data.seed}); }, "runtime");
}

// The values the groups show are those of the structures' own defaults, named once.
TEST(Flags, SharedDefaultsAreNamedOnce) {
  EXPECT_EQ(TrainOptions{}.batch_size, kDefaultBatchSize);
  EXPECT_EQ(InferenceOptions{}.batch_size, kDefaultBatchSize);
  EXPECT_EQ(LoaderOptions{}.batch_size, kDefaultBatchSize);
  EXPECT_EQ(TrainOptions{}.seed, kDefaultSeed);
  EXPECT_EQ(DataOptions{}.seed, kDefaultSeed);
  EXPECT_EQ(LoaderOptions{}.seed, kDefaultSeed);
  EXPECT_EQ(SyntheticOptions{}.seed, kDefaultSeed);
  EXPECT_EQ(RuntimeOptions{}.loader_threads, kDefaultLoaderThreads);
  EXPECT_EQ(RunContext{}.loader_threads, kDefaultLoaderThreads);
  EXPECT_EQ(LoaderOptions{}.threads, kDefaultLoaderThreads);
  // Training and prediction share one set of execution choices.
  const ExecOptions exec;
  EXPECT_EQ(TrainOptions{}.exec.cpu_engine, exec.cpu_engine);
  EXPECT_EQ(InferenceOptions{}.exec.channels_last, exec.channels_last);
  // The loader of a run takes the run's values.
  TrainOptions t;
  t.batch_size = 3;
  t.seed = 7;
  t.augment = true;
  RunContext context;
  context.loader_threads = 5;
  const LoaderOptions l = t.loader_options(context, ClassScheme::kPlain);
  EXPECT_EQ(l.batch_size, 3);
  EXPECT_EQ(l.seed, 7u);
  EXPECT_TRUE(l.augment.has_value());
  EXPECT_EQ(l.threads, 5);
  t.augment = false;
  EXPECT_FALSE(t.loader_options(context, ClassScheme::kPlain).augment.has_value());
}

// The defaults that are written out rather than captured (options parsed by a function of their
// own) follow their fields: registered on other values, they show those values. A default typed
// in by hand ("0") would stay and fail here.
TEST(Flags, HandWrittenDefaultsFollowTheirFields) {
  Bound b;
  b.data.fold = 2;
  b.train.normalisation.low = 2;
  b.train.normalisation.high = 98.5;
  b.train.evaluate_every = 30;
  b.runtime.device = c10::Device(c10::kCPU);
  b.infer.min_object_area = 5;
  b.infer.split_radius = 3;
  std::map<std::string, std::string> shown;
  for (const Group& group : std::vector<Group>{
           [](CLI::App& app, Bound& x) { add_data_options(app, x.data); },
           [](CLI::App& app, Bound& x) { add_model_options(app, x.model, x.train); },
           [](CLI::App& app, Bound& x) { add_train_options(app, x.train); },
           [](CLI::App& app, Bound& x) { add_segment_options(app, x.infer, x.runtime); }})  // --device, no --seed
    shown.merge(shown_defaults(group, b));
  EXPECT_EQ(shown.at("--fold"), "2");
  EXPECT_EQ(shown.at("--percentiles"), "2,98.5");
  EXPECT_EQ(shown.at("--evaluate-every"), "30");
  EXPECT_EQ(shown.at("--device"), "cpu");
  EXPECT_EQ(shown.at("--min-object-area"), "5");
  EXPECT_EQ(shown.at("--split-radius"), "3");
  Bound s;
  s.train.seed = 9;
  const auto seed = shown_defaults([](CLI::App& app, Bound& x) { add_runtime_options(app, x.runtime, {&x.train.seed}); }, s);
  EXPECT_EQ(seed.at("--seed"), "9");
}
