//! End-to-end suite: who may use the example Worker's administrative routes.
//!
//! Two Workers, one after the other, each with a fresh state: one without an
//! `ADMIN_TOKEN` secret (every administrative route is refused), and one with
//! a random token and no `DEPLOYMENT` var (the routes answer `403` without
//! the token or with a wrong one, work with the right one, and
//! `/coordinator/flush` is refused even with it). `/flush` working in
//! development is checked by `e2e_workerd`. Ignored by plain `cargo test`;
//! see `tests/e2e_workerd.rs` for how to run the suites.

#[path = "e2e/mod.rs"]
#[macro_use]
mod e2e;

use std::panic::{self, AssertUnwindSafe};

use e2e::harness::{
    bearer, expect, expect_body, expect_error, random_token, Client, Resp, Runner, Setup, Worker,
    SHARDS,
};
use e2e::users::{User, Users};
use serde_json::{json, Value};

struct Suite {
    c: Client,
    /// The right token, if this Worker has one.
    token: Option<String>,
}

/// One administrative request of the Worker's API.
struct Route {
    method: &'static str,
    path: &'static str,
    body: Option<Value>,
}

/// Every administrative route, with a body it accepts.
fn admin_routes() -> Vec<Route> {
    let claim = json!({
        "owner": "admin-e2e", "incarnation": "1", "nonce": "n",
        "target": {"shard": "SHARD_0"},
        "claims": [{"key": "e2e/admin/key"}],
    });
    vec![
        Route {
            method: "POST",
            path: "/setup",
            body: None,
        },
        Route {
            method: "POST",
            path: "/v2/setup",
            body: None,
        },
        Route {
            method: "POST",
            path: "/admin/rebalance/users",
            body: None,
        },
        Route {
            method: "POST",
            path: "/coordinator/claim",
            body: Some(claim),
        },
        Route {
            method: "POST",
            path: "/coordinator/holders",
            body: Some(json!(["e2e/admin/key"])),
        },
        Route {
            method: "POST",
            path: "/coordinator/release",
            body: Some(json!([{"key": "e2e/admin/key", "owner": "admin-e2e", "incarnation": "1"}])),
        },
        Route {
            method: "POST",
            path: "/coordinator/shards",
            body: Some(json!({"shard": "SHARD_ADMIN_E2E"})),
        },
        Route {
            method: "DELETE",
            path: "/coordinator/shards",
            body: Some(json!({"shard": "SHARD_ADMIN_E2E"})),
        },
        Route {
            method: "POST",
            path: "/admin/sql/shards/SHARD_0",
            body: Some(json!({"op": "all", "sql": "SELECT ?1", "params": [1]})),
        },
        Route {
            method: "POST",
            path: "/admin/sql/shards",
            body: Some(json!({"op": "all", "sql": "SELECT ?1", "params": [1]})),
        },
        Route {
            method: "POST",
            path: "/coordinator/flush",
            body: None,
        },
    ]
}

impl Suite {
    fn send(&self, route: &Route, authorization: Option<&str>) -> Result<Resp, String> {
        let body = route.body.as_ref().map(Value::to_string);
        self.c.req_auth(
            &format!("{} {}", route.method, route.path),
            route.method,
            route.path,
            body.as_deref(),
            authorization,
        )
    }

    /// Every administrative route answers 403 forbidden with `authorization`.
    fn all_forbidden(&self, authorization: Option<&str>, why: &str) -> Result<(), String> {
        for route in admin_routes() {
            let what = format!("{} {} ({why})", route.method, route.path);
            expect_error(
                &what,
                self.send(&route, authorization)?,
                403,
                Some("forbidden"),
            )?;
        }
        Ok(())
    }

    fn right(&self) -> String {
        bearer(self.token.as_deref().unwrap_or(""))
    }

    fn shards(&self) -> Result<Value, String> {
        expect(
            "GET /coordinator/shards",
            self.c
                .get("GET /coordinator/shards", "/coordinator/shards")?,
            200,
        )
    }
}

fn without_secret(s: &mut Runner<Suite>) {
    s.check(
        "no ADMIN_TOKEN secret: every administrative route -> 403, with or without a bearer token",
        |s| {
            s.all_forbidden(None, "no header")?;
            s.all_forbidden(Some("Bearer "), "empty token")?;
            s.all_forbidden(Some("Bearer anything"), "some token")
        },
    );
    s.check(
        "no ADMIN_TOKEN secret: the public routes still answer",
        |s| {
            let r = s.c.get("GET /coordinator/health", "/coordinator/health")?;
            ensure!(
                r.status == 200 && r.body.trim() == "OK",
                "GET /coordinator/health: {} {}",
                r.status,
                r.body
            );
            // The schema was never created (setup is refused): a read fails, but not with 403.
            let r = s.c.get("GET /users/count", "/users/count")?;
            ensure!(r.status != 403, "GET /users/count answered 403: {}", r.body);
            Ok(())
        },
    );
}

fn with_secret(s: &mut Runner<Suite>) {
    s.check(
        "ADMIN_TOKEN set: administrative routes -> 403 without a token, with a wrong one, or not as Bearer",
        |s| {
            let token = s.token.clone().unwrap_or_default();
            s.all_forbidden(None, "no header")?;
            s.all_forbidden(Some("Bearer "), "empty token")?;
            // Same length, last character changed.
            let mut wrong = token.clone();
            let last = if wrong.ends_with('0') { '1' } else { '0' };
            wrong.pop();
            wrong.push(last);
            s.all_forbidden(Some(&bearer(&wrong)), "same-length wrong token")?;
            s.all_forbidden(Some(&bearer(&token[..token.len() / 2])), "a prefix of the token")?;
            s.all_forbidden(Some(&bearer(&format!("{token}x"))), "the token and more")?;
            s.all_forbidden(Some(&format!("Basic {token}")), "not a bearer token")?;
            s.all_forbidden(Some(&token), "no scheme")?;
            Ok(())
        },
    );
    s.check("refused administrative requests changed nothing", |s| {
        let v = s.shards()?;
        ensure!(
            v == json!([]),
            "GET /coordinator/shards: expected no shards, got {v}"
        );
        let r = s.c.get("GET /users/count", "/users/count")?;
        ensure!(
            r.status == 500,
            "GET /users/count before any setup: expected the missing table to fail, got {} {}",
            r.status,
            r.body
        );
        Ok(())
    });
    s.fatal(
        "ADMIN_TOKEN set: POST /setup with the right token -> 200",
        |s| {
            let r = s.send(
                &Route {
                    method: "POST",
                    path: "/setup",
                    body: None,
                },
                Some(&s.right()),
            )?;
            expect_body("POST /setup", r, 200, json!({"ok": true}))?;
            let v = s.shards()?;
            ensure!(
                v == json!(SHARDS),
                "GET /coordinator/shards after /setup: {v}"
            );
            Ok(())
        },
    );
    s.check(
        "ADMIN_TOKEN set: every administrative route but /flush works with the right token",
        |s| {
            let right = s.right();
            for route in admin_routes()
                .into_iter()
                .filter(|r| r.path != "/coordinator/flush")
            {
                let what = format!("{} {}", route.method, route.path);
                let v = expect(&what, s.send(&route, Some(&right))?, 200)?;
                match route.path {
                    "/coordinator/claim" => ensure!(v.get("granted").is_some(), "{what}: {v}"),
                    "/coordinator/holders" => ensure!(
                        v.pointer("/0/owner") == Some(&json!("admin-e2e")),
                        "{what}: {v}"
                    ),
                    "/coordinator/release" => ensure!(v == json!({"released": 1}), "{what}: {v}"),
                    "/admin/rebalance/users" => ensure!(
                        v == json!({"moved": 0, "mapped": 0, "at_home": 0}),
                        "{what}: {v}"
                    ),
                    _ => {}
                }
            }
            let v = s.shards()?;
            ensure!(
                v == json!(SHARDS),
                "GET /coordinator/shards after POST and DELETE: {v}"
            );
            // The scheme is case-insensitive.
            let token = s.token.clone().unwrap_or_default();
            let setup = Route {
                method: "POST",
                path: "/setup",
                body: None,
            };
            expect(
                "POST /setup (`bearer` in lower case)",
                s.send(&setup, Some(&format!("bearer {token}")))?,
                200,
            )?;
            Ok(())
        },
    );
    s.check(
        "no DEPLOYMENT=development: POST /coordinator/flush -> 403 even with the right token; nothing flushed",
        |s| {
            for path in ["/coordinator/flush", "/coordinator/flush/", "/coordinator/%66lush"] {
                let flush = Route { method: "POST", path, body: None };
                expect_error(&format!("POST {path}"), s.send(&flush, Some(&s.right()))?, 403, Some("forbidden"))?;
            }
            let v = s.shards()?;
            ensure!(v == json!(SHARDS), "GET /coordinator/shards after a refused flush: {v}");
            Ok(())
        },
    );
    s.check("the public routes need no token", |s| {
        let users = Users {
            c: &s.c,
            prefix: "",
        };
        let u = User::nth(1);
        users.create(&u)?;
        users.resolves(&u)?;
        ensure!(users.count()? == 1, "GET /users/count: expected 1");
        Ok(())
    });
}

#[test]
#[ignore = "needs workerd: run scripts/test.sh"]
fn administrative_routes_need_the_token() {
    // 1. No secret.
    let mut bare = Worker::start("e2e_admin", "no-secret", &Setup::default());
    let mut runner = Runner::new(
        "e2e_admin",
        Suite {
            c: bare.client(),
            token: None,
        },
    );
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| without_secret(&mut runner)));
    bare.stop();
    let mut latency = runner.state.c.latency_table();

    // 2. A secret, not a development deployment.
    let token = random_token();
    let mut guarded = None;
    let outcome = outcome.and_then(|()| {
        let worker = Worker::start(
            "e2e_admin",
            "with-secret",
            &Setup {
                admin_token: Some(token.clone()),
                ..Setup::default()
            },
        );
        runner.state = Suite {
            c: worker.client(),
            token: Some(token),
        };
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| with_secret(&mut runner)));
        guarded = Some(worker);
        outcome
    });
    if let Some(worker) = guarded.as_mut() {
        worker.stop();
        latency.push_str(&runner.state.c.latency_table());
    }
    let mut workers = vec![("no-secret", bare.build, bare.startup)];
    let mut logs = vec![bare.log_path.clone()];
    if let Some(worker) = &guarded {
        workers.push(("with-secret", worker.build, worker.startup));
        logs.push(worker.log_path.clone());
    }
    let logs: Vec<&std::path::Path> = logs.iter().map(|p| p.as_path()).collect();
    runner.finish(outcome, &latency, &workers, &logs);
}
