#pragma once
// Readers of the config sections about traffic the gateway lets through besides the
// identity table: cluster, sessions, infra, request_channel (config.cc reads the rest).
#include "stakegate/config/config.h"
#include "stakegate/config/yaml_reader.h"

namespace stakegate::config_sections {

void read_cluster(const YamlReader& r, ClusterConfig& c);
void read_sessions(const YamlReader& r, SessionConfig& s);
void read_infra(const YamlReader& r, InfraConfig& i);
void read_request_channel(const YamlReader& r, RequestChannelConfig& q);

}  // namespace stakegate::config_sections
