// The stream requests' factories (stream.h): each checks its request and returns the
// stream that will answer it, or the error to answer instead.
#pragma once

#include <memory>

#include "cairn/engine/status.h"
#include "server_context.h"
#include "stream.h"

namespace cairn::wire {
struct Watch;
struct Follow;
}

namespace cairn::server {

Result<std::unique_ptr<Stream>> MakeWatchStream(ServerContext& ctx, const wire::Watch* w);
// A hot snapshot of the database (snapshot_stream.cc).
Result<std::unique_ptr<Stream>> MakeSnapshotStream(ServerContext& ctx);
// A follower's change-log stream (follow_stream.cc); kDiverged, kLogTruncated or
// kBadRequest when its position cannot be served.
Result<std::unique_ptr<Stream>> MakeFollowStream(ServerContext& ctx, const wire::Follow* f);

}  // namespace cairn::server
