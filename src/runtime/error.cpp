// Option errors: one sentence per bad value, naming the field so that front ends can name their flag.
#include "unet/runtime/error.h"
#include "unet/runtime/text.h"

#include "runtime/json.h"

#include <cmath>
#include <cstdio>

namespace unet {

void require_option(bool ok, const std::string& field, const std::string& requirement, const std::string& value) {
  if (!ok) throw OptionError(field, " " + requirement + " (got " + value + ")");
}

std::string number_text(double v) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", v);
  return text;
}

void require_option(bool ok, const std::string& field, const std::string& requirement, double value) {
  if (!ok) require_option(false, field, requirement, number_text(value));
}

void require_option(bool ok, const std::string& field, const std::string& requirement, int64_t value) {
  if (!ok) require_option(false, field, requirement, std::to_string(value));
}

void require_printable(const std::string& field, const std::string& what, const std::string& text) {
  for (size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x20 || c == 0x7f) {
      char code[8];
      std::snprintf(code, sizeof code, "0x%02x", c);
      throw OptionError(field, ": " + what + " holds the control character " + code + " (at byte " + std::to_string(i) +
                                   "); give one line of printable text");
    }
  }
  if (!is_utf8(text)) throw OptionError(field, ": " + what + " is not UTF-8 text");
}

std::string one_of(const std::vector<std::string>& choices) {
  std::string out;
  for (size_t i = 0; i < choices.size(); ++i) {
    if (i > 0) out += i + 1 == choices.size() ? " or " : ", ";
    out += choices[i];
  }
  return out;
}

}  // namespace unet
