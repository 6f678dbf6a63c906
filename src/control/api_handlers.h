#pragma once
// The control API's RPC handlers (one per method of stakegate.v1.Control): each turns a
// request message into calls of the operations layer and fills the response message.
// Errors are thrown as OpError (or ConfigError) and mapped to HTTP by ControlApi.
#include "control.pb.h"
#include "stakegate/control/api.h"

namespace stakegate::rpc {

namespace pb = stakegate::v1;

void status(ApiContext& c, const pb::Empty&, pb::StatusResponse& r);
void get_identities(ApiContext& c, const pb::Empty&, pb::GetIdentitiesResponse& r);
void replace_identities(ApiContext& c, const pb::ReplaceIdentitiesRequest& q, pb::ReplaceIdentitiesResponse& r);
// Its halves, for ControlApi::handle_async(): the request as an upload, and the answer.
IdentityUpload upload_of(const pb::ReplaceIdentitiesRequest& q);
void fill_replace(const ApiContext& c, const PolicyState::Change& ch, pb::ReplaceIdentitiesResponse& r);
void block(ApiContext& c, const pb::BlockRequest& q, pb::BlockResponse& r);
void unblock(ApiContext& c, const pb::UnblockRequest& q, pb::UnblockResponse& r);
void list_blocklist(ApiContext& c, const pb::Empty&, pb::ListBlocklistResponse& r);
void get_role_qos(ApiContext& c, const pb::GetRoleQosRequest& q, pb::GetRoleQosResponse& r);
void set_role_qos(ApiContext& c, const pb::SetRoleQosRequest& q, pb::SetRoleQosResponse& r);
void get_node(ApiContext& c, const pb::GetNodeRequest& q, pb::GetNodeResponse& r);
void top(ApiContext& c, const pb::TopRequest& q, pb::TopResponse& r);
void reload(ApiContext& c, const pb::ReloadRequest& q, pb::ReloadResponse& r);
void fill_reload(const ApiContext& c, const PolicyState::Change& ch, pb::ReloadResponse& r);
void list_nodes(ApiContext& c, const pb::ListNodesRequest& q, pb::ListNodesResponse& r);
void open_evidence(ApiContext& c, const pb::OpenEvidenceRequest& q, pb::EvidenceCase& r);
void list_evidence(ApiContext& c, const pb::Empty&, pb::ListEvidenceResponse& r);

}  // namespace stakegate::rpc
