// users_service: a tiny user registry on cairn, the way an application server
// would use it. Users are keyed by id, with a unique index on email; sign-up
// refuses a taken email, login looks users up by email, and a profile update is
// an optimistic transaction (read, change, commit if nobody changed it meanwhile).
//
//   users_service HOST:PORT
#include <cairn/client/client.h>

#include <cstdio>
#include <string>

namespace {

class Users {
 public:
  explicit Users(std::shared_ptr<cairn::client::Client> db) : db_(std::move(db)) {
    try {
      db_->CreateCollection("users");
      db_->CreateIndex("users", {"by_email", {"email"}, /*unique=*/true});
    } catch (const cairn::client::Error& e) {
      if (e.code() != cairn::client::ErrorCode::kAlreadyExists) throw;
    }
  }

  // Returns false if the id or the email is taken.
  bool SignUp(const std::string& id, const std::string& email, const std::string& name) {
    try {
      db_->Insert("users", id,
                  cairn::client::Document::Builder().Set("email", email).Set("name", name).Set("logins", 0).Build());
      return true;
    } catch (const cairn::client::Error& e) {
      if (e.code() == cairn::client::ErrorCode::kUniqueViolation ||
          e.code() == cairn::client::ErrorCode::kAlreadyExists) {
        return false;
      }
      throw;
    }
  }

  std::optional<cairn::client::Record> FindByEmail(const std::string& email) {
    cairn::client::QueryOptions q;
    q.equal = {email};
    for (const cairn::client::Record& r : db_->Query("users", "by_email", q)) return r;
    return std::nullopt;
  }

  // Counts a login: read-modify-write, retried on conflict.
  int64_t RecordLogin(const std::string& id) {
    return db_->Transact([&](cairn::client::OptimisticTxn& t) -> int64_t {
      auto r = t.Get("users", id);
      if (!r) throw cairn::client::Error(cairn::client::ErrorCode::kNotFound, "no user " + id);
      cairn::client::Document d = r->document();
      int64_t logins = d["logins"].AsInt() + 1;
      t.Put("users", id,
            cairn::client::Document::Builder()
                .Set("email", d["email"].AsString())
                .Set("name", d["name"].AsString())
                .Set("logins", logins)
                .Build());
      return logins;
    });
  }

 private:
  std::shared_ptr<cairn::client::Client> db_;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: users_service HOST:PORT\n");
    return 2;
  }
  try {
    cairn::client::ClientOptions options;
    options.address = argv[1];
    options.client_name = "users_service";
    Users users(cairn::client::Client::Connect(options));
    std::printf("signup ada: %s\n", users.SignUp("u1", "ada@example.com", "Ada") ? "ok" : "taken");
    std::printf("signup bob: %s\n", users.SignUp("u2", "bob@example.com", "Bob") ? "ok" : "taken");
    std::printf("signup eve with ada's email: %s\n",
                users.SignUp("u3", "ada@example.com", "Eve") ? "ok" : "taken");
    auto ada = users.FindByEmail("ada@example.com");
    std::printf("find ada@example.com: %s\n", ada ? ada->key.c_str() : "none");
    users.RecordLogin("u1");
    std::printf("ada's logins: %lld\n", (long long)users.RecordLogin("u1"));
    return 0;
  } catch (const cairn::client::Error& e) {
    std::fprintf(stderr, "users_service: %s\n", e.what());
    return 1;
  }
}
