// Hostile frames: every one must come back as an error status (or, for random
// bytes that happen to form a message, a valid envelope), never a crash.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>

#include "protocols/codec.h"
#include "tests/protocols/sample_messages.h"

namespace sublet::protocols {
namespace {

using samples::SampleJob;
using samples::SampleNode;
using samples::SampleReport;
using samples::WithBody;

// Byte offsets in a single-segment frame: an 8-byte segment table, the root
// pointer, then the Envelope's data section (version at 0, union tag at 2).
constexpr size_t kEnvelopeData = 16;
constexpr size_t kBodyTag = kEnvelopeData + 2;

class CodecHostileTest : public ::testing::Test {
 protected:
  std::string JobFrame() const { return Encode(WithBody(JobReply{SampleJob(1)})); }

  static void ExpectInvalid(const std::string& frame, const CodecLimits& limits = {},
                            const std::string& mentions = "") {
    absl::StatusOr<Envelope> decoded = Decode(frame, limits);
    ASSERT_FALSE(decoded.ok());
    EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInvalidArgument) << decoded.status();
    EXPECT_NE(std::string(decoded.status().message()).find(mentions), std::string::npos)
        << decoded.status();
  }

  static void ExpectValidOrDecodeError(const absl::StatusOr<Envelope>& decoded) {
    if (decoded.ok()) return;
    EXPECT_TRUE(absl::IsInvalidArgument(decoded.status()) ||
                absl::IsFailedPrecondition(decoded.status()))
        << decoded.status();
  }
};

TEST_F(CodecHostileTest, RejectsEmptyFrame) { ExpectInvalid("", {}, "empty"); }

TEST_F(CodecHostileTest, RejectsEveryTruncationOfAValidFrame) {
  const std::string frame = JobFrame();
  for (size_t length = 0; length < frame.size(); ++length) {
    SCOPED_TRACE(length);
    ExpectInvalid(frame.substr(0, length));
  }
}

TEST_F(CodecHostileTest, RejectsSizeThatIsNotWholeWords) {
  ExpectInvalid(JobFrame() + "x", {}, "8-byte");
}

TEST_F(CodecHostileTest, RejectsTrailingBytes) {
  ExpectInvalid(JobFrame() + std::string(8, '\0'), {}, "trailing");
}

TEST_F(CodecHostileTest, RejectsFrameOverTheSizeLimit) {
  CodecLimits limits;
  limits.max_frame_bytes = 64;
  ExpectInvalid(JobFrame(), limits, "exceeds the limit of 64");
}

TEST_F(CodecHostileTest, RefusesOtherProtocolVersions) {
  for (uint16_t version : {uint16_t{0}, uint16_t{kProtocolVersion + 1}}) {
    SCOPED_TRACE(version);
    Envelope envelope = WithBody(ListNodesRequest{});
    envelope.version = version;
    absl::StatusOr<Envelope> decoded = Decode(Encode(envelope));
    ASSERT_FALSE(decoded.ok());
    EXPECT_EQ(decoded.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_EQ(decoded.status().message(),
              fmt::format("peer speaks protocol version {}, this build speaks version {}", version,
                          kProtocolVersion));
  }
}

// Version 1 carried job and reclaim ids as Text; version 2 retyped them to
// UInt64. A version-1 frame must be refused before any body field is read,
// or its id pointers would be misread as numbers.
TEST_F(CodecHostileTest, RefusesVersionOneFramesWithTextIds) {
  ASSERT_EQ(kProtocolVersion, 2);
  Envelope envelope = WithBody(GetJobRequest{7});
  envelope.version = 1;
  absl::StatusOr<Envelope> decoded = Decode(Encode(envelope));
  ASSERT_FALSE(decoded.ok());
  EXPECT_EQ(decoded.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(decoded.status().message(),
            "peer speaks protocol version 1, this build speaks version 2");
}

TEST_F(CodecHostileTest, RejectsATenantRowWithAPriorityThatDoesNotExist) {
  TenantInfo row;
  row.name = "acme";
  row.max_priority = static_cast<Priority>(9);
  ExpectInvalid(Encode(WithBody(TenantListReply{{row}, true, 8})), {},
                "TenantInfo.maxPriority: 9 is not a priority");
}

TEST_F(CodecHostileTest, RejectsUnknownBodyMember) {
  std::string frame = Encode(WithBody(ListNodesRequest{}));
  ASSERT_EQ(frame[kEnvelopeData], kProtocolVersion);  // layout assumption of this test
  uint16_t tag = 999;
  std::memcpy(&frame[kBodyTag], &tag, sizeof(tag));
  ExpectInvalid(frame, {}, "unknown message body");
}

TEST_F(CodecHostileTest, RejectsSegmentTableClaimingHugeSegments) {
  std::string frame(16, '\0');
  uint32_t table[2] = {0, 0x7fffffff};  // one segment of 2^31 words
  std::memcpy(frame.data(), table, sizeof(table));
  ExpectInvalid(frame, {}, "malformed frame");
}

TEST_F(CodecHostileTest, RejectsSegmentTableClaimingHugeSegmentCount) {
  std::string frame(16, '\0');
  uint32_t count = 0xfffffffe;
  std::memcpy(frame.data(), &count, sizeof(count));
  ExpectInvalid(frame, {}, "malformed frame");
}

TEST_F(CodecHostileTest, RejectsListOverTheElementLimit) {
  CodecLimits limits;
  limits.max_list_elements = 1;
  ExpectInvalid(Encode(WithBody(NodeListReply{{SampleNode("n1"), SampleNode("n2")}})), limits,
                "NodeListReply.nodes");
}

TEST_F(CodecHostileTest, RejectsNestedListOverTheElementLimit) {
  CodecLimits limits;
  limits.max_list_elements = 1;
  ExpectInvalid(Encode(WithBody(SampleReport())), limits, "WorkerReport.gpus");
}

TEST_F(CodecHostileTest, RejectsMessagesWithTooManyElementsInAll) {
  CodecLimits limits;
  limits.max_total_elements = 20;  // each sample job alone is under it
  JobListReply list;
  for (uint64_t i = 1; i <= 4; ++i) list.jobs.push_back(SampleJob(i));
  ExpectInvalid(Encode(WithBody(list)), limits, "list elements in all");
}

TEST_F(CodecHostileTest, StopsAtTheTraversalLimit) {
  CodecLimits limits;
  limits.traversal_limit_words = 64;
  JobListReply list;
  for (uint64_t i = 1; i <= 50; ++i) list.jobs.push_back(SampleJob(i));
  ExpectInvalid(Encode(WithBody(list)), limits, "malformed frame");
}

TEST_F(CodecHostileTest, StopsAtTheNestingLimit) {
  CodecLimits limits;
  limits.nesting_limit = 2;
  ExpectInvalid(JobFrame(), limits, "malformed frame");
}

TEST_F(CodecHostileTest, SurvivesRandomFrames) {
  std::mt19937_64 random(20240601);
  for (int i = 0; i < 3000; ++i) {
    std::string frame((random() % 64) * 8, '\0');
    for (char& c : frame) c = static_cast<char>(random());
    ExpectValidOrDecodeError(Decode(frame));
  }
}

// Flipping bytes of a real frame gets past the segment table far more often
// than pure noise, so pointers and list sizes are what gets attacked.
TEST_F(CodecHostileTest, SurvivesCorruptedValidFrames) {
  const std::string valid = JobFrame();
  std::mt19937_64 random(7);
  int rejected = 0;
  for (int i = 0; i < 3000; ++i) {
    std::string frame = valid;
    for (int flips = 1 + random() % 4; flips > 0; --flips)
      frame[random() % frame.size()] = static_cast<char>(random());
    absl::StatusOr<Envelope> decoded = Decode(frame);
    ExpectValidOrDecodeError(decoded);
    rejected += decoded.ok() ? 0 : 1;
  }
  EXPECT_GT(rejected, 0);
}

}  // namespace
}  // namespace sublet::protocols
