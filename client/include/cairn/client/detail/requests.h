// libcairn internals: the request behind each call, encoded by the library
// (client/src/codec.cc) so that the public templates never see the wire. NOT part of
// the API (docs/client.md): anything here may change in any release.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cairn/client/detail/call.h"
#include "cairn/client/stream.h"
#include "cairn/client/types.h"

namespace cairn::client::detail {

Request<bool> PingRequest();
Request<ServerStats> StatsRequest();
// Protocol 3 and later.
Request<VerifyResult> VerifyRequest();
// Protocol 5: the content digest, at commit `at` (0: the last), waiting up to `wait`.
Request<DatabaseDigest> DigestRequest(uint64_t at, std::chrono::milliseconds wait);
// Protocol 5 (replication).
Request<ReplicasInfo> ListReplicasRequest();
Request<ReplicasInfo> PromoteRequest();
// Catalog changes carry no idempotency key: never sent twice. Their answer: the
// commit number.
Request<uint64_t> CreateCollectionRequest(std::string_view name);
Request<uint64_t> DropCollectionRequest(std::string_view name);
// One page: a protocol 3 server sends the list in pages that fit in a frame (`after`:
// the previous page's `next`); older ones send it whole.
Request<CollectionsPage> ListCollectionsRequest(std::string_view after = {});
Request<CollectionInfo> DescribeCollectionRequest(std::string_view name);
Request<uint64_t> CreateIndexRequest(std::string_view collection, const IndexSpec& spec);
Request<uint64_t> DropIndexRequest(std::string_view collection, std::string_view index);

// Users, roles and permissions (protocol 6; client/src/admin_requests.cc). Changes carry
// no idempotency key (never sent twice) and answer their commit. CreateUser and
// SetPassword derive the credentials here, with `iterations` PBKDF2 rounds: the password
// goes no further.
Request<uint64_t> CreateUserRequest(std::string_view name, std::string_view password,
                                    const std::vector<std::string>& roles, uint32_t iterations);
Request<uint64_t> DropUserRequest(std::string_view name);
Request<uint64_t> SetPasswordRequest(std::string_view name, std::string_view password,
                                     uint32_t iterations);
Request<uint64_t> GrantRoleRequest(std::string_view user, std::string_view role);
Request<uint64_t> RevokeRoleRequest(std::string_view user, std::string_view role);
Request<std::vector<UserInfo>> ListUsersRequest();
Request<uint64_t> CreateRoleRequest(std::string_view name, const std::vector<Grant>& grants);
Request<uint64_t> DropRoleRequest(std::string_view name);
Request<uint64_t> GrantPermissionRequest(std::string_view role, const Grant& grant);
Request<uint64_t> RevokePermissionRequest(std::string_view role, const Grant& grant);
Request<std::vector<RoleInfo>> ListRolesRequest();

Request<TxnResult> CommitRequest(const Txn& txn);
// A Get request when the server speaks protocol 2 or later, else a one-get Txn.
Request<std::optional<Record>> GetRequest(std::string_view collection, std::string_view key,
                                          uint32_t protocol);
Request<uint64_t> PutRequest(std::string_view collection, std::string_view key,
                             const Document& doc, std::optional<uint64_t> if_version);
Request<uint64_t> InsertRequest(std::string_view collection, std::string_view key,
                                const Document& doc);
Request<uint64_t> ReplaceRequest(std::string_view collection, std::string_view key,
                                 const Document& doc, std::optional<uint64_t> if_version);
Request<bool> DeleteRequest(std::string_view collection, std::string_view key,
                            std::optional<uint64_t> if_version);
Request<RecordPage> ScanRequest(std::string_view collection, const ScanOptions& options,
                          std::string_view continuation);
Request<RecordPage> QueryRequest(std::string_view collection, std::string_view index,
                           const QueryOptions& options, std::string_view continuation);
Request<uint64_t> CountRequest(std::string_view collection, const ScanOptions& options);
Request<uint64_t> CountQueryRequest(std::string_view collection, std::string_view index,
                                    const QueryOptions& options);

}  // namespace cairn::client::detail
