// Round trips of every message, plus error replies.
#include "protocols/codec.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

#include "tests/protocols/sample_messages.h"

namespace sublet::protocols {
namespace {

using samples::AllBodies;
using samples::WithBody;

class CodecRoundTripTest : public ::testing::TestWithParam<Body> {};

TEST_P(CodecRoundTripTest, DecodesWhatItEncoded) {
  Envelope original = WithBody(GetParam());
  absl::StatusOr<Envelope> decoded = Decode(Encode(original));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(*decoded, original);
}

TEST_P(CodecRoundTripTest, EncodesWholeWords) {
  EXPECT_EQ(Encode(WithBody(GetParam())).size() % 8, 0u);
}

INSTANTIATE_TEST_SUITE_P(EveryBody, CodecRoundTripTest, ::testing::ValuesIn(AllBodies()),
                         [](const ::testing::TestParamInfo<Body>& info) {
                           return "Body" + std::to_string(info.param.index());
                         });

TEST(CodecTest, SamplesCoverEveryBodyAlternative) {
  std::set<size_t> seen;
  for (const Body& body : AllBodies()) seen.insert(body.index());
  EXPECT_EQ(seen.size(), std::variant_size_v<Body>);
}

// Ids are UInt64 on the wire: one past INT64_MAX must not be cut or
// sign-flipped anywhere an id travels.
TEST(CodecTest, RoundTripsIdsPastInt64Max) {
  constexpr uint64_t kBig = (uint64_t{1} << 63) + 5;
  JobInfo job = samples::SampleJob(kBig);
  job.reclaim_id = kBig + 1;
  NodeInfo node = samples::SampleNode("n1");
  node.jobs = {kBig, kBig + 2, ~uint64_t{0}};
  node.reclaim_id = kBig + 1;
  ReclaimInfo reclaim = samples::SampleReclaim(kBig + 1);
  reclaim.jobs[0].job_id = kBig;
  const RankKey key{kBig, 1, 0};
  for (const Body& body : std::vector<Body>{
           GetJobRequest{kBig}, CancelJobRequest{kBig}, ReadLogsRequest{kBig, 0, 1, 0, 64},
           SubmitJobReply{kBig}, JobReply{job}, NodeListReply{{node}}, ReleaseRequest{kBig + 1, {}},
           ListReclaimsRequest{kBig + 1}, ReclaimListReply{{reclaim}},
           ReadRankLogRequest{key, 0, 64}, RankProgress{key, samples::SampleProgress()}}) {
    SCOPED_TRACE(body.index());
    Envelope original = WithBody(body);
    absl::StatusOr<Envelope> decoded = Decode(Encode(original));
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_EQ(*decoded, original);
  }
  absl::StatusOr<Envelope> decoded = Decode(Encode(WithBody(JobReply{job})));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(std::get<JobReply>(decoded->body).job.id, 9223372036854775813u);
}

TEST(CodecTest, RoundTripsDefaultValuedEnvelope) {
  Envelope original;
  original.body = JobReply{};
  absl::StatusOr<Envelope> decoded = Decode(Encode(original));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(*decoded, original);
}

TEST(CodecTest, ErrorEnvelopeRoundTripsToTheSameStatus) {
  absl::Status status = absl::NotFoundError("job 9 not found");
  absl::StatusOr<Envelope> decoded = Decode(Encode(ErrorEnvelope(77, status)));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->request_id, 77u);
  EXPECT_EQ(StatusFromReply(*decoded), status);
}

TEST(CodecTest, StatusFromReplyIsOkForOtherBodies) {
  EXPECT_TRUE(StatusFromReply(WithBody(SubmitJobReply{1})).ok());
}

TEST(CodecTest, StatusFromReplyMapsUnknownCodesToUnknown) {
  absl::Status status = StatusFromReply(WithBody(ErrorReply{999, "strange"}));
  EXPECT_EQ(status.code(), absl::StatusCode::kUnknown);
  EXPECT_EQ(status.message(), "strange");
  EXPECT_EQ(StatusFromReply(WithBody(ErrorReply{0, "ok?"})).code(), absl::StatusCode::kUnknown);
}

TEST(CodecTest, ErrorEnvelopeOfOkStatusIsNotSuccess) {
  EXPECT_FALSE(StatusFromReply(ErrorEnvelope(1, absl::OkStatus())).ok());
}

}  // namespace
}  // namespace sublet::protocols
