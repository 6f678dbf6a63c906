#pragma once
// stakegatectl's human-readable tables, one per answer type.
#include "control.pb.h"

namespace stakegate::ctl {

namespace pb = stakegate::v1;

void print(const pb::StatusResponse& r);
void print(const pb::TopResponse& r);
void print(const pb::GetIdentitiesResponse& r);
void print(const pb::ListBlocklistResponse& r);
void print(const pb::GetRoleQosResponse& r);
void print(const pb::GetNodeResponse& r);
void print(const pb::ListNodesResponse& r);
void print(const pb::ListEvidenceResponse& r);
void print(const pb::EvidenceCase& r);
// Changes: "ok: generation N" and any warnings.
void print_change(uint64_t generation, const google::protobuf::RepeatedPtrField<std::string>& warnings);

}  // namespace stakegate::ctl
