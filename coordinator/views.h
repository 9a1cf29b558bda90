// What callers see of jobs and nodes: conversions from the coordinator's
// model to the wire values of protocols/messages.h.
#pragma once

#include "coordinator/cluster.h"
#include "protocols/messages.h"

namespace sublet::coordinator {

// The summary `sublet jobs` shows; `detail` adds ranks and events (`show`).
absl::StatusOr<protocols::JobInfo> JobView(const Job& job, Store* events_from);
protocols::NodeInfo NodeView(const Cluster& cluster, const Node& node);

}  // namespace sublet::coordinator
