// UNetOptions: validation by field, description, and the JSON form stored in checkpoints.
#include "unet/model/unet.h"

#include "model/json.h"

namespace unet {

const EnumNames<Padding>& padding_names() {
  static const EnumNames<Padding> names = {{"valid", Padding::kValid}, {"same", Padding::kSame}};
  return names;
}

std::string to_string(Padding padding) { return name_of(padding_names(), padding); }

Padding parse_padding(const std::string& text) { return parse_name(padding_names(), "padding", text); }

const EnumNames<ClassScheme>& class_scheme_names() {
  static const EnumNames<ClassScheme> names = {{"plain", ClassScheme::kPlain},
                                               {"interior-boundary", ClassScheme::kInteriorBoundary},
                                               {"distance", ClassScheme::kDistance},
                                               {"directions", ClassScheme::kDirections}};
  return names;
}

std::string to_string(ClassScheme scheme) { return name_of(class_scheme_names(), scheme); }

ClassScheme parse_class_scheme(const std::string& text) { return parse_name(class_scheme_names(), "class_scheme", text); }

std::string ClassNaming::name(int64_t c) const {
  return c >= 0 && c < static_cast<int64_t>(names.size()) ? names[static_cast<size_t>(c)] : "class" + std::to_string(c);
}

int64_t ClassNaming::background() const {
  if (headline != 0) return 0;
  return names.size() == 2 ? 1 : -1;
}

ClassNaming default_class_naming(int64_t classes, ClassScheme scheme, bool membranes) {
  ClassNaming n;
  if (scheme == ClassScheme::kInteriorBoundary) {
    n.names = {"background", "interior", "boundary"};
  } else if (scheme == ClassScheme::kDistance) {
    n.names = {"background"};
    for (int64_t c = 1; c < classes; ++c) n.names.push_back("distance" + std::to_string(c));
  } else if (scheme == ClassScheme::kDirections) {
    n.names = {"background", "centre", "east", "north-east", "north", "north-west", "west", "south-west", "south", "south-east"};
  } else if (classes == 2) {
    n.names = membranes ? std::vector<std::string>{"membrane", "cell"} : std::vector<std::string>{"background", "foreground"};
    n.headline = membranes ? 0 : 1;
  } else {
    for (int64_t c = 0; c < classes; ++c) n.names.push_back("class" + std::to_string(c));
  }
  return n;
}

ClassNaming recorded_naming(const ClassNaming& recorded, int64_t classes, ClassScheme scheme) {
  return recorded.names.empty() ? default_class_naming(classes, scheme, /*membranes=*/true) : recorded;
}

ClassNaming rename_classes(const ClassNaming& base, const std::vector<std::string>& names) {
  if (names.empty()) return base;
  if (names.size() != base.names.size())
    throw OptionError("class_names", ": " + std::to_string(names.size()) + " names given for a model of " +
                                         std::to_string(base.names.size()) + " classes");
  ClassNaming n = base;
  n.names = names;
  return n;
}

void UNetOptions::validate() const {
  require_option(in_channels() >= 1, "in_channels", "must be at least 1", in_channels());
  // Class maps are written as 8-bit images: at most 255 classes.
  require_option(classes() >= 2 && classes() <= 255, "classes", "must be between 2 and 255", classes());
  require_option(depth() >= 1 && depth() <= 8, "depth", "must be between 1 and 8", depth());
  require_option(filters() >= 1 && (filters() << depth()) <= (int64_t{1} << 20), "filters",
                 "must be at least 1 and filters * 2^depth at most 2^20", filters());
  require_option(up_kernel() == 2 || up_kernel() == 3, "up_kernel", "must be 2 or 3", up_kernel());
  require_option(dropout() >= 0.0 && dropout() < 1.0, "dropout", "must be in [0, 1)", dropout());
  require_option(scheme() != ClassScheme::kInteriorBoundary || classes() == 3, "classes",
                 "must be 3 (background, interior, boundary) for interior/boundary targets", classes());
  require_option(scheme() != ClassScheme::kDistance || classes() >= 3, "classes",
                 "must be at least 3 (background and 2 or more distance bins) for distance targets", classes());
  require_option(scheme() != ClassScheme::kDirections || classes() == kDirectionClasses, "classes",
                 "must be " + std::to_string(kDirectionClasses) + " (background, centre and " + std::to_string(kDirections) +
                     " directions) for direction targets",
                 classes());
}

bool UNetOptions::operator==(const UNetOptions& o) const {
  return in_channels() == o.in_channels() && classes() == o.classes() && depth() == o.depth() &&
         filters() == o.filters() && padding() == o.padding() && up_kernel() == o.up_kernel() &&
         dropout() == o.dropout() && scheme() == o.scheme();
}

std::string UNetOptions::describe() const {
  return "depth " + std::to_string(depth()) + ", filters " + std::to_string(filters()) + ", " +
         to_string(padding()) + " padding, " + std::to_string(up_kernel()) + "x" +
         std::to_string(up_kernel()) + " up-sampling, " + std::to_string(in_channels()) + " -> " +
         std::to_string(classes()) + " channels" +
         (scheme() == ClassScheme::kInteriorBoundary ? " (background, interior, boundary)"
          : scheme() == ClassScheme::kDistance     ? " (background and " + std::to_string(classes() - 1) + " distance bins)"
          : scheme() == ClassScheme::kDirections   ? " (background, centre and " + std::to_string(kDirections) + " directions)"
                                                   : std::string());
}

std::string to_json(const UNetOptions& o) { return nlohmann::json(o).dump(); }

UNetOptions unet_options_from_json(const std::string& text) {
  try {
    return nlohmann::json::parse(text).get<UNetOptions>();
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string("malformed model configuration: ") + e.what());
  }
}

}  // namespace unet
