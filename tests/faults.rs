//! Every write, with a fault injected at every one of its backend calls.
//!
//! For each operation: run it once with a counting interceptor to learn how
//! many backend calls it makes; then, for every call number `n` and each
//! mode (the call fails before acting, the call acts and its reply is lost,
//! the process crashes at that call), set up the same state afresh, run the
//! operation with that fault, retry it on a fresh handle without faults, and
//! check the invariants (see `common::harness::check`): nothing duplicated,
//! nothing acknowledged lost, every alias resolving, freed aliases reusable.

mod common;

use std::collections::BTreeMap;

use collegedb::{Result, Strategy};
use common::harness::*;
use example_models::User;
use futures::executor::block_on;

/// What an operation answered, as the retry rules need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// Acknowledged (a delete: it deleted a row).
    Done,
    /// A delete that found nothing.
    Nothing,
    /// Refused or failed, with this code.
    Failed(&'static str),
}

fn unit(r: Result<()>) -> Answer {
    match r {
        Ok(()) => Answer::Done,
        Err(e) => Answer::Failed(e.code()),
    }
}

fn deleted(r: Result<bool>) -> Answer {
    match r {
        Ok(true) => Answer::Done,
        Ok(false) => Answer::Nothing,
        Err(e) => Answer::Failed(e.code()),
    }
}

/// An operation on a handle.
type Operation = dyn for<'a> Fn(&'a Db) -> Task<'a, Answer>;

/// One operation under test.
struct Case {
    label: String,
    /// The directory, emptied before each run.
    rig: Rig,
    /// The rows each run starts with.
    rows: Vec<User>,
    /// Codes the operation may answer without any fault.
    refusals: &'static [&'static str],
    /// The operation.
    run: Box<Operation>,
    /// Checks the first answer and the retry's, given whether the first
    /// attempt's effect is visible before the retry; returns what the
    /// checker must find.
    judge: Box<dyn Fn(Answer, bool, Answer) -> Expect>,
    /// Whether the first attempt's effect is visible (read through a fresh handle).
    applied: Box<dyn Fn(&Cluster) -> bool>,
}

/// Runs `case` with `fault` (or none), retries it on a fresh handle, and
/// checks the result. Returns the first answer, whether it was applied,
/// the retry's answer, and the first run's calls.
fn attempt(
    case: &Case,
    fault: Option<Fault>,
    context: &str,
) -> (
    Answer,
    bool,
    Answer,
    Vec<collegedb::backend::intercept::Call>,
) {
    case.rig.reset();
    case.rig.seed(&case.rows);
    let cluster = &case.rig.cluster;
    let hook = match fault {
        Some(fault) => Hook::faulty(fault),
        None => Hook::counting(),
    };
    let db = cluster.handle(&hook);
    let first = block_on((case.run)(&db));
    drop(db);
    if fault.is_some() {
        assert!(hook.fired(), "{context}: the fault did not fire");
    }
    if let Answer::Failed(code) = first {
        assert!(
            case.refusals.contains(&code)
                || (fault.is_some() && matches!(code, "shard" | "mapping_store" | "coordinator")),
            "{context}: answered `{code}`: a fault must fail an operation as a failure, never as a refusal"
        );
    }
    let applied = (case.applied)(cluster);
    let db = cluster.handle(&Hook::counting());
    let retry = block_on((case.run)(&db));
    drop(db);
    let expect = (case.judge)(first, applied, retry);
    check_all(cluster, &expect, context);
    (first, applied, retry, hook.log())
}

/// Runs `case` with every fault; returns the number of fault cases.
fn sweep(case: Case) -> usize {
    let started = std::time::Instant::now();
    let (_, _, _, log) = attempt(&case, None, &format!("{}: no fault", case.label));
    let calls = log.len();
    assert!(calls > 0, "{}: no calls", case.label);
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    let mut cases = 0;
    for (at, call) in log.iter().enumerate() {
        for mode in Mode::ALL {
            let context = format!(
                "{}: {mode:?} at call {at} of {calls} ({call:?})",
                case.label
            );
            let (first, applied, retry, _) = attempt(&case, Some(Fault { at, mode }), &context);
            *outcomes
                .entry(format!("{first:?}/applied {applied}/retry {retry:?}"))
                .or_default() += 1;
            cases += 1;
        }
    }
    println!(
        "faults: {}: {calls} calls x 3 modes = {cases} fault cases in {:.1?}; outcomes {outcomes:?}",
        case.label,
        started.elapsed()
    );
    cases
}

/// Whether `user` is stored exactly as given (read through a fresh handle).
fn stored_as(cluster: &Cluster, user: &User) -> bool {
    let db = cluster.plain();
    block_on(User::get(&db, &user.id)).unwrap().as_ref() == Some(user)
}

fn gone(cluster: &Cluster, id: &str) -> bool {
    let db = cluster.plain();
    block_on(User::get(&db, id)).unwrap().is_none()
}

/// The rows every case starts with besides its target.
fn bystanders() -> Vec<User> {
    vec![tagged("by-1", ""), tagged("by-2", "")]
}

/// What a checker must find to begin with: each of `rows`, as given.
fn expect_rows<'a>(rows: impl IntoIterator<Item = &'a User>) -> Expect {
    let mut expect = Expect::new();
    for r in rows {
        expect.row(r);
    }
    expect
}

/// The retry answers `if_applied` when the first attempt's effect is
/// visible, and succeeds when it is not.
fn retry_answer(applied: bool, if_applied: Answer) -> Answer {
    if applied {
        if_applied
    } else {
        Answer::Done
    }
}

/// Row `id` with new aliases (tag `v2`) and a new name.
fn realiased(id: &str) -> User {
    User {
        name: "renamed".into(),
        ..tagged(id, "v2")
    }
}

fn insert_case(strategy: Strategy) -> Case {
    let target = tagged("t-1", "");
    let check_target = target.clone();
    let applied_target = target.clone();
    Case {
        label: format!("insert, {}", strategy_name(strategy)),
        rig: Rig::new(strategy, 0),
        rows: bystanders(),
        refusals: &[],
        run: Box::new(move |db| {
            let target = target.clone();
            task(async move { unit(target.insert(db).await) })
        }),
        judge: Box::new(move |first, applied, retry| {
            // A retry answers duplicate_key exactly when the first attempt
            // committed (acknowledged or not), and never makes a second copy.
            if first == Answer::Done {
                assert!(applied, "an acknowledged insert is stored");
            }
            let want = retry_answer(applied, Answer::Failed("duplicate_key"));
            assert_eq!(
                retry, want,
                "retry of the insert (first {first:?}, applied {applied})"
            );
            let mut expect = expect_rows(&bystanders());
            expect.row(&check_target);
            expect
        }),
        applied: Box::new(move |cluster| stored_as(cluster, &applied_target)),
    }
}

#[test]
fn an_insert_with_two_lookups_survives_a_fault_at_every_call_hash() {
    sweep(insert_case(HASH));
}

#[test]
fn an_insert_survives_a_fault_at_every_call_round_robin() {
    sweep(insert_case(ROUND_ROBIN));
}

fn update_case(strategy: Strategy, aliases: bool) -> Case {
    let old = tagged("t-1", "");
    let new = if aliases {
        realiased("t-1")
    } else {
        with_name(&old, "renamed")
    };
    let (check_old, check_new, applied_new) = (old.clone(), new.clone(), new.clone());
    Case {
        label: format!(
            "update ({}), {}",
            if aliases {
                "email and username"
            } else {
                "name only"
            },
            strategy_name(strategy)
        ),
        rig: Rig::new(strategy, 0),
        rows: [bystanders(), vec![old.clone()]].concat(),
        refusals: &[],
        run: Box::new(move |db| {
            let new = new.clone();
            task(async move { unit(new.update(db).await) })
        }),
        judge: Box::new(move |first, applied, retry| {
            if first == Answer::Done {
                assert!(applied, "an acknowledged update is stored");
            }
            assert_eq!(retry, Answer::Done, "a retried update succeeds");
            let mut expect = expect_rows(&bystanders());
            expect.row(&check_new).mention(&check_old);
            expect
        }),
        applied: Box::new(move |cluster| stored_as(cluster, &applied_new)),
    }
}

#[test]
fn an_update_of_the_name_survives_a_fault_at_every_call() {
    for strategy in [HASH, ROUND_ROBIN] {
        sweep(update_case(strategy, false));
    }
}

#[test]
fn an_update_of_both_aliases_survives_a_fault_at_every_call() {
    for strategy in [HASH, ROUND_ROBIN] {
        sweep(update_case(strategy, true));
    }
}

fn delete_case(strategy: Strategy, by_email: bool) -> Case {
    let old = tagged("t-1", "");
    let (run_old, check_old) = (old.clone(), old.clone());
    Case {
        label: format!(
            "delete{}, {}",
            if by_email { " by email" } else { "" },
            strategy_name(strategy)
        ),
        rig: Rig::new(strategy, 0),
        rows: [bystanders(), vec![old.clone()]].concat(),
        refusals: &[],
        run: Box::new(move |db| {
            let old = run_old.clone();
            task(async move {
                if by_email {
                    deleted(User::delete_by_email(db, &old.email).await)
                } else {
                    deleted(User::delete(db, &old.id).await)
                }
            })
        }),
        judge: Box::new(move |first, applied, retry| {
            if first == Answer::Done {
                assert!(applied, "an acknowledged delete is not undone");
            }
            assert_ne!(first, Answer::Nothing, "the row was there");
            let want = retry_answer(applied, Answer::Nothing);
            assert_eq!(
                retry, want,
                "retry of the delete (first {first:?}, applied {applied})"
            );
            let mut expect = expect_rows(&bystanders());
            expect.gone(&check_old.id).mention(&check_old);
            expect
        }),
        applied: Box::new(|cluster| gone(cluster, "t-1")),
    }
}

#[test]
fn a_delete_survives_a_fault_at_every_call() {
    for strategy in [HASH, ROUND_ROBIN] {
        sweep(delete_case(strategy, false));
    }
}

#[test]
fn a_delete_by_email_survives_a_fault_at_every_call() {
    for strategy in [HASH, ROUND_ROBIN] {
        sweep(delete_case(strategy, true));
    }
}

// ---------------------------------------------------------------------------
// After a shard is appended (hash placement)
// ---------------------------------------------------------------------------

#[test]
fn a_rebalance_of_several_rows_survives_a_fault_at_every_call() {
    let rows: Vec<User> = moving_keys("m", 5, 3)
        .iter()
        .map(|id| tagged(id, ""))
        .collect();
    let (setup_rows, check_rows) = (rows.clone(), rows.clone());
    sweep(Case {
        label: "rebalance of 5 rows (3 moving)".into(),
        rig: Rig::grown(0),
        rows: setup_rows,
        refusals: &[],
        run: Box::new(|db| {
            task(async move {
                match db.rebalance::<User>().await {
                    Ok(_) => Answer::Done,
                    Err(e) => Answer::Failed(e.code()),
                }
            })
        }),
        judge: Box::new(move |_, _, retry| {
            assert_eq!(retry, Answer::Done, "a re-run rebalance finishes");
            expect_rows(&check_rows)
        }),
        applied: Box::new(|cluster| {
            let db = cluster.plain();
            block_on(settled(&db)) == [Some(3); 3]
        }),
    });
    // The checker saw every row at its home: the table is settled after each retry.
}

/// Writes while the table is unsettled: of a row still at its previous home.
fn unsettled_case(what: &'static str) -> Case {
    let rows: Vec<User> = moving_keys("w", 3, 2)
        .iter()
        .map(|id| tagged(id, ""))
        .collect();
    let target = rows[0].clone();
    let changed = realiased(&target.id);
    let fresh = tagged(&moving_keys("f", 1, 1)[0], "");
    let duplicate = tagged(&target.id, "dup");
    let (setup_rows, check_rows) = (rows.clone(), rows.clone());
    let (run_target, run_changed, run_fresh, run_duplicate) = (
        target.clone(),
        changed.clone(),
        fresh.clone(),
        duplicate.clone(),
    );
    let (applied_target, applied_changed, applied_fresh) =
        (target.clone(), changed.clone(), fresh.clone());
    Case {
        label: format!("{what} while unsettled"),
        rig: Rig::grown(0),
        rows: setup_rows,
        refusals: if what == "duplicate insert" {
            &["duplicate_key"]
        } else {
            &[]
        },
        run: Box::new(move |db| {
            let (target, changed, fresh, duplicate) = (
                run_target.clone(),
                run_changed.clone(),
                run_fresh.clone(),
                run_duplicate.clone(),
            );
            task(async move {
                match what {
                    "update" => unit(changed.update(db).await),
                    "delete" => deleted(User::delete(db, &target.id).await),
                    "insert" => unit(fresh.insert(db).await),
                    "duplicate insert" => unit(duplicate.insert(db).await),
                    other => unreachable!("{other}"),
                }
            })
        }),
        judge: Box::new(move |first, applied, retry| {
            let mut expect = expect_rows(&check_rows[1..]);
            expect.mention(&check_rows[0]);
            match what {
                "update" => {
                    assert_eq!(retry, Answer::Done, "a retried update succeeds");
                    expect.row(&changed).mention(&target);
                }
                "delete" => {
                    let want = retry_answer(applied, Answer::Nothing);
                    assert_eq!(retry, want, "retry of the delete (first {first:?})");
                    expect.gone(&target.id);
                }
                "insert" => {
                    let want = retry_answer(applied, Answer::Failed("duplicate_key"));
                    assert_eq!(retry, want, "retry of the insert (first {first:?})");
                    expect.row(&check_rows[0]).row(&fresh);
                }
                _ => {
                    assert_ne!(first, Answer::Done, "a duplicate insert is refused");
                    assert_eq!(retry, Answer::Failed("duplicate_key"));
                    expect.row(&check_rows[0]).mention(&duplicate);
                }
            }
            if first == Answer::Done {
                assert!(
                    applied || what == "duplicate insert",
                    "acknowledged, so applied"
                );
            }
            expect
        }),
        applied: Box::new(move |cluster| match what {
            "update" => stored_as(cluster, &applied_changed),
            "delete" => gone(cluster, &applied_target.id),
            "insert" => stored_as(cluster, &applied_fresh),
            _ => false,
        }),
    }
}

#[test]
fn writes_while_the_table_is_unsettled_survive_a_fault_at_every_call() {
    for what in ["update", "delete", "insert", "duplicate insert"] {
        sweep(unsettled_case(what));
    }
}

// ---------------------------------------------------------------------------
// Costs
// ---------------------------------------------------------------------------

/// The backend calls of each write without faults, hash placement, a model
/// with two lookups (docs/consistency.md, "Remote calls"): shard round trips
/// and coordinator requests, each counted per kind.
#[test]
fn each_write_makes_the_documented_backend_calls() {
    use collegedb::backend::intercept::Call::{self, *};
    let rig = Rig::new(HASH, 0);
    let old = tagged("t-1", "");
    let new = tagged("t-2", "");
    let renamed = with_name(&old, "renamed");
    let realiased = realiased("t-1");
    type Costed<'c> = (&'c str, Box<Operation>, &'c [(Call, usize)]);
    let cases: Vec<Costed> = vec![
        (
            "insert",
            Box::new(move |db| {
                let new = new.clone();
                task(async move { unit(new.insert(db).await) })
            }),
            &[(Claim, 1), (Batch, 1), (Query, 0), (Holders, 0)],
        ),
        (
            "get by primary key",
            Box::new(|db| task(async { unit(User::get(db, "t-1").await.map(drop)) })),
            &[(Query, 1), (Batch, 0), (Claim, 0), (Holders, 0)],
        ),
        (
            "update, no alias change",
            Box::new(move |db| {
                let renamed = renamed.clone();
                task(async move { unit(renamed.update(db).await) })
            }),
            &[(Batch, 1), (Query, 0), (Claim, 0), (Release, 0)],
        ),
        (
            "update, alias change",
            Box::new(move |db| {
                let realiased = realiased.clone();
                task(async move { unit(realiased.update(db).await) })
            }),
            // The old values' claims are left behind (a release by owner and
            // incarnation could remove a concurrent update's): no release.
            &[(Batch, 2), (Query, 0), (Claim, 1), (Release, 0)],
        ),
        (
            "delete",
            Box::new(|db| task(async { deleted(User::delete(db, "t-1").await) })),
            &[(Batch, 1), (Query, 0), (Claim, 0), (Release, 1)],
        ),
    ];
    for (label, op, expected) in cases {
        rig.reset();
        rig.seed(std::slice::from_ref(&old));
        let hook = Hook::counting();
        let db = rig.cluster.handle(&hook);
        let answer = block_on(op(&db));
        assert!(matches!(answer, Answer::Done), "{label}: {answer:?}");
        let counts: Vec<(Call, usize)> = expected
            .iter()
            .map(|(call, _)| (*call, hook.count(*call)))
            .collect();
        assert_eq!(counts, expected, "{label}: calls {:?}", hook.log());
        println!("faults: costs: {label}: {:?}", hook.log());
    }
}
