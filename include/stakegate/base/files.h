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

// Whether files can be made in folder `dir`, or (when it does not exist yet) in the
// folder it would be made in: a file is made there and removed, the one test that holds
// for root and read-only mounts alike. Empty when they can, else what stands in the way
// ("/proc/sys: No such file or directory", "/etc/hostname is not a folder").
std::string folder_problem(const std::string& dir);

}  // namespace stakegate
