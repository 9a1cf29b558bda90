// Conversion between the plain values of messages.h and their Cap'n Proto
// form (sublet.capnp). Private to protocols/: only codec.cc includes it.
//
// Writers cannot fail. Readers return InvalidArgument for values the schema
// allows but Sublet does not (a list over CodecLimits::max_list_elements, an
// unknown enum or union member); Cap'n Proto's own exceptions (bounds,
// traversal and nesting limits) pass through to the caller, which catches them.
#pragma once

#include "common/status.h"
#include "protocols/codec.h"
#include "protocols/messages.h"
#include "protocols/sublet.capnp.h"

namespace sublet::protocols::internal {

void WriteEnvelope(const Envelope& in, wire::Envelope::Builder out);
void WriteJobSpec(const JobSpec& in, wire::JobSpec::Builder out);
void WriteJobInfo(const JobInfo& in, wire::JobInfo::Builder out);
void WriteNodeInfo(const NodeInfo& in, wire::NodeInfo::Builder out);

// Reads everything but version, which the caller checks first.
absl::Status ReadEnvelope(wire::Envelope::Reader in, const CodecLimits& limits, Envelope& out);
absl::Status ReadJobSpec(wire::JobSpec::Reader in, const CodecLimits& limits, JobSpec& out);
absl::Status ReadJobInfo(wire::JobInfo::Reader in, const CodecLimits& limits, JobInfo& out);
absl::Status ReadNodeInfo(wire::NodeInfo::Reader in, const CodecLimits& limits, NodeInfo& out);

}  // namespace sublet::protocols::internal
