// `sublet audit` against a fake coordinator.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/client/cli_fixture.h"

namespace sublet::client::cli {
namespace {

using protocols::Body;
using protocols::Envelope;
using testing::FakeCoordinator;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr int64_t kTime = 1'800'000'000'000;  // 2027-01-15T08:00:00Z

Body TwoEntries(const Envelope&) {
  return protocols::AuditListReply{
      {{kTime, "infra", "reclaim", "reclaim 1: nodes node-a (named), deadline 60s"},
       {kTime + 1500, "acme", "reclaim_refused", "acme is not an admin"}}};
}

TEST_F(CliTest, AuditPrintsATableOldestFirst) {
  FakeCoordinator fake(TwoEntries);
  EXPECT_EQ(RunAgainst(fake, {"audit"}), 0);
  EXPECT_THAT(out_.str(), StartsWith("TIME                      WHO    ACTION           DETAIL\n"
                                     "2027-01-15T08:00:00.000Z  infra  reclaim          "
                                     "reclaim 1: nodes node-a (named), deadline 60s\n"
                                     "2027-01-15T08:00:01.500Z  acme   reclaim_refused  "
                                     "acme is not an admin\n"));
  const auto& sent = std::get<protocols::ListAuditRequest>(fake.requests().at(0).body);
  EXPECT_EQ(sent.limit, 100u) << "the default";
  EXPECT_EQ(sent.since_ms, 0);
}

TEST_F(CliTest, AuditInJsonModeIsOneDocument) {
  FakeCoordinator fake(TwoEntries);
  EXPECT_EQ(RunAgainst(fake, {"-o", "json", "audit"}), 0);
  nlohmann::json doc = nlohmann::json::parse(out_.str());
  ASSERT_EQ(doc["entries"].size(), 2u);
  EXPECT_EQ(doc["entries"][1], nlohmann::json({{"time", "2027-01-15T08:00:01.500Z"},
                                               {"who", "acme"},
                                               {"action", "reclaim_refused"},
                                               {"detail", "acme is not an admin"}}));
}

TEST_F(CliTest, AuditSendsSinceAndLimit) {
  FakeCoordinator fake(TwoEntries);
  EXPECT_EQ(RunAgainst(fake, {"audit", "--since", "2h", "--limit", "5"}), 0);
  const auto& sent = std::get<protocols::ListAuditRequest>(fake.requests().at(0).body);
  EXPECT_EQ(sent.since_ms, 2 * 3'600'000);
  EXPECT_EQ(sent.limit, 5u);
}

TEST_F(CliTest, AuditRefusesABadSinceOrLimitNamingTheFlag) {
  FakeCoordinator fake(TwoEntries);
  EXPECT_EQ(RunAgainst(fake, {"audit", "--since", "yesterday"}), 2);
  EXPECT_THAT(err_.str(), HasSubstr("--since"));
  EXPECT_EQ(RunAgainst(fake, {"audit", "--limit", "0"}), 2);
  EXPECT_THAT(err_.str(), HasSubstr("--limit"));
  EXPECT_TRUE(fake.requests().empty());
}

TEST_F(CliTest, AuditAsATenantExitsFour) {
  FakeCoordinator fake([](const Envelope&) -> Body {
    return protocols::ErrorReply{static_cast<uint32_t>(absl::StatusCode::kPermissionDenied),
                                 "acme is not an admin: only admins may read the audit log"};
  });
  EXPECT_EQ(RunAgainst(fake, {"audit"}), 4);
  EXPECT_THAT(err_.str(), HasSubstr("only admins may read the audit log"));
}

}  // namespace
}  // namespace sublet::client::cli
