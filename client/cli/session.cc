#include <ostream>
#include <utility>

#include "client/cli/cli.h"

namespace sublet::client::cli {

Session::Session(SettingFlags flags, EnvLookup env, OutputFormat format,
                 std::chrono::milliseconds timeout, std::ostream& out, std::ostream& err)
    : flags_(std::move(flags)),
      env_(std::move(env)),
      format_(format),
      timeout_(timeout),
      out_(out),
      err_(err) {}

absl::StatusOr<Client*> Session::client() {
  if (client_ == nullptr) {
    SUBLET_ASSIGN_OR_RETURN(Settings settings, ResolveSettings(flags_, env_));
    ClientOptions options;
    options.endpoint = settings.coordinator;
    options.token = settings.token;
    options.coordinator_key = settings.coordinator_key;
    options.timeout = timeout_;
    client_ = std::make_unique<Client>(std::move(options));
  }
  return client_.get();
}

int Session::PrintJson(const nlohmann::json& document) {
  out_ << DumpJson(document) << std::flush;
  return 0;
}

int Session::Fail(const absl::Status& status) {
  if (json()) {
    out_ << DumpJson(ErrorToJson(status)) << std::flush;
  } else {
    err_ << "sublet: " << status.message() << std::endl;
  }
  return ExitCodeFor(status);
}

}  // namespace sublet::client::cli
