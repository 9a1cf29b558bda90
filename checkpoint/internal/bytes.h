// Little-endian encoding for the checkpoint's own binary records (MANIFEST,
// COMMIT, the messages ranks exchange while saving). ByteReader never reads
// past its input: every accessor fails once the input is short, and the
// caller turns that into DataLoss in one place.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace sublet::checkpoint::internal {

class ByteWriter {
 public:
  void U8(uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void U32(uint32_t v) { Le(v, 4); }
  void U64(uint64_t v) { Le(v, 8); }
  void I64(int64_t v) { Le(static_cast<uint64_t>(v), 8); }
  void Bytes(std::string_view s) {
    U64(s.size());
    out_.append(s);
  }
  std::string& str() { return out_; }

 private:
  void Le(uint64_t v, int n) {
    for (int i = 0; i < n; ++i) out_.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  }
  std::string out_;
};

class ByteReader {
 public:
  explicit ByteReader(std::string_view in) : in_(in) {}

  bool U8(uint8_t* v) {
    uint64_t x;
    if (!Le(&x, 1)) return false;
    *v = static_cast<uint8_t>(x);
    return true;
  }
  bool U32(uint32_t* v) {
    uint64_t x;
    if (!Le(&x, 4)) return false;
    *v = static_cast<uint32_t>(x);
    return true;
  }
  bool U64(uint64_t* v) { return Le(v, 8); }
  bool I64(int64_t* v) {
    uint64_t x;
    if (!Le(&x, 8)) return false;
    *v = static_cast<int64_t>(x);
    return true;
  }
  // A length-prefixed string of at most `max` bytes.
  bool Bytes(std::string* s, uint64_t max) {
    uint64_t n;
    if (!U64(&n) || n > max || n > in_.size() - pos_) return false;
    s->assign(in_.substr(pos_, n));
    pos_ += n;
    return true;
  }
  size_t remaining() const { return in_.size() - pos_; }
  size_t position() const { return pos_; }

 private:
  bool Le(uint64_t* v, int n) {
    if (in_.size() - pos_ < static_cast<size_t>(n)) return false;
    uint64_t x = 0;
    for (int i = 0; i < n; ++i) x |= static_cast<uint64_t>(static_cast<uint8_t>(in_[pos_ + i])) << (8 * i);
    pos_ += n;
    *v = x;
    return true;
  }
  std::string_view in_;
  size_t pos_ = 0;
};

}  // namespace sublet::checkpoint::internal
