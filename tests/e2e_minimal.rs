//! End-to-end suite: the minimal Worker (`examples/worker-minimal`: one
//! model, its CRUD, lookup and list routes) under workerd, so that the Worker
//! whose size the README reports is one that works. Ignored by plain
//! `cargo test`; `scripts/test.sh` runs it with the other suites (see
//! `tests/e2e_workerd.rs`).

#[path = "e2e/mod.rs"]
#[macro_use]
mod e2e;

use std::panic::{self, AssertUnwindSafe};

use e2e::harness::{expect, expect_body, Client, Resp, Runner, Setup, Worker};
use serde_json::{json, Value};

/// Expects `status`, whatever the body.
fn status(what: &str, resp: Resp, status: u16) -> Result<(), String> {
    ensure!(
        resp.status == status,
        "{what}: expected {status}, got {} {}",
        resp.status,
        resp.body
    );
    Ok(())
}

fn user(id: &str, email: &str, name: &str) -> Value {
    json!({"id": id, "email": email, "name": name})
}

#[test]
#[ignore = "needs the local Cloudflare tools (scripts/cloudflare-tools.sh); run by scripts/test.sh"]
fn the_minimal_worker_serves_crud_lookups_and_lists() {
    let setup = Setup {
        worker: Some("examples/worker-minimal"),
        ..Setup::default()
    };
    let worker = Worker::start("e2e_minimal", "minimal", &setup);
    let mut runner = Runner::new("e2e_minimal", worker.client());
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
        runner.fatal("setup creates the table", |c: &mut Client| {
            status("POST /setup", c.req("setup", "POST", "/setup", None)?, 204)
        });
        runner.check("insert, then get by id and by email", |c| {
            let ada = user("u-1", "ada@example.com", "Ada");
            status("insert", c.send("insert", "POST", "/users", &ada)?, 201)?;
            expect_body("get", c.get("get", "/users/u-1")?, 200, ada.clone())?;
            expect_body(
                "find",
                c.get("find", "/users/by-email/ada@example.com")?,
                200,
                ada,
            )
        });
        runner.check("a taken id or email is refused with 409", |c| {
            let same_id = user("u-1", "other@example.com", "Other");
            status(
                "same id",
                c.send("insert", "POST", "/users", &same_id)?,
                409,
            )?;
            let same_email = user("u-2", "ada@example.com", "Other");
            status(
                "same email",
                c.send("insert", "POST", "/users", &same_email)?,
                409,
            )?;
            status("refused id stays free", c.get("get", "/users/u-2")?, 404)
        });
        runner.check("an update moves the alias", |c| {
            let body = json!({"id": "ignored", "email": "lovelace@example.com", "name": "Ada L."});
            status("update", c.send("update", "PUT", "/users/u-1", &body)?, 204)?;
            status(
                "old email",
                c.get("find", "/users/by-email/ada@example.com")?,
                404,
            )?;
            expect_body(
                "new email",
                c.get("find", "/users/by-email/lovelace@example.com")?,
                200,
                user("u-1", "lovelace@example.com", "Ada L."),
            )?;
            let ghost = user("u-9", "ghost@example.com", "Ghost");
            status(
                "update of none",
                c.send("update", "PUT", "/users/u-9", &ghost)?,
                404,
            )
        });
        runner.check("list reads every shard", |c| {
            for i in 2..=6 {
                let u = user(&format!("u-{i}"), &format!("u{i}@example.com"), "Someone");
                status("insert", c.send("insert", "POST", "/users", &u)?, 201)?;
            }
            let listed = expect("list", c.get("list", "/users")?, 200)?;
            let mut ids: Vec<&str> = listed
                .as_array()
                .ok_or("list: not an array")?
                .iter()
                .filter_map(|u| u["id"].as_str())
                .collect();
            ids.sort_unstable();
            ensure!(
                ids == ["u-1", "u-2", "u-3", "u-4", "u-5", "u-6"],
                "list: {ids:?}"
            );
            Ok(())
        });
        runner.check("delete frees the id and the email", |c| {
            status(
                "delete",
                c.req("delete", "DELETE", "/users/u-1", None)?,
                204,
            )?;
            status(
                "delete again",
                c.req("delete", "DELETE", "/users/u-1", None)?,
                404,
            )?;
            status("gone by id", c.get("get", "/users/u-1")?, 404)?;
            status(
                "gone by email",
                c.get("find", "/users/by-email/lovelace@example.com")?,
                404,
            )?;
            let again = user("u-7", "lovelace@example.com", "Reused");
            status(
                "email reused",
                c.send("insert", "POST", "/users", &again)?,
                201,
            )
        });
    }));
    let latency = runner.state.latency_table();
    runner.finish_with(outcome, &latency, "minimal", &worker);
}
