// Catalog replies (ListCollections, DescribeCollection) that always fit in a frame.
//
// A collection's description grows with its indexes, and the list with the
// collections, while a reply must fit in --max-frame. So CreateIndex refuses an index
// that would make its collection's description too large to send (CheckIndexFits),
// and ListCollections is paged on protocol 3: a page holds the collections that fit,
// and names where the next one starts. Sizes are upper bounds on the FlatBuffers
// encoding, so a page built to fit does fit.
#pragma once

#include <string_view>
#include <vector>

#include "cairn/engine/engine.h"
#include "flatbuffers/flatbuffers.h"

namespace cairn::server {

// At most the bytes `c` takes in a Collections reply. With `reserve_errors`, a building
// index is counted with the longest error it may end with (a failed unique build names
// two keys), so that the bound still holds when the build fails.
size_t CollectionReplyBytes(const CollectionInfo& c, bool reserve_errors);

// Builds the reply to ListCollections { after } in `fbb`: the collections whose names
// sort after `after` (all of them if empty), in name order. With `paged` (the connection
// agreed on protocol 3 or later), as many as fit in `max_frame`, and `next` set to the
// last one's name when more follow; without, all of them or TooLarge.
Status BuildCollectionsPage(flatbuffers::FlatBufferBuilder& fbb, uint64_t id,
                            const std::vector<CollectionInfo>& all, std::string_view after,
                            bool paged, uint32_t max_frame);

// Builds the reply to DescribeCollection, or TooLarge (possible only if cairnd was
// restarted with a smaller --max-frame than the one its indexes were created under).
Status BuildDescription(flatbuffers::FlatBufferBuilder& fbb, uint64_t id,
                        const CollectionInfo& c, uint32_t max_frame);

// For CreateIndex (on the writer thread, where catalog changes run one at a time):
// TooLarge if `collection` with the index `spec` added could no longer be described in
// one frame of `max_frame` bytes. Ok otherwise, and when the collection is missing or
// already has an index of that name (Engine::CreateIndex says so).
Status CheckIndexFits(const Engine& engine, std::string_view collection, const IndexSpec& spec,
                      uint32_t max_frame);

}  // namespace cairn::server
