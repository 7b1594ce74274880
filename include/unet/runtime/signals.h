// Stopping on request: SIGINT, SIGTERM and SIGHUP ask a long run to finish its step, save, and stop.
#pragma once

#include "unet/runtime/error.h"

#include <array>
#include <csignal>
#include <memory>
#include <string>

namespace unet {

/// The signals that ask a run to stop (a terminal's Ctrl-C, a scheduler's stop, a closed terminal).
inline constexpr std::array<int, 3> kStopSignals = {SIGINT, SIGTERM, SIGHUP};

/// Installs handlers for SIGINT, SIGTERM and SIGHUP: the first such signal only records the
/// request (`stop_requested`); a second one ends the process at once, as the signal would have.
void install_stop_handlers();

/// The signal that asked this process to stop, or 0.
int stop_requested();

/// Asks the running work to stop as `signal` would (an embedding program's own reason to stop,
/// e.g. an exception in its progress callback).
void request_stop(int signal);

/// For a program that embeds unet's commands (the Python package): the stop handlers that a
/// command installs (`install_stop_handlers`) last while the scope does; on destruction the
/// handlers found before are restored and any request is forgotten, so that the next run starts
/// afresh. No stop is pending when it begins.
class StopScope {
 public:
  StopScope();
  ~StopScope();
  StopScope(const StopScope&) = delete;
  StopScope& operator=(const StopScope&) = delete;

 private:
  struct Saved;
  std::unique_ptr<Saved> saved_;
};

/// "SIGINT", "SIGTERM", "SIGHUP", or "signal N".
std::string signal_name(int signal);

/// Thrown by a run that stopped on request after saving its state; the process then exits with
/// the conventional 128 + signal number.
class Stopped : public Error {
 public:
  Stopped(int signal, const std::string& message) : Error(message), signal_(signal) {}
  int signal() const noexcept { return signal_; }
  int exit_code() const noexcept { return 128 + signal_; }

 private:
  int signal_;
};

}  // namespace unet
