// What callers see of jobs and nodes: conversions from the coordinator's
// model to the wire values of protocols/messages.h.
#pragma once

#include "coordinator/cluster.h"
#include "protocols/messages.h"

namespace sublet::coordinator {

// The summary `sublet jobs` shows; with `events_from`, ranks and events too
// (`show`). `now` adds the running attempt's GPU-seconds to the account.
absl::StatusOr<protocols::JobInfo> JobView(const Job& job, Store* events_from, absl::Time now);
protocols::NodeInfo NodeView(const Cluster& cluster, const Node& node);
protocols::ReclaimInfo ReclaimView(const Cluster& cluster, const Reclaim& reclaim);

}  // namespace sublet::coordinator
