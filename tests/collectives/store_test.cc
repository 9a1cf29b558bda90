// The rendezvous store: semantics, waiting, and hostile input.
#include "collectives/store.h"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <thread>

#include "collectives/internal/socket.h"

namespace sublet::collectives {
namespace {

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    StoreLimits limits;
    limits.max_value_bytes = 1024;
    limits.max_total_bytes = 3000;
    auto s = TcpStoreServer::Start("127.0.0.1", 0, limits);
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = std::move(*s);
  }
  std::shared_ptr<TcpStore> Client() {
    auto c = TcpStore::Connect("127.0.0.1", server_->port(), absl::Now() + absl::Seconds(5));
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? *c : nullptr;
  }
  std::unique_ptr<TcpStoreServer> server_;
};

TEST_F(StoreTest, SetThenGet) {
  auto c = Client();
  ASSERT_TRUE(c->Set("k", std::string("v\0w", 3)).ok());
  auto v = c->Get("k", absl::Now() + absl::Seconds(1));
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, std::string("v\0w", 3));
}

TEST_F(StoreTest, GetWaitsForAnotherClientsSet) {
  auto a = Client(), b = Client();
  std::thread setter([&] { EXPECT_TRUE(b->Set("late", "x").ok()); });
  auto v = a->Get("late", absl::Now() + absl::Seconds(10));
  setter.join();
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(*v, "x");
}

TEST_F(StoreTest, GetOfMissingKeyTimesOutNamingIt) {
  auto v = Client()->Get("absent", absl::Now() + absl::Milliseconds(50));
  EXPECT_TRUE(absl::IsDeadlineExceeded(v.status())) << v.status();
  EXPECT_NE(v.status().message().find("absent"), std::string::npos);
}

TEST_F(StoreTest, AddCounts) {
  auto c = Client();
  EXPECT_EQ(*c->Add("n", 2), 2);
  EXPECT_EQ(*c->Add("n", 3), 5);
}

TEST_F(StoreTest, PrefixStoreSeparatesNamespaces) {
  std::shared_ptr<Store> base = Client();
  PrefixStore a(base, "a"), b(base, "b");
  ASSERT_TRUE(a.Set("k", "1").ok());
  ASSERT_TRUE(b.Set("k", "2").ok());
  EXPECT_EQ(*a.Get("k", absl::Now() + absl::Seconds(1)), "1");
  EXPECT_EQ(*base->Get("b/k", absl::Now() + absl::Seconds(1)), "2");
}

TEST_F(StoreTest, OversizedValueDropsOnlyThatConnection) {
  auto bad = Client();
  absl::Status s = bad->Set("big", std::string(2048, 'x'));
  EXPECT_FALSE(s.ok());
  auto good = Client();
  EXPECT_TRUE(good->Set("small", "ok").ok());
}

TEST_F(StoreTest, FullStoreRefusesWithResourceExhausted) {
  auto c = Client();
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(c->Set("k" + std::to_string(i), std::string(1000, 'x')).ok());
  absl::Status s = c->Set("k2", std::string(1000, 'x'));
  EXPECT_TRUE(absl::IsResourceExhausted(s)) << s;
}

TEST_F(StoreTest, GarbageAndOversizedKeyAreDropped) {
  auto fd = internal::Connect("127.0.0.1", server_->port(), absl::Now() + absl::Seconds(5), "raw");
  ASSERT_TRUE(fd.ok());
  const char garbage[] = {9, static_cast<char>(0xff), static_cast<char>(0xff),
                          static_cast<char>(0xff), 0x7f};
  ASSERT_TRUE(internal::WriteFull(fd->get(), garbage, sizeof(garbage),
                                  absl::Now() + absl::Seconds(1), "raw").ok());
  char byte;
  absl::Status closed = internal::ReadFull(fd->get(), &byte, 1, absl::Now() + absl::Seconds(5), "raw");
  EXPECT_TRUE(absl::IsUnavailable(closed)) << closed;  // the server hung up
  EXPECT_TRUE(Client()->Set("still", "up").ok());
}

}  // namespace
}  // namespace sublet::collectives
