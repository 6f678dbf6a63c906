#pragma once
// Reading the files an operator names (config, identity table, stakes, tokens). Only
// regular files are read, opened without blocking and up to a size cap: a FIFO or a
// device named by mistake must be refused, not hang the control plane.
#include <cstddef>
#include <string>

namespace stakegate {

inline constexpr size_t kMaxInputFileBytes = 256u << 20;  // a 1M-node identity table is ~300 MB of snapshot JSON at most

// The whole file. Throws ConfigError(referenced_from, key, "...'path'...: why").
std::string read_text_file(const std::string& path, const std::string& referenced_from, const std::string& key,
                           size_t max_bytes = kMaxInputFileBytes);

// Replaces `path` with `content` so that a crash leaves the old file or the new one, never
// a torn one: a temporary file beside it, fsync, rename, fsync of the directory. Throws
// std::runtime_error naming the file.
void write_file_atomically(const std::string& path, const std::string& content, unsigned mode);

}  // namespace stakegate
