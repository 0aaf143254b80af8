// The stream requests' factories (stream.h): each checks its request and returns the
// stream that will answer it, or the error to answer instead.
#pragma once

#include <memory>

#include "cairn/engine/status.h"
#include "server_context.h"
#include "stream.h"

namespace cairn::wire {
struct Watch;
}

namespace cairn::server {

Result<std::unique_ptr<Stream>> MakeWatchStream(ServerContext& ctx, const wire::Watch* w);

}  // namespace cairn::server
