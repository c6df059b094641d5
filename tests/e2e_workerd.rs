//! End-to-end suite: the JSON API contract of the example Worker
//! (`examples/worker`) under workerd, through `wrangler dev --local`, with
//! three local D1 shards, a KV namespace for the mappings and the
//! `ShardCoordinator` Durable Object; and the remote calls each operation
//! costs (the `x-collegedb-calls` header).
//!
//! The other end-to-end suites: `e2e_admin` (who may use the administrative
//! routes) and `e2e_concurrency` (racing inserts, and updates during a
//! rebalance). All are ignored by plain `cargo test` because they need the
//! local Cloudflare tools. Run them with
//!
//! ```text
//! scripts/test.sh                                        # everything, tools included
//! scripts/cloudflare-tools.sh >/dev/null && \
//!   cargo test --test e2e_workerd --test e2e_admin --test e2e_concurrency -- --include-ignored --nocapture
//! ```
//!
//! What it does, in order: builds the Worker (`scripts/build-worker.sh`, a
//! no-op when nothing changed), starts `wrangler dev` in its own process
//! group with a fresh state directory, a random `ADMIN_TOKEN` and
//! `DEPLOYMENT=development`, runs every check (recording each result), stops
//! the process group, checks the D1 files on disk, and prints a pass/fail
//! table, the measured call costs and the latency per route class. See
//! `tests/e2e/harness.rs` for the environment knobs.

#[path = "e2e/mod.rs"]
#[macro_use]
mod e2e;

use std::collections::BTreeMap;
use std::fs;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use e2e::harness::{
    bearer, expect, expect_body, expect_calls, expect_error, show, Client, Resp, Runner, Worker,
    SHARDS,
};
use e2e::users::{Key, User, Users};
use serde_json::{json, Value};

/// 2^53 - 1, the largest integer a JS number holds exactly.
const MAX_SAFE: i64 = 9_007_199_254_740_991;
/// 2^53 + 1: must be refused with `integer_out_of_range`.
const BEYOND_SAFE: i64 = 9_007_199_254_740_993;
const USERS: usize = 60;
const POSTS: i64 = 30;

struct Suite {
    c: Client,
    /// `Bearer <ADMIN_TOKEN>`.
    admin: String,
    /// The users that should exist now, by id.
    users: BTreeMap<String, User>,
    /// The posts that should exist now: id -> (author, title).
    posts: BTreeMap<i64, (String, String)>,
    /// `/distribution` at the end of the HTTP checks.
    final_dist: Option<Vec<(String, u64, u64)>>,
    /// Measured `x-collegedb-calls` per operation.
    costs: Vec<(String, String)>,
}

/// `v` is the post `id` by `author` titled `title`.
fn post_matches(what: &str, v: &Value, id: i64, author: &str, title: &str) -> Result<(), String> {
    ensure!(
        v.get("id").and_then(Value::as_i64) == Some(id)
            && v.get("author_id").and_then(Value::as_str) == Some(author)
            && v.get("title").and_then(Value::as_str) == Some(title),
        "{what}: got {v}"
    );
    Ok(())
}

impl Suite {
    fn u(&self) -> Users<'_> {
        Users {
            c: &self.c,
            prefix: "",
        }
    }

    /// An administrative request (with the bearer token).
    fn admin(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Resp, String> {
        let body = body.map(Value::to_string);
        self.c.req_auth(
            &format!("{method} {path}"),
            method,
            path,
            body.as_deref(),
            Some(&self.admin),
        )
    }

    /// GET `path`, expecting 200 and a JSON body.
    fn get_json(&self, class: &str, path: &str) -> Result<Value, String> {
        expect(&format!("GET {path}"), self.c.get(class, path)?, 200)
    }

    /// `{"shard": ..}` from a `/…/shard` route, one of [`SHARDS`].
    fn shard_of(&self, class: &str, path: &str) -> Result<String, String> {
        let v = self.get_json(class, path)?;
        let shard = v
            .get("shard")
            .and_then(Value::as_str)
            .ok_or(format!("GET {path}: no \"shard\" in {v}"))?;
        ensure!(
            SHARDS.contains(&shard),
            "GET {path}: unknown shard {shard:?}"
        );
        Ok(shard.to_owned())
    }

    fn user_shard(&self, id: &str) -> Result<String, String> {
        let shard = self.u().shard(id)?;
        ensure!(
            SHARDS.contains(&shard.as_str()),
            "GET /users/{id}/shard: unknown shard {shard:?}"
        );
        Ok(shard)
    }

    fn post_shard(&self, id: i64) -> Result<String, String> {
        self.shard_of("GET /posts/{id}/shard", &format!("/posts/{id}/shard"))
    }

    /// `/distribution` as shard -> (users, posts), checking its shape.
    fn distribution(&self) -> Result<Vec<(String, u64, u64)>, String> {
        let v = self.get_json("GET /distribution", "/distribution")?;
        let arr = v
            .as_array()
            .ok_or(format!("GET /distribution: expected an array, got {v}"))?;
        let mut out = Vec::new();
        for e in arr {
            let shard = e.get("shard").and_then(Value::as_str);
            let users = e.get("users").and_then(Value::as_u64);
            let posts = e.get("posts").and_then(Value::as_u64);
            match (shard, users, posts) {
                (Some(s), Some(u), Some(p)) => out.push((s.to_owned(), u, p)),
                _ => return Err(format!("GET /distribution: bad entry {e} in {v}")),
            }
        }
        let names: Vec<&str> = out.iter().map(|(s, _, _)| s.as_str()).collect();
        ensure!(
            names == SHARDS,
            "GET /distribution: expected shards {SHARDS:?} in order, got {names:?}"
        );
        Ok(out)
    }

    /// `/distribution`, whose `what` column (read by `col`) must give each
    /// shard as many rows as `/{what}/{id}/shard` puts there (`placed`), and
    /// `total` in all.
    fn distribution_agrees(
        &self,
        what: &str,
        col: fn(&(String, u64, u64)) -> u64,
        placed: Vec<String>,
        total: usize,
    ) -> Result<Vec<(String, u64, u64)>, String> {
        let mut by_shard: BTreeMap<String, u64> = BTreeMap::new();
        for shard in placed {
            *by_shard.entry(shard).or_default() += 1;
        }
        let dist = self.distribution()?;
        for d in &dist {
            let (shard, n) = (&d.0, col(d));
            let want = by_shard.get(shard).copied().unwrap_or(0);
            ensure!(
                n == want,
                "GET /distribution: {shard} has {n} {what}, but /{what}/{{id}}/shard puts {want} there"
            );
        }
        let sum: u64 = dist.iter().map(col).sum();
        ensure!(
            sum == total as u64,
            "GET /distribution: {sum} {what} in all, expected {total}"
        );
        Ok(dist)
    }

    fn count(&self, what: &str) -> Result<u64, String> {
        let class = format!("GET /{what}/count");
        let v = self.get_json(&class, &format!("/{what}/count"))?;
        v.get("count")
            .and_then(Value::as_u64)
            .ok_or(format!("{class}: expected {{\"count\":n}}, got {v}"))
    }

    /// `/{what}/count` must be `want`.
    fn expect_count(&self, what: &str, want: usize) -> Result<(), String> {
        let n = self.count(what)?;
        ensure!(
            n == want as u64,
            "GET /{what}/count: expected {want}, got {n}"
        );
        Ok(())
    }

    /// `GET /{what}` must be an array whose `id`s are `want`, in that order.
    fn expect_list(&self, what: &str, want: Vec<Value>) -> Result<Vec<Value>, String> {
        let path = format!("/{what}");
        let v = self.get_json(&format!("GET {path}"), &path)?;
        let Value::Array(arr) = v else {
            return Err(format!(
                "GET {path}: expected an array, got {}",
                show(&v.to_string())
            ));
        };
        let ids: Vec<&Value> = arr.iter().filter_map(|x| x.get("id")).collect();
        ensure!(
            ids.iter().copied().eq(want.iter()),
            "GET {path}: expected ids {}, got {}",
            json!(want),
            json!(ids)
        );
        Ok(arr)
    }

    /// `POST /coordinator/claim`, expecting 200; the reply.
    fn claim(&self, body: Value) -> Result<Value, String> {
        let what = format!("POST /coordinator/claim {body}");
        expect(
            &what,
            self.admin("POST", "/coordinator/claim", Some(&body))?,
            200,
        )
    }

    /// The shard a granted claim reply names.
    fn granted_shard(what: &str, reply: &Value) -> Result<String, String> {
        reply
            .pointer("/granted/shard")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or(format!(
                "{what}: expected {{\"granted\":{{\"shard\"..}}}}, got {reply}"
            ))
    }

    /// `POST /coordinator/holders` for `keys`.
    fn holders(&self, keys: &[&str]) -> Result<Vec<Value>, String> {
        let body = json!(keys);
        let v = expect(
            &format!("POST /coordinator/holders {body}"),
            self.admin("POST", "/coordinator/holders", Some(&body))?,
            200,
        )?;
        v.as_array().cloned().ok_or(format!(
            "POST /coordinator/holders: expected an array, got {v}"
        ))
    }

    /// Records the calls header of `resp` for the cost table.
    fn cost(&mut self, operation: &str, resp: &Resp) {
        self.costs.push((
            operation.to_owned(),
            resp.calls.clone().unwrap_or_else(|| "(no header)".into()),
        ));
    }
}

/// A claim request body with one key.
fn claim_body(owner: &str, incarnation: &str, key: &str, placement: bool, target: Value) -> Value {
    json!({
        "owner": owner,
        "incarnation": incarnation,
        "nonce": format!("{owner}-{incarnation}-nonce"),
        "target": target,
        "claims": [{"key": key, "placement": placement}],
    })
}

fn run_checks(s: &mut Runner<Suite>) {
    // --- setup and basics --------------------------------------------------
    s.fatal("POST /setup (admin) creates the schemas", |s| {
        expect_body(
            "POST /setup",
            s.admin("POST", "/setup", None)?,
            200,
            json!({"ok": true}),
        )
    });
    s.check("GET /region", |s| {
        let v = s.get_json("GET /region", "/region")?;
        let region = v.get("region").and_then(Value::as_str).unwrap_or("");
        ensure!(
            !region.is_empty(),
            "GET /region: expected {{\"region\":\"..\"}}, got {v}"
        );
        eprintln!("[e2e]       region = {region}");
        Ok(())
    });
    s.check("GET /coordinator/health is OK (no token needed)", |s| {
        let r = s.c.get("GET /coordinator/health", "/coordinator/health")?;
        ensure!(
            r.status == 200 && r.body.trim() == "OK",
            "GET /coordinator/health: expected 200 OK, got {} {}",
            r.status,
            show(&r.body)
        );
        Ok(())
    });
    s.check("empty state: counts 0, empty lists", |s| {
        s.expect_count("users", 0)?;
        s.expect_count("posts", 0)?;
        let v = s.get_json("GET /users", "/users")?;
        ensure!(v == json!([]), "GET /users: expected [], got {v}");
        Ok(())
    });

    // --- users: create and read through every key ----------------------------
    s.fatal(&format!("POST /users x{USERS} -> 201 with the user"), |s| {
        for i in 0..USERS {
            let u = User::nth(i);
            s.u().create(&u)?;
            s.users.insert(u.id.clone(), u);
        }
        Ok(())
    });
    s.check(
        "GET /users/{id}, /by-email/{email}, /by-username/{username} resolve every user",
        |s| s.users.values().try_for_each(|u| s.u().resolves(u)),
    );
    s.check("unknown user id/email/username -> 404", |s| {
        s.u().expect_404(Key::Id, "no-such-user")?;
        s.u().expect_404(Key::Email, "nobody@example.com")?;
        s.u().expect_404(Key::Username, "nobody")
    });
    s.check("GET /users lists every user ordered by id (fan-out)", |s| {
        let arr = s.expect_list("users", s.users.keys().map(|id| json!(id)).collect())?;
        for (got, u) in arr.iter().zip(s.users.values()) {
            u.matches(got).map_err(|e| format!("GET /users: {e}"))?;
        }
        Ok(())
    });
    s.check("GET /users/count (fan-out)", |s| {
        s.expect_count("users", s.users.len())
    });
    s.check(
        "users are spread over several D1 shards; /distribution agrees with /users/{id}/shard",
        |s| {
            let placed = s
                .users
                .keys()
                .map(|id| s.user_shard(id))
                .collect::<Result<_, _>>()?;
            let dist = s.distribution_agrees("users", |d| d.1, placed, s.users.len())?;
            let used = dist.iter().filter(|(_, u, _)| *u > 0).count();
            eprintln!("[e2e]       users per shard: {dist:?}");
            ensure!(
                used >= 2,
                "GET /distribution: users on only {used} shard(s): {dist:?}"
            );
            if used < 3 {
                eprintln!("[e2e]       note: users on {used} of 3 shards");
            }
            Ok(())
        },
    );

    // --- remote calls per operation (x-collegedb-calls) ------------------------
    s.check(
        "x-collegedb-calls: get by id 1 D1; insert 1 claim + 1 D1 + 2 KV puts; update 1 D1; delete 1 D1 + 1 release + 2 KV deletes",
        |s| {
            let u = User {
                id: "cost-user".into(),
                email: "cost@example.com".into(),
                username: "cost_user".into(),
                name: "Cost".into(),
                age: Some(40),
            };
            let r = s.c.send("POST /users", "POST", "/users", &u.create_body())?;
            s.cost("insert (2 lookups)", &r);
            expect_calls("POST /users", &r, "shard=1,mappings=2,coordinator=1")?;
            expect("POST /users", r, 201)?;

            let r = s.c.get(&Key::Id.class("GET"), &Key::Id.path(&u.id))?;
            s.cost("get by id (hash)", &r);
            expect_calls("GET /users/{id}", &r, "shard=1,mappings=0,coordinator=0")?;
            u.matches(&expect("GET /users/{id}", r, 200)?)?;

            let r = s.c.get(&Key::Email.class("GET"), &Key::Email.path(&u.email))?;
            s.cost("get by email (KV record written by the insert)", &r);
            u.matches(&expect("GET /users/by-email/{email}", r, 200)?)?;

            let r = s.c.get(&Key::Username.class("GET"), &Key::Username.path("no_such_username"))?;
            s.cost("get by username, no such user", &r);
            expect_error("GET /users/by-username/{missing}", r, 404, None)?;

            let renamed = User {
                name: "Cost Renamed".into(),
                ..u.clone()
            };
            let (what, r) = s.u().put(&renamed)?;
            s.cost("update, no lookup changed", &r);
            expect_calls(&what, &r, "shard=1,mappings=0,coordinator=0")?;
            renamed.matches(&expect(&what, r, 200)?)?;

            let moved = User {
                email: "cost-renamed@example.com".into(),
                ..renamed.clone()
            };
            let (what, r) = s.u().put(&moved)?;
            s.cost("update, one lookup changed", &r);
            moved.matches(&expect(&what, r, 200)?)?;

            let r = s.c.req(&Key::Id.class("DELETE"), "DELETE", &Key::Id.path(&u.id), None)?;
            s.cost("delete by id", &r);
            expect_calls("DELETE /users/{id}", &r, "shard=1,mappings=2,coordinator=1")?;
            expect_body("DELETE /users/{id}", r, 200, json!({"deleted": true}))?;
            s.u().gone(&moved)?;

            for (class, path, op) in [
                ("GET /users/count", "/users/count", "count (fan-out)"),
                ("GET /users", "/users", "list (fan-out)"),
            ] {
                let r = s.c.get(class, path)?;
                s.cost(op, &r);
                expect(class, r, 200)?;
            }
            Ok(())
        },
    );

    // --- users: conflicts leave nothing behind --------------------------------
    // A create clashing with `orig` on one key is refused as a whole: the
    // would-be user's other keys do not resolve and `orig` is unchanged.
    // `then_email`: its id was not claimed, so it can then be created with
    // this fresh email.
    struct Clash {
        name: &'static str,
        orig: &'static str,
        key: Key,
        code: &'static str,
        dup: User,
        then_email: Option<&'static str>,
    }
    let dup = |id: &str, email: &str, username: &str, age| User {
        id: id.into(),
        email: email.into(),
        username: username.into(),
        name: "Dup".into(),
        age,
    };
    for c in [
        Clash {
            name: "duplicate id -> 409 duplicate_key, nothing left behind",
            orig: "user-001",
            key: Key::Id,
            code: "duplicate_key",
            dup: dup("", "dup-key@example.com", "dup_key", None),
            then_email: None,
        },
        Clash {
            name: "existing email -> 409 duplicate_alias, would-be id 404s, nothing left behind",
            orig: "user-002",
            key: Key::Email,
            code: "duplicate_alias",
            dup: dup("user-dup-email", "", "dup_email", Some(30)),
            then_email: Some("dup-email-later@example.com"),
        },
        Clash {
            name: "existing username -> 409 duplicate_alias, would-be id 404s",
            orig: "user-003",
            key: Key::Username,
            code: "duplicate_alias",
            dup: dup("user-dup-username", "dup-username@example.com", "", None),
            then_email: None,
        },
    ] {
        s.check(c.name, |s| {
            let orig = s.users[c.orig].clone();
            let mut dup = c.dup;
            c.key.set(&mut dup, c.key.of(&orig));
            let r =
                s.c.send("POST /users", "POST", "/users", &dup.create_body())?;
            let what = format!("POST /users (existing {})", c.key.name());
            expect_error(&what, r, 409, Some(c.code))?;
            for k in Key::ALL.into_iter().filter(|k| *k != c.key) {
                s.u().expect_404(k, k.of(&dup))?;
            }
            s.u().resolves(&orig)?;
            if let Some(email) = c.then_email {
                let ok = User {
                    email: email.into(),
                    ..dup
                };
                s.u().create(&ok)?;
                s.u().resolves(&ok)?;
                s.users.insert(ok.id.clone(), ok);
            }
            Ok(())
        });
    }

    // --- users: updates keep aliases consistent -------------------------------
    // After the PUT, the `renamed` key's old value 404s and all current keys
    // resolve.
    type Edit = fn(&mut User);
    let renames: [(&str, &str, Key, Edit); 2] = [
        (
            "PUT /users/{id} changing the email: old email 404s, new resolves, username still resolves",
            "user-004",
            Key::Email,
            |u| {
                u.email = "renamed.4@example.org".into();
                u.name = "Renamed Four".into();
                u.age = Some(77);
            },
        ),
        (
            "PUT /users/{id} changing the username and clearing age",
            "user-006",
            Key::Username,
            |u| {
                u.username = "user_six_renamed".into();
                u.age = None;
            },
        ),
    ];
    for (name, id, renamed, edit) in renames {
        s.check(name, |s| {
            let old = s.users[id].clone();
            let mut u = old.clone();
            edit(&mut u);
            s.u().put_ok(&u)?;
            s.u().expect_404(renamed, renamed.of(&old))?;
            s.u().resolves(&u)?;
            s.users.insert(u.id.clone(), u);
            Ok(())
        });
    }
    s.check(
        "PUT to another user's email -> 409 duplicate_alias, both unchanged",
        |s| {
            let a = s.users["user-008"].clone();
            let b = s.users["user-009"].clone();
            let attempt = User {
                email: b.email.clone(),
                ..a.clone()
            };
            let (what, r) = s.u().put(&attempt)?;
            let what = format!("{what} (email of {})", b.id);
            expect_error(&what, r, 409, Some("duplicate_alias"))?;
            s.u().resolves(&a)?;
            s.u().resolves(&b)
        },
    );
    s.check("PUT /users/{missing} -> 404", |s| {
        let u = User::nth(999);
        let (what, r) = s.u().put(&u)?;
        expect_error(&what, r, 404, None)?;
        s.u().gone(&u)
    });

    // --- users: deletes through every key remove all sibling keys -------------
    for (name, id, key) in [
        (
            "DELETE /users/{id} -> {deleted:true}; id, email, username 404; again 404",
            "user-010",
            Key::Id,
        ),
        (
            "DELETE /users/by-email/{email} removes the row and its id and username",
            "user-017", // email with '+' and '.'
            Key::Email,
        ),
        (
            "DELETE /users/by-username/{username} removes the row and its id and email",
            "user-012",
            Key::Username,
        ),
    ] {
        s.check(name, |s| {
            let u = s.users.remove(id).ok_or(format!("{id} not known"))?;
            let path = key.path(key.of(&u));
            let delete = || s.c.req(&key.class("DELETE"), "DELETE", &path, None);
            let what = format!("DELETE {path}");
            expect_body(&what, delete()?, 200, json!({"deleted": true}))?;
            s.u().gone(&u)?;
            expect_error(&format!("{what} (again)"), delete()?, 404, None)
        });
    }
    s.check("a deleted user's email and username can be reused", |s| {
        let old = User::nth(12);
        let u = User {
            id: "user-012-reborn".into(),
            ..old
        };
        s.u().create(&u)?;
        s.u().resolves(&u)?;
        s.users.insert(u.id.clone(), u);
        Ok(())
    });
    s.check("list and count after conflicts, updates and deletes", |s| {
        s.expect_count("users", s.users.len())?;
        s.expect_list("users", s.users.keys().map(|id| json!(id)).collect())?;
        Ok(())
    });

    // --- posts: round-robin through the coordinator ---------------------------
    s.fatal(
        &format!("POST /posts x{POSTS} -> 201, placed round-robin SHARD_0, SHARD_1, SHARD_2, ..."),
        |s| {
            let authors: Vec<String> = s.users.keys().cloned().collect();
            let mut placed = Vec::new();
            for id in 1..=POSTS {
                let author = authors[id as usize % authors.len()].clone();
                let title = format!("Post #{id} — ünïcode & \"quotes\"");
                let body = json!({"id": id, "author_id": author, "title": title});
                let what = format!("POST /posts {body}");
                let r = s.c.send("POST /posts", "POST", "/posts", &body)?;
                if id == 1 {
                    s.cost("insert, round-robin, no lookups", &r);
                }
                let v = expect(&what, r, 201)?;
                post_matches(&what, &v, id, &author, &title)?;
                s.posts.insert(id, (author, title));
                placed.push(s.post_shard(id)?);
            }
            let first = SHARDS.iter().position(|x| *x == placed[0]).unwrap_or(0);
            let want: Vec<&str> = (0..placed.len()).map(|i| SHARDS[(first + i) % 3]).collect();
            ensure!(
                placed == want,
                "consecutive posts should cycle through the shards in order; got {placed:?}"
            );
            ensure!(
                placed[0] == "SHARD_0",
                "the first post of a fresh state should be on SHARD_0, got {}",
                placed[0]
            );
            Ok(())
        },
    );
    s.check("GET /posts/{id} returns each post", |s| {
        for (id, (author, title)) in &s.posts {
            let path = format!("/posts/{id}");
            let v = s.get_json("GET /posts/{id}", &path)?;
            post_matches(&format!("GET {path}"), &v, *id, author, title)?;
        }
        let r = s.c.get("GET /posts/{id}", "/posts/1")?;
        s.cost("get by id, round-robin (KV or coordinator)", &r);
        expect_error(
            "GET /posts/424242",
            s.c.get("GET /posts/{id}", "/posts/424242")?,
            404,
            None,
        )
    });
    s.check("duplicate post id -> 409 duplicate_key", |s| {
        let body = json!({"id": 1, "author_id": "user-000", "title": "again"});
        expect_error(
            "POST /posts (existing id)",
            s.c.send("POST /posts", "POST", "/posts", &body)?,
            409,
            Some("duplicate_key"),
        )?;
        let v = s.get_json("GET /posts/{id}", "/posts/1")?;
        ensure!(
            v.get("title").and_then(Value::as_str) != Some("again"),
            "GET /posts/1: overwritten by a refused insert: {v}"
        );
        Ok(())
    });
    s.check("post id 2^53-1 round-trips exactly", |s| {
        let body = json!({"id": MAX_SAFE, "author_id": "user-000", "title": "max safe"});
        let v = expect(
            "POST /posts (id 2^53-1)",
            s.c.send("POST /posts", "POST", "/posts", &body)?,
            201,
        )?;
        ensure!(
            v.get("id").and_then(Value::as_i64) == Some(MAX_SAFE),
            "POST /posts (id 2^53-1): got {v}"
        );
        let path = format!("/posts/{MAX_SAFE}");
        let r = s.c.get("GET /posts/{id}", &path)?;
        ensure!(
            r.body.contains(&MAX_SAFE.to_string()),
            "GET {path}: id not exact in {}",
            show(&r.body)
        );
        expect(&format!("GET {path}"), r, 200)?;
        s.posts
            .insert(MAX_SAFE, ("user-000".into(), "max safe".into()));
        Ok(())
    });
    s.check(
        "GET /posts lists every post ordered by id; GET /posts/count",
        |s| {
            s.expect_list("posts", s.posts.keys().map(|id| json!(id)).collect())?;
            s.expect_count("posts", s.posts.len())
        },
    );
    s.check("/distribution posts agree with /posts/{id}/shard", |s| {
        let placed = s
            .posts
            .keys()
            .map(|id| s.post_shard(*id))
            .collect::<Result<_, _>>()?;
        let dist = s.distribution_agrees("posts", |d| d.2, placed, s.posts.len())?;
        eprintln!("[e2e]       distribution: {dist:?}");
        Ok(())
    });

    // --- the coordinator directly (admin) --------------------------------------
    s.check(
        "POST /coordinator/claim round-robin: fresh placements cycle through the candidates; a retry keeps its shard",
        |s| {
            let cands = ["cand-a", "cand-b", "cand-c"];
            let target = json!({"allocate": {"strategy": "round-robin", "candidates": cands}});
            let mut got = Vec::new();
            for i in 0..6 {
                let body = claim_body(&format!("rr-{i}"), "1", &format!("e2e/rr/{i}"), true, target.clone());
                let reply = s.claim(body)?;
                got.push(Suite::granted_shard("claim", &reply)?);
                ensure!(
                    reply.pointer("/granted/fresh") == Some(&json!([true])),
                    "claim e2e/rr/{i}: expected fresh [true], got {reply}"
                );
            }
            let first = cands
                .iter()
                .position(|c| *c == got[0])
                .ok_or(format!("claim: {} is not a candidate", got[0]))?;
            let want: Vec<&str> = (0..got.len()).map(|i| cands[(first + i) % 3]).collect();
            ensure!(got == want, "round-robin placements should cycle through {cands:?}; got {got:?}");
            // The same owner and incarnation again: its placement, whatever the target says.
            for (i, shard) in got.iter().enumerate() {
                let body = claim_body(&format!("rr-{i}"), "1", &format!("e2e/rr/{i}"), true, json!({"shard": "cand-x"}));
                let reply = s.claim(body)?;
                let again = Suite::granted_shard("claim again", &reply)?;
                ensure!(again == *shard, "claim e2e/rr/{i} again: expected {shard}, got {again}");
                ensure!(
                    reply.pointer("/granted/fresh") == Some(&json!([false])),
                    "claim e2e/rr/{i} again: expected fresh [false], got {reply}"
                );
            }
            Ok(())
        },
    );
    s.check(
        "POST /coordinator/claim by another owner -> conflict naming the holder; /holders agrees",
        |s| {
            let reply = s.claim(claim_body(
                "intruder",
                "1",
                "e2e/rr/0",
                false,
                json!({"shard": "cand-x"}),
            ))?;
            ensure!(
                reply.pointer("/conflict/index") == Some(&json!(0))
                    && reply.pointer("/conflict/holder/owner") == Some(&json!("rr-0"))
                    && reply.pointer("/conflict/holder/incarnation") == Some(&json!("1")),
                "claim held by rr-0: expected a conflict naming it, got {reply}"
            );
            // Another incarnation of the same owner is another holder too.
            let reply = s.claim(claim_body(
                "rr-0",
                "2",
                "e2e/rr/0",
                false,
                json!({"shard": "cand-x"}),
            ))?;
            ensure!(
                reply.get("conflict").is_some(),
                "claim by incarnation 2: expected a conflict, got {reply}"
            );
            let holders = s.holders(&["e2e/rr/0", "e2e/none"])?;
            ensure!(
                holders.len() == 2
                    && holders[0].get("owner") == Some(&json!("rr-0"))
                    && holders[0].get("nonce") == Some(&json!("rr-0-1-nonce"))
                    && holders[1].is_null(),
                "POST /coordinator/holders: got {holders:?}"
            );
            // All or nothing: a request whose second key conflicts takes neither.
            let body = json!({
                "owner": "pair", "incarnation": "1", "nonce": "n",
                "target": {"shard": "cand-a"},
                "claims": [{"key": "e2e/pair/free"}, {"key": "e2e/rr/1"}],
            });
            let reply = s.claim(body)?;
            ensure!(
                reply.pointer("/conflict/index") == Some(&json!(1)),
                "expected a conflict at index 1, got {reply}"
            );
            let holders = s.holders(&["e2e/pair/free"])?;
            ensure!(
                holders == [Value::Null],
                "a refused request took e2e/pair/free: {holders:?}"
            );
            // Takeover of exactly the holder seen.
            let seen = s.holders(&["e2e/rr/2"])?.remove(0);
            let mut stale = seen.clone();
            stale["nonce"] = json!("not-the-nonce");
            let take = |replace: &Value| {
                json!({
                    "owner": "taker", "incarnation": "1", "nonce": "t",
                    "target": {"shard": "cand-a"},
                    "claims": [{"key": "e2e/rr/2", "replace": replace}],
                })
            };
            let reply = s.claim(take(&stale))?;
            ensure!(
                reply.get("conflict").is_some(),
                "takeover with a stale holder: expected a conflict, got {reply}"
            );
            let reply = s.claim(take(&seen))?;
            ensure!(
                reply.get("granted").is_some(),
                "takeover of the holder seen: expected granted, got {reply}"
            );
            let now = s.holders(&["e2e/rr/2"])?.remove(0);
            ensure!(
                now.get("owner") == Some(&json!("taker")),
                "after the takeover: {now}"
            );
            Ok(())
        },
    );
    s.check(
        "POST /coordinator/release is compare-and-delete on owner and incarnation",
        |s| {
            let release = |owner: &str, incarnation: &str| -> Result<Value, String> {
                let body = json!([{"key": "e2e/rr/3", "owner": owner, "incarnation": incarnation}]);
                expect(
                    &format!("POST /coordinator/release {body}"),
                    s.admin("POST", "/coordinator/release", Some(&body))?,
                    200,
                )
            };
            let v = release("rr-3", "2")?;
            ensure!(
                v == json!({"released": 0}),
                "release with the wrong incarnation: {v}"
            );
            let v = release("someone", "1")?;
            ensure!(v == json!({"released": 0}), "release by another owner: {v}");
            ensure!(
                s.holders(&["e2e/rr/3"])?[0].get("owner") == Some(&json!("rr-3")),
                "the claim was removed by a wrong release"
            );
            let v = release("rr-3", "1")?;
            ensure!(v == json!({"released": 1}), "release by the holder: {v}");
            ensure!(
                s.holders(&["e2e/rr/3"])? == [Value::Null],
                "the claim is still held after its release"
            );
            Ok(())
        },
    );
    s.check("GET/POST/DELETE /coordinator/shards", |s| {
        let list = |s: &Suite| -> Result<Vec<String>, String> {
            let v = s.get_json("GET /coordinator/shards", "/coordinator/shards")?;
            v.as_array()
                .and_then(|a| {
                    a.iter()
                        .map(|x| x.as_str().map(str::to_owned))
                        .collect::<Option<Vec<_>>>()
                })
                .ok_or(format!(
                    "GET /coordinator/shards: expected an array of names, got {v}"
                ))
        };
        // POST and DELETE take the same body and answer the same.
        let change = |s: &Suite, method: &str| {
            let what = format!("{method} /coordinator/shards");
            let body = json!({"shard": "SHARD_E2E_TMP"});
            let r = s.admin(method, "/coordinator/shards", Some(&body))?;
            expect_body(&what, r, 200, json!({"success": true}))
        };
        let before = list(&*s)?;
        eprintln!("[e2e]       coordinator shards: {before:?}");
        ensure!(
            before == SHARDS,
            "GET /coordinator/shards after /setup: {before:?}"
        );
        change(&*s, "POST")?;
        let during = list(&*s)?;
        ensure!(
            during.iter().any(|x| x == "SHARD_E2E_TMP"),
            "GET /coordinator/shards after POST: {during:?}"
        );
        change(&*s, "DELETE")?;
        let after = list(&*s)?;
        ensure!(
            after == before,
            "GET /coordinator/shards after DELETE: expected {before:?}, got {after:?}"
        );
        Ok(())
    });

    // --- errors ---------------------------------------------------------------------
    s.check(
        "malformed JSON -> 400 (POST /users, PUT /users, POST /posts, /coordinator/claim, /coordinator/shards)",
        |s| {
            let bad = "{\"id\": \"x\", oops";
            for (class, method, path) in [
                ("POST /users", "POST", "/users"),
                ("PUT /users/{id}", "PUT", "/users/user-000"),
                ("POST /posts", "POST", "/posts"),
            ] {
                let r = s.c.req(class, method, path, Some(bad))?;
                expect_error(&format!("{method} {path} (malformed JSON)"), r, 400, None)?;
            }
            for path in ["/coordinator/claim", "/coordinator/shards", "/coordinator/release", "/coordinator/holders"] {
                let r = s.c.req_auth(&format!("POST {path}"), "POST", path, Some(bad), Some(&s.admin))?;
                expect_error(&format!("POST {path} (malformed JSON)"), r, 400, Some("bad_request"))?;
            }
            Ok(())
        },
    );
    s.check("wrong field types -> 400", |s| {
        let cases = [
            ("POST /users", "POST", "/users", json!({"id": 5, "email": "t1@example.com", "username": "t1", "name": "T"})),
            ("POST /users", "POST", "/users", json!({"id": "t2", "email": "t2@example.com", "username": "t2", "name": "T", "age": "old"})),
            ("POST /users", "POST", "/users", json!({"id": "t3", "username": "t3", "name": "T"})),
            ("PUT /users/{id}", "PUT", "/users/user-000", json!({"email": 1, "username": "x", "name": "T"})),
            ("POST /posts", "POST", "/posts", json!({"id": "abc", "author_id": "user-000", "title": "T"})),
            ("POST /posts", "POST", "/posts", json!({"id": 1.5, "author_id": "user-000", "title": "T"})),
        ];
        for (class, method, path, body) in cases {
            let r = s.c.send(class, method, path, &body)?;
            expect_error(&format!("{method} {path} {body}"), r, 400, None)?;
        }
        for (path, body) in [
            ("/coordinator/claim", json!({"owner": 7, "incarnation": "1", "nonce": "n", "target": {"shard": "a"}, "claims": []})),
            ("/coordinator/claim", json!({"owner": "", "incarnation": "1", "nonce": "n", "target": {"shard": "a"}, "claims": []})),
            ("/coordinator/release", json!({"key": "k"})),
            ("/coordinator/holders", json!([1, 2])),
        ] {
            let r = s.admin("POST", path, Some(&body))?;
            expect_error(&format!("POST {path} {body}"), r, 400, Some("bad_request"))?;
        }
        // Nothing was created by the refused requests.
        for id in ["t2", "t3"] {
            s.u().expect_404(Key::Id, id)?;
        }
        s.u().expect_404(Key::Email, "t1@example.com")?;
        s.expect_count("users", s.users.len())
    });
    s.check(
        "post id 2^53+1 -> 400 integer_out_of_range, nothing stored",
        |s| {
            for id in [BEYOND_SAFE, -BEYOND_SAFE] {
                // Raw text: serde_json would not write these as exact integers.
                let body =
                    format!("{{\"id\":{id},\"author_id\":\"user-000\",\"title\":\"too big\"}}");
                let r = s.c.req("POST /posts", "POST", "/posts", Some(&body))?;
                expect_error(
                    &format!("POST /posts {body}"),
                    r,
                    400,
                    Some("integer_out_of_range"),
                )?;
            }
            s.expect_count("posts", s.posts.len())
        },
    );
    s.check("unknown paths -> 404 with an error body", |s| {
        expect_error(
            "GET /no/such/route",
            s.c.get("GET (unknown)", "/no/such/route")?,
            404,
            None,
        )?;
        expect_error(
            "POST /nope",
            s.c.req("POST (unknown)", "POST", "/nope", Some("{}"))?,
            404,
            None,
        )?;
        expect_error(
            "GET /v2/posts",
            s.c.get("GET (unknown)", "/v2/posts")?,
            404,
            None,
        )?;
        let r = s.c.get("GET /coordinator/nope", "/coordinator/nope")?;
        ensure!(
            r.status == 404,
            "GET /coordinator/nope: expected 404, got {} {}",
            r.status,
            show(&r.body)
        );
        Ok(())
    });

    // --- final consistency, then flush ---------------------------------------------
    s.check("final: counts, lists and distribution agree", |s| {
        let users = s.count("users")?;
        let posts = s.count("posts")?;
        let dist = s.distribution()?;
        s.final_dist = Some(dist.clone());
        let du: u64 = dist.iter().map(|(_, u, _)| u).sum();
        let dp: u64 = dist.iter().map(|(_, _, p)| p).sum();
        ensure!(
            users == s.users.len() as u64 && du == users,
            "users: expected {}, count {users}, distribution {du}",
            s.users.len()
        );
        ensure!(
            posts == s.posts.len() as u64 && dp == posts,
            "posts: expected {}, count {posts}, distribution {dp}",
            s.posts.len()
        );
        s.expect_list("users", s.users.keys().map(|id| json!(id)).collect())?;
        Ok(())
    });
    s.check(
        "POST /coordinator/flush (admin, DEPLOYMENT=development) -> {success:true}; claims are gone",
        |s| {
            expect_body(
                "POST /coordinator/flush",
                s.admin("POST", "/coordinator/flush", None)?,
                200,
                json!({"success": true}),
            )?;
            ensure!(s.holders(&["e2e/rr/1"])? == [Value::Null], "a claim survived /flush");
            let v = s.get_json("GET /coordinator/shards", "/coordinator/shards")?;
            ensure!(v == json!([]), "GET /coordinator/shards after /flush: {v}");
            Ok(())
        },
    );
}

/// Reads the D1 databases that workerd persisted (one SQLite file per
/// binding, under `v3/d1/miniflare-D1DatabaseObject/`) after wrangler has
/// stopped: an independent check that the rows really are spread over
/// several databases, each row in exactly one of them.
fn verify_d1_files(s: &mut Suite, state: &Path) -> Result<(), String> {
    let dir = state.join("v3/d1/miniflare-D1DatabaseObject");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .map_err(|e| format!("reading {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|x| x == "sqlite")
                && p.file_stem().is_some_and(|n| n != "metadata")
        })
        .collect();
    files.sort();
    ensure!(
        files.len() == SHARDS.len(),
        "expected {} D1 database files in {}, found {files:?}",
        SHARDS.len(),
        dir.display()
    );
    let mut per_file: Vec<(u64, u64)> = Vec::new();
    let mut user_ids: BTreeMap<String, usize> = BTreeMap::new();
    let mut post_ids: BTreeMap<i64, usize> = BTreeMap::new();
    for (i, file) in files.iter().enumerate() {
        let db =
            rusqlite::Connection::open(file).map_err(|e| format!("{}: {e}", file.display()))?;
        let ids = |sql: &str| -> Result<Vec<rusqlite::types::Value>, String> {
            let mut stmt = db
                .prepare(sql)
                .map_err(|e| format!("{}: {sql}: {e}", file.display()))?;
            let rows = stmt
                .query_map([], |r| r.get::<_, rusqlite::types::Value>(0))
                .map_err(|e| format!("{}: {sql}: {e}", file.display()))?;
            rows.collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("{}: {sql}: {e}", file.display()))
        };
        let users = ids("SELECT id FROM users")?;
        let posts = ids("SELECT id FROM posts")?;
        for v in &users {
            let rusqlite::types::Value::Text(id) = v else {
                return Err(format!("{}: users.id {v:?} is not TEXT", file.display()));
            };
            if let Some(other) = user_ids.insert(id.clone(), i) {
                return Err(format!(
                    "user {id} is stored in two D1 databases ({other} and {i})"
                ));
            }
        }
        for v in &posts {
            let rusqlite::types::Value::Integer(id) = v else {
                return Err(format!("{}: posts.id {v:?} is not INTEGER", file.display()));
            };
            if let Some(other) = post_ids.insert(*id, i) {
                return Err(format!(
                    "post {id} is stored in two D1 databases ({other} and {i})"
                ));
            }
        }
        per_file.push((users.len() as u64, posts.len() as u64));
    }
    let want_users: Vec<&String> = s.users.keys().collect();
    let got_users: Vec<&String> = user_ids.keys().collect();
    ensure!(
        got_users == want_users,
        "users on disk {got_users:?}, expected {want_users:?}"
    );
    let want_posts: Vec<i64> = s.posts.keys().copied().collect();
    let got_posts: Vec<i64> = post_ids.keys().copied().collect();
    ensure!(
        got_posts == want_posts,
        "posts on disk {got_posts:?}, expected {want_posts:?}"
    );
    let dist = s
        .final_dist
        .clone()
        .ok_or("no final /distribution was recorded")?;
    let mut from_api: Vec<(u64, u64)> = dist.iter().map(|(_, u, p)| (*u, *p)).collect();
    from_api.sort();
    per_file.sort();
    ensure!(
        per_file == from_api,
        "(users, posts) per D1 file {per_file:?} differ from /distribution {dist:?}"
    );
    let used = per_file.iter().filter(|(u, _)| *u > 0).count();
    ensure!(
        used >= 2,
        "users are in only {used} D1 database(s): {per_file:?}"
    );
    eprintln!("[e2e]       on disk (users, posts) per D1 file: {per_file:?}");
    Ok(())
}

#[test]
#[ignore = "needs workerd: run scripts/test.sh"]
fn example_worker_under_workerd() {
    let (mut worker, token) = Worker::start_development("e2e_workerd", "api");
    let mut runner = Runner::new(
        "e2e_workerd",
        Suite {
            c: worker.client(),
            admin: bearer(&token),
            users: BTreeMap::new(),
            posts: BTreeMap::new(),
            final_dist: None,
            costs: Vec::new(),
        },
    );
    // Checks record their own failures; this also catches a panic in between.
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| run_checks(&mut runner)));
    worker.stop();
    if outcome.is_ok() {
        let state = worker.state.path().to_owned();
        runner.check(
            "on disk: every row in exactly one of the 3 D1 SQLite files, matching /distribution",
            |s| verify_d1_files(s, &state),
        );
    }
    let mut costs =
        String::from("\n==== e2e_workerd: remote calls per operation (x-collegedb-calls) ====\n");
    for (operation, calls) in &runner.state.costs {
        costs.push_str(&format!("{operation:<48} {calls}\n"));
    }
    eprintln!("{costs}");
    let latency = runner.state.c.latency_table();
    runner.finish_with(outcome, &latency, "api", &worker);
}
