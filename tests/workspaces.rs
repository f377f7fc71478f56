//! Workspaces: `spawn`, `ps`, `stop`, `reap` and the registry, driven by the
//! fake opencode fixture (it prints the real warning and listening lines,
//! serves /global/health and starts a plain child and a setsid daemon).

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;

const T: Duration = Duration::from_secs(30);

fn fake() -> String {
    fixture("fake-opencode").display().to_string()
}

/// `SCENE/bin/opencode`, a symlink to the fake: what `reap` takes for an
/// opencode server (its program is named `opencode`).
fn opencode_link(s: &Scene) -> String {
    let bin = s.path("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let link = bin.join("opencode");
    if !link.exists() {
        std::os::unix::fs::symlink(fake(), &link).unwrap();
    }
    link.display().to_string()
}

fn folder(s: &Scene, name: &str) -> String {
    let p = s.path(name);
    std::fs::create_dir_all(&p).unwrap();
    p.canonicalize().unwrap().display().to_string()
}

/// `ocwrap spawn --detach --json` with the fake; returns the JSON.
fn spawn_detached(s: &Scene, dir: &str, extra: &[&str]) -> Value {
    let mut args = vec!["spawn", "--detach", "--json", "--opencode"];
    let f = fake();
    args.push(&f);
    args.extend(extra);
    args.push(dir);
    let (o, _) = run_output(s.ocwrap(&args), T);
    assert!(o.status.success(), "spawn failed: {}", stderr(&o));
    serde_json::from_str(stdout(&o).trim()).unwrap()
}

fn ps(s: &Scene) -> Vec<Value> {
    let (o, _) = run_output(s.ocwrap(&["ps", "--json"]), T);
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_str::<Value>(&stdout(&o))
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn detached_spawn_prints_exactly_the_url_and_stop_leaves_nothing() {
    let s = Scene::new("ws-url");
    let dir = folder(&s, "repo");
    let (o, _) = run_output(
        s.ocwrap(&["spawn", "--detach", "--opencode", &fake(), &dir]),
        T,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.starts_with("http://127.0.0.1:") && out.ends_with('\n') && out.lines().count() == 1,
        "{out:?}"
    );
    // The supervisor, opencode, its child and its setsid daemon.
    assert!(wait_until(T, || s.alive().len() >= 4), "{:?}", s.alive());
    let rows = ps(&s);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["state"], "running");
    assert_eq!(rows[0]["url"], out.trim());
    assert_eq!(rows[0]["folder"], dir);
    assert!(rows[0]["processes"].as_u64().unwrap() >= 4, "{}", rows[0]);
    assert!(rows[0]["rss_bytes"].as_u64().unwrap() > 0);

    let (o, _) = run_output(s.ocwrap(&["ps", "--check"]), T);
    assert!(
        stdout(&o).contains("healthy") && !stdout(&o).contains("unresponsive"),
        "{}",
        stdout(&o)
    );

    // Stop by folder.
    let (o, _) = run_output(s.ocwrap(&["stop", &dir]), T);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(s.alive().is_empty(), "left: {:?}", s.alive());
    assert!(ps(&s).is_empty(), "the record was not removed");
}

#[test]
fn json_output_has_every_field() {
    let s = Scene::new("ws-json");
    let dir = folder(&s, "repo");
    let j = spawn_detached(&s, &dir, &["--port", "0"]);
    for key in ["id", "folder", "url", "port", "pids", "started_at", "log"] {
        assert!(!j[key].is_null(), "{key} missing in {j}");
    }
    assert_eq!(j["folder"], dir);
    let url = j["url"].as_str().unwrap();
    assert!(url.ends_with(&format!(":{}", j["port"])), "{j}");
    let sup = j["pids"]["supervisor"].as_i64().unwrap() as i32;
    let oc = j["pids"]["opencode"].as_i64().unwrap() as i32;
    assert!(is_alive(sup) && is_alive(oc));
    // opencode runs in the folder, with `serve --port=0 --print-logs`.
    let cmdline = std::fs::read_to_string(format!("/proc/{oc}/cmdline")).unwrap();
    assert!(
        cmdline.contains("serve\0--port=0\0--print-logs"),
        "{cmdline:?}"
    );
    assert_eq!(
        std::fs::read_link(format!("/proc/{oc}/cwd"))
            .unwrap()
            .display()
            .to_string(),
        dir
    );
    // The detached supervisor is in its own session and holds no tty.
    let st = ocwrap::proc::read_stat(sup).unwrap();
    assert_eq!(st.session, sup);
    let log = j["log"].as_str().unwrap();
    assert!(
        std::fs::read_to_string(log)
            .unwrap()
            .contains("opencode server listening on")
    );
    let (o, _) = run_output(s.ocwrap(&["stop", j["id"].as_str().unwrap()]), T);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(s.alive().is_empty(), "{:?}", s.alive());
}

#[test]
fn foreground_spawn_ends_its_whole_tree_on_sigterm() {
    let mut s = Scene::new("ws-fg");
    let dir = folder(&s, "repo");
    let pids = s.path("pids.json");
    let mut c = s.ocwrap(&["spawn", "--opencode", &fake(), "--grace", "5s", &dir]);
    c.env("FAKE_OPENCODE_PIDS", &pids)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let pid = s.spawn(c);
    let mut child = s.take_child(pid);
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("http://127.0.0.1:"), "{line:?}");
    let p = s.read_json("pids.json");
    let daemon = p["children"][1].as_i64().unwrap() as i32;
    assert!(is_alive(daemon));
    assert_eq!(ps(&s).len(), 1);
    kill_pid(pid as i32, libc::SIGTERM);
    let status = child.wait().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    // opencode's own output went to stderr, after ocwrap's lines.
    assert!(
        err.contains("Warning: OPENCODE_SERVER_PASSWORD is not set"),
        "{err}"
    );
    assert!(err.contains("0 survivors"), "{err}");
    assert_eq!(status.code(), Some(143), "{err}");
    assert!(!is_alive(daemon), "the setsid daemon survived");
    assert!(s.alive().is_empty(), "{:?}", s.alive());
    assert!(ps(&s).is_empty());
}

#[test]
fn bad_folder_and_missing_opencode_fail_before_anything_starts() {
    let s = Scene::new("ws-bad");
    let (o, _) = run_output(
        s.ocwrap(&["spawn", "--opencode", &fake(), "/nonexistent/folder"]),
        T,
    );
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("/nonexistent/folder"), "{}", stderr(&o));
    let file = s.path("file");
    std::fs::write(&file, "x").unwrap();
    let (o, _) = run_output(
        s.ocwrap(&["spawn", "--opencode", &fake(), file.to_str().unwrap()]),
        T,
    );
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains(&format!(
            "cannot use folder {}: not a directory",
            file.display()
        )),
        "{}",
        stderr(&o)
    );

    let dir = folder(&s, "repo");
    let mut c = s.ocwrap(&["spawn", &dir]);
    c.env("PATH", "/nonexistent").env_remove("OCWRAP_OPENCODE");
    let (o, _) = run_output(c, T);
    assert_eq!(o.status.code(), Some(127));
    assert!(stderr(&o).contains("opencode-ai"), "{}", stderr(&o));
    assert!(!s.state_dir().join("x").exists());
    assert!(s.alive().is_empty());
}

#[test]
fn never_ready_crash_and_slow_servers() {
    let s = Scene::new("ws-ready");
    let dir = folder(&s, "repo");
    // Never ready: the timeout tears the tree down; the error quotes output.
    let mut c = s.ocwrap(&[
        "spawn",
        "--opencode",
        &fake(),
        "--ready-timeout",
        "1s",
        "--grace",
        "2s",
        &dir,
    ]);
    c.env("FAKE_OPENCODE_MODE", "never");
    let (o, elapsed) = run_output(c, T);
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("not ready within 1s") && err.contains("OPENCODE_SERVER_PASSWORD"),
        "{err}"
    );
    assert!(elapsed < Duration::from_secs(15));
    assert_eq!(stdout(&o), "");
    assert!(s.alive().is_empty(), "{:?}", s.alive());
    assert!(ps(&s).is_empty(), "a failed workspace left its record");

    // Crash before ready, detached: the caller gets the error and status.
    let mut c = s.ocwrap(&["spawn", "--detach", "--opencode", &fake(), &dir]);
    c.env("FAKE_OPENCODE_MODE", "crash");
    let (o, _) = run_output(c, T);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("fatal: something broke"),
        "{}",
        stderr(&o)
    );
    assert!(wait_until(T, || s.alive().is_empty()), "{:?}", s.alive());

    // Slow but within the timeout.
    let mut c = s.ocwrap(&[
        "spawn",
        "--detach",
        "--opencode",
        &fake(),
        "--ready-timeout",
        "20s",
        &dir,
    ]);
    c.env("FAKE_OPENCODE_MODE", "slow")
        .env("FAKE_OPENCODE_DELAY", "1.5");
    let (o, _) = run_output(c, T);
    assert!(o.status.success(), "{}", stderr(&o));
    let (o, _) = run_output(s.ocwrap(&["stop", "--all"]), T);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(s.alive().is_empty());
}

#[test]
fn output_is_drained_so_opencode_never_blocks() {
    let s = Scene::new("ws-drain");
    let dir = folder(&s, "repo");
    let mut c = s.ocwrap(&["spawn", "--detach", "--json", "--opencode", &fake(), &dir]);
    c.env("FAKE_OPENCODE_MODE", "chatty");
    let (o, _) = run_output(c, T);
    assert!(o.status.success(), "{}", stderr(&o));
    let j: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    let log = j["log"].as_str().unwrap().to_string();
    // 20000 lines of 200 bytes: far more than a pipe holds.
    assert!(
        wait_until(T, || std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("log line 19999 ")),
        "opencode's output stalled"
    );
    let (o, _) = run_output(s.ocwrap(&["stop", "--all"]), T);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn ps_states_and_reap_after_the_supervisor_is_killed() {
    let s = Scene::new("ws-reap");
    let dir = folder(&s, "repo");
    let j = spawn_detached(&s, &dir, &[]);
    let sup = j["pids"]["supervisor"].as_i64().unwrap() as i32;
    let oc = j["pids"]["opencode"].as_i64().unwrap() as i32;
    kill_pid(sup, libc::SIGKILL);
    assert!(wait_until(T, || !is_alive(sup)));
    // opencode got its parent-death SIGKILL; its child and setsid daemon
    // are what a crash leaves behind.
    assert!(wait_until(T, || !is_alive(oc)));
    let rows = ps(&s);
    assert_eq!(rows[0]["state"], "orphaned", "{}", rows[0]);
    assert_eq!(rows[0]["processes"].as_u64().unwrap(), 2, "{}", rows[0]);

    // --dry-run lists it and touches nothing.
    let before = s.alive();
    // A pattern nobody matches keeps other orphans on the machine (other
    // tests', running in parallel) out of this test: only the registry part.
    let (o, _) = run_output(
        s.ocwrap(&["reap", "--dry-run", "--json", "--match", &s.mark]),
        T,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let doc: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let targets = doc["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 1, "{doc}");
    assert_eq!(targets[0]["workspace"], j["id"]);
    let listed: Vec<i32> = targets[0]["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_i64().unwrap() as i32)
        .collect();
    assert_eq!(listed.len(), 2, "{doc}");
    assert!(
        listed.iter().all(|p| before.contains(p)),
        "{listed:?} vs {before:?}"
    );
    assert_eq!(s.alive(), before, "dry run signalled something");

    let (o, _) = run_output(s.ocwrap(&["reap", "--grace", "2s", "--match", &s.mark]), T);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(s.alive().is_empty(), "{:?}", s.alive());
    assert!(
        ps(&s).is_empty(),
        "the reaped workspace's record is still there"
    );
}

#[test]
fn reap_finds_an_untracked_orphaned_server_and_spares_one_with_a_parent() {
    let s = Scene::new("ws-orphan");
    let dir = folder(&s, "repo");
    let pids = s.path("orphan.json");
    // Servers are recognised by their program's name: the fake, started as
    // `opencode` (argv: `python3 .../bin/opencode serve ...`).
    let opencode = opencode_link(&s);
    // An orphan: double fork so its parent is gone (re-parented to PID 1).
    let script = format!(
        "(FAKE_OPENCODE_PIDS={} setsid {} serve --port=0 --mark={} >/dev/null 2>&1 &) ; exit 0",
        pids.display(),
        opencode,
        s.mark
    );
    let st = Command::new("sh")
        .args(["-c", &script])
        .env(MARK_VAR, &s.mark)
        .current_dir(&dir)
        .status()
        .unwrap();
    assert!(st.success());
    let orphan = s.read_json("orphan.json")["opencode"].as_i64().unwrap() as i32;
    // One with a live parent: a shell that waits for it.
    let pids2 = s.path("kept.json");
    let mut keeper = Command::new("sh");
    keeper
        .args([
            "-c",
            &format!(
                "FAKE_OPENCODE_PIDS={} {} serve --port=0 --mark={} >/dev/null 2>&1; wait",
                pids2.display(),
                opencode,
                s.mark
            ),
        ])
        .env(MARK_VAR, &s.mark);
    let mut keeper = keeper.spawn().unwrap();
    let kept = s.read_json("kept.json")["opencode"].as_i64().unwrap() as i32;

    // The default pattern finds it (a dry run touches nothing, so other
    // tests' orphans it may list are safe).
    let (o, _) = run_output(s.ocwrap(&["reap", "--dry-run"]), T);
    assert!(
        stdout(&o).contains(&format!("would end {orphan} ")),
        "{}",
        stdout(&o)
    );
    assert!(
        !stdout(&o).contains(&format!("would end {kept} ")),
        "{}",
        stdout(&o)
    );
    // Also check with a pattern that matches nothing: nothing to reap.
    let (o, _) = run_output(
        s.ocwrap(&["reap", "--dry-run", "--match", "no-such-server-xyz"]),
        T,
    );
    assert_eq!(stdout(&o), "nothing to reap\n");

    let pattern = format!("opencode serve --port=0 --mark={}", s.mark);
    let (o, _) = run_output(s.ocwrap(&["reap", "--grace", "2s", "--match", &pattern]), T);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!is_alive(orphan), "the orphan survived reap");
    assert!(is_alive(kept), "reap ended a server that has a live parent");
    kill_pid(kept, libc::SIGKILL);
    let _ = keeper.kill();
    let _ = keeper.wait();
}

#[test]
fn a_record_pointing_at_a_reused_pid_is_never_signalled() {
    let s = Scene::new("ws-reuse");
    let mut victim = Command::new("sleep");
    victim.arg("1000").env(MARK_VAR, &s.mark);
    let mut victim = victim.spawn().unwrap();
    let vpid = victim.id() as i32;
    let start = ocwrap::proc::read_stat(vpid).unwrap().start_time;
    let reg = ocwrap::state::StateDir::open(Some(&s.state_dir()), true)
        .unwrap()
        .unwrap();
    let rec = ocwrap::state::registry::Record {
        version: 1,
        id: "0badf00d".into(),
        folder: s.dir.clone(),
        url: Some("http://127.0.0.1:9".into()),
        port: Some(9),
        uid: sys::getuid(),
        // Same PID, another start time: the process it meant is gone.
        supervisor: ocwrap::proc::ProcId {
            pid: vpid,
            start_time: start + 7,
        },
        opencode: Some(ocwrap::proc::ProcId {
            pid: vpid,
            start_time: start + 7,
        }),
        pgid: vpid,
        log: None,
        started_at: 0,
        grace_ms: 100,
        kill_timeout_ms: 100,
    };
    reg.write_record(&rec).unwrap();
    let rows = ps(&s);
    assert_eq!(rows[0]["state"], "dead");
    let (o, _) = run_output(s.ocwrap(&["stop", "0badf00d"]), T);
    assert!(o.status.success(), "{}", stderr(&o));
    let (o, _) = run_output(s.ocwrap(&["reap", "--match", &s.mark]), T);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        is_alive(vpid),
        "an unrelated process with a recycled PID was signalled"
    );
    let _ = victim.kill();
    let _ = victim.wait();
}

#[test]
fn hostile_state_dirs_are_refused_and_bad_records_skipped() {
    let s = Scene::new("ws-hostile");
    use std::os::unix::fs::PermissionsExt;
    // World-writable.
    let state = s.state_dir();
    std::fs::create_dir_all(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o777)).unwrap();
    let (o, _) = run_output(s.ocwrap(&["ps"]), T);
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("writable by others"), "{}", stderr(&o));
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
    // A symlink in place of the directory.
    let link = s.path("link");
    std::os::unix::fs::symlink(&state, &link).unwrap();
    let mut c = s.ocwrap(&["ps"]);
    c.env("OCWRAP_STATE_DIR", &link);
    let (o, _) = run_output(c, T);
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("is a symlink"), "{}", stderr(&o));
    // Corrupt records are skipped with a warning.
    std::fs::write(state.join("deadbeef.json"), "{not json").unwrap();
    std::fs::write(state.join("0000cafe.json"), r#"{"version": 99}"#).unwrap();
    let (o, _) = run_output(s.ocwrap(&["ps", "--json"]), T);
    assert!(o.status.success());
    assert_eq!(stdout(&o).trim(), "[]");
    let err = stderr(&o);
    assert!(err.contains("deadbeef.json: invalid JSON"), "{err}");
    assert!(err.contains("format version 99"), "{err}");
    assert!(!err.contains("panicked"));
}

#[test]
fn concurrent_spawns_get_their_own_records() {
    let s = Scene::new("ws-conc");
    let dir = folder(&s, "repo");
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let mut c = s.ocwrap(&["spawn", "--detach", "--json", "--opencode", &fake(), &dir]);
            c.stdout(Stdio::piped()).stderr(Stdio::piped());
            c.spawn().unwrap()
        })
        .collect();
    let mut ids = Vec::new();
    for h in handles {
        let o = h.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        let j: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
        ids.push(j["id"].as_str().unwrap().to_string());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 4);
    let rows = ps(&s);
    assert_eq!(rows.len(), 4);
    assert!(rows.iter().all(|r| r["state"] == "running"));
    let (o, _) = run_output(s.ocwrap(&["stop", "--all"]), T);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(s.alive().is_empty(), "{:?}", s.alive());
}

#[test]
fn stop_ends_a_server_that_ignores_sigterm_and_unknown_ids_fail() {
    let s = Scene::new("ws-stubborn");
    let dir = folder(&s, "repo");
    let mut c = s.ocwrap(&[
        "spawn",
        "--detach",
        "--json",
        "--grace",
        "1s",
        "--opencode",
        &fake(),
        &dir,
    ]);
    c.env("FAKE_OPENCODE_MODE", "ignore-term");
    let (o, _) = run_output(c, T);
    assert!(o.status.success(), "{}", stderr(&o));
    let (o, _) = run_output(s.ocwrap(&["stop", "--all"]), T);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(s.alive().is_empty(), "{:?}", s.alive());
    let (o, _) = run_output(s.ocwrap(&["stop", "ffffffff"]), T);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("no workspace matches 'ffffffff'"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_foreground_spawn_ends_when_the_app_that_started_it_dies() {
    let mut s = Scene::new("ws-appdeath");
    let dir = folder(&s, "repo");
    let pids = s.path("pids.json");
    // The "app": a shell that starts a foreground spawn and waits.
    let mut app = Command::new("sh");
    app.args([
        "-c",
        &format!(
            "{} spawn --opencode {} {} > /dev/null 2>&1 & wait",
            bin(),
            fake(),
            dir
        ),
    ])
    .env(MARK_VAR, &s.mark)
    .env("OCWRAP_STATE_DIR", s.state_dir())
    .env("FAKE_OPENCODE_PIDS", &pids);
    let app = s.spawn(app);
    let p = s.read_json("pids.json");
    let daemon = p["children"][1].as_i64().unwrap() as i32;
    assert!(wait_until(T, || ps(&s)
        .first()
        .is_some_and(|r| r["url"].is_string())));
    kill_pid(app as i32, libc::SIGKILL);
    assert!(
        wait_until(T, || !is_alive(daemon)),
        "the workspace outlived the app"
    );
    assert!(wait_until(T, || s.alive().is_empty()), "{:?}", s.alive());
    assert!(ps(&s).is_empty());
}

#[test]
fn stop_takes_over_from_a_hung_supervisor() {
    let s = Scene::new("ws-hung");
    let dir = folder(&s, "repo");
    let j = spawn_detached(&s, &dir, &["--grace", "1s", "--kill-timeout", "1s"]);
    let sup = j["pids"]["supervisor"].as_i64().unwrap() as i32;
    // A stopped supervisor never runs its teardown.
    kill_pid(sup, libc::SIGSTOP);
    assert!(wait_until(T, || ocwrap::proc::read_stat(sup)
        .is_some_and(|st| st.is_stopped())));
    let (o, elapsed) = run_output(s.ocwrap(&["stop", "--all", "--kill-timeout", "2s"]), T);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("did not finish"), "{}", stderr(&o));
    assert!(elapsed < Duration::from_secs(15), "{elapsed:?}");
    assert!(s.alive().is_empty(), "{:?}", s.alive());
    assert!(ps(&s).is_empty());
}

#[test]
fn a_workspace_inside_a_supervised_app_keeps_its_grace() {
    // `ocwrap -- app` where the app runs a foreground `ocwrap spawn`: when
    // the app dies, the workspace's ocwrap gets its parent-death SIGTERM
    // and then the outer teardown's SIGTERM. Neither is a second stop
    // request: opencode (which ignores SIGTERM) gets its full grace.
    let mut s = Scene::new("nested");
    let dir = folder(&s, "ws");
    let out = s.path("spawn.json");
    let err = s.path("spawn.err");
    let script = format!(
        "{} spawn --json --grace 2s --kill-timeout 5s --opencode {} {dir} > {} 2> {} & wait",
        bin(),
        fake(),
        out.display(),
        err.display()
    );
    let mut c = s.ocwrap(&["-q", "--grace", "30s", "--", "sh", "-c", &script]);
    c.env("FAKE_OPENCODE_MODE", "ignore-term");
    let outer = s.spawn(c);
    assert!(
        wait_until(T, || std::fs::read_to_string(&out)
            .is_ok_and(|t| t.contains("\"url\""))),
        "the workspace never got ready: {}",
        std::fs::read_to_string(&err).unwrap_or_default()
    );
    let started = std::time::Instant::now();
    kill_pid(outer as i32, libc::SIGTERM);
    let status = s.wait(outer, T).expect("the outer ocwrap did not exit");
    let took = started.elapsed();
    let nested = std::fs::read_to_string(&err).unwrap();
    assert_eq!(status.code(), Some(143), "{nested}");
    assert!(
        !nested.contains("sending SIGKILL now"),
        "the nested teardown escalated: {nested}"
    );
    assert!(nested.contains("grace expired"), "{nested}");
    assert!(took >= Duration::from_secs(2), "took {took:?}: {nested}");
    assert!(s.alive().is_empty(), "{:?}", s.alive());
}

#[test]
fn machine_readable_results_for_the_js_api() {
    // ps --json's started_at, stop --json, stats --json's last teardown,
    // and the foreground spawn's second line.
    let mut s = Scene::new("ws-api");
    let dir = folder(&s, "repo");
    let (o, _) = run_output(s.ocwrap(&["stop", "--json", "--all"]), T);
    assert!(o.status.success(), "{}", stderr(&o));
    let none: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(none, serde_json::json!({"clean": true, "workspaces": []}));

    let j = spawn_detached(&s, &dir, &[]);
    let rows = ps(&s);
    let started = rows[0]["started_at"].as_str().unwrap();
    assert_eq!(started, j["started_at"].as_str().unwrap(), "{}", rows[0]);
    let (o, _) = run_output(s.ocwrap(&["stop", "--json", &dir]), T);
    assert!(o.status.success(), "{}", stderr(&o));
    let stopped: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(stopped["clean"], true, "{stopped}");
    let w = &stopped["workspaces"][0];
    assert_eq!(w["id"], j["id"]);
    assert_eq!(w["folder"], dir);
    assert_eq!(w["clean"], true);
    assert!(w["processes"].as_u64().unwrap() >= 4, "{w}");
    assert_eq!(w["survivors"], serde_json::json!([]));
    assert!(w["duration_ms"].is_u64() && w["killed"].is_u64(), "{w}");
    assert!(s.alive().is_empty(), "{:?}", s.alive());
    let (o, _) = run_output(s.ocwrap(&["stats", "--json"]), T);
    let stats: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let last = stats["last_teardown_at"]
        .as_str()
        .expect("last_teardown_at");
    assert!(humantime::parse_rfc3339(last).is_ok(), "{stats}");

    let mut c = s.ocwrap(&["spawn", "--json", "--opencode", &fake(), &dir]);
    c.stdout(Stdio::piped()).stderr(Stdio::null());
    let pid = s.spawn(c);
    let mut lines = BufReader::new(s.take_stdout(pid)).lines();
    let ready: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert!(ready["url"].is_string(), "{ready}");
    kill_pid(pid as i32, libc::SIGTERM);
    let end: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(end["event"], "stopped", "{end}");
    assert_eq!(end["id"], ready["id"]);
    assert_eq!(end["trigger"], "received SIGTERM");
    assert_eq!(end["clean"], true);
    assert_eq!(end["survivors"], serde_json::json!([]));
    let code = s.wait(pid, T).unwrap().code();
    assert_eq!(end["exit_code"].as_i64().map(|c| c as i32), code, "{end}");
    assert!(lines.next().is_none());
    assert!(s.alive().is_empty(), "{:?}", s.alive());
}

#[test]
fn the_npm_launchers_death_is_a_stop_request() {
    // The launcher (here a shell) stays ocwrap's parent and says so; when
    // it is SIGKILLed, ocwrap tears the whole tree down.
    let mut s = Scene::new("launcher");
    let out = s.path("tree.json");
    let script = format!(
        "OCWRAP_LAUNCHER_PID=$$ {} -q --grace 1s -- python3 {} tree {} wait & wait",
        bin(),
        fixture("tree.py").display(),
        out.display()
    );
    let mut c = Command::new("sh");
    c.args(["-c", &script])
        .env(MARK_VAR, &s.mark)
        .env("OCWRAP_STATE_DIR", s.state_dir());
    let launcher = s.spawn(c);
    let pids = s.read_json("tree.json");
    assert!(is_alive(pids["plain"].as_i64().unwrap() as i32));
    kill_pid(launcher as i32, libc::SIGKILL);
    assert!(
        wait_until(T, || s.alive().is_empty()),
        "left after the launcher died: {:?}",
        s.alive()
    );
    // And a launcher that is already gone when ocwrap starts: at once.
    let (o, took) = run_output(
        {
            let mut c = s.ocwrap(&["-q", "--", "sleep", "1000"]);
            c.env("OCWRAP_LAUNCHER_PID", "999999999");
            c
        },
        T,
    );
    assert_eq!(o.status.code(), Some(143), "{}", stderr(&o));
    assert!(took < Duration::from_secs(10), "{took:?}");
}

/// The files of the state directory whose name starts with `id` (the
/// record, the log and its rotated part), sorted.
fn files_of(s: &Scene, id: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(s.state_dir())
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(id))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The `*.log*` files of the state directory.
fn logs_in(s: &Scene) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(s.state_dir())
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains(".log"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn a_detached_workspaces_log_goes_when_it_ends_cleanly_and_stays_when_it_fails() {
    let s = Scene::new("ws-logs");
    let dir = folder(&s, "repo");

    // Stopped: ended as asked, so record and log both go.
    let j = spawn_detached(&s, &dir, &[]);
    let id = j["id"].as_str().unwrap().to_string();
    let log = j["log"].as_str().unwrap().to_string();
    assert_eq!(
        log,
        s.state_dir()
            .join(format!("{id}.log"))
            .display()
            .to_string()
    );
    assert!(
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("opencode server listening on")
    );
    let (o, _) = run_output(s.ocwrap(&["stop", &id]), T);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        wait_until(T, || files_of(&s, &id).is_empty()),
        "a cleanly stopped workspace left {:?}",
        files_of(&s, &id)
    );

    // opencode killed from outside after it was ready: a failure. The log
    // stays and says where it is.
    let j = spawn_detached(&s, &dir, &[]);
    let id = j["id"].as_str().unwrap().to_string();
    let log = j["log"].as_str().unwrap().to_string();
    let sup = j["pids"]["supervisor"].as_i64().unwrap() as i32;
    kill_pid(
        j["pids"]["opencode"].as_i64().unwrap() as i32,
        libc::SIGKILL,
    );
    assert!(
        wait_until(T, || !is_alive(sup)),
        "the supervisor kept running"
    );
    assert!(wait_until(T, || s.alive().is_empty()), "{:?}", s.alive());
    assert_eq!(
        files_of(&s, &id),
        [format!("{id}.log")],
        "the failed workspace's log is gone"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains(&format!(
            "workspace {id} ended badly (CMD was killed by SIGKILL); its log is kept at {log}"
        )),
        "{text}"
    );

    // Crashed before it was ready: the caller's error names the log, which
    // holds opencode's last words.
    let mut c = s.ocwrap(&["spawn", "--detach", "--opencode", &fake(), &dir]);
    c.env("FAKE_OPENCODE_MODE", "crash");
    let before = logs_in(&s);
    let (o, _) = run_output(c, T);
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    let new: Vec<String> = logs_in(&s)
        .into_iter()
        .filter(|l| !before.contains(l))
        .collect();
    assert_eq!(new.len(), 1, "{new:?}");
    let kept = s.state_dir().join(&new[0]);
    let err = stderr(&o);
    assert!(err.contains("fatal: something broke"), "{err}");
    assert!(
        err.trim_end()
            .ends_with(&format!("; its log is kept at {}", kept.display())),
        "{err}"
    );
    assert!(
        std::fs::read_to_string(&kept)
            .unwrap()
            .contains("fatal: something broke")
    );
    assert!(wait_until(T, || s.alive().is_empty()), "{:?}", s.alive());
}

#[test]
fn a_detached_spawn_that_never_started_leaves_no_log() {
    let s = Scene::new("ws-nolog");
    let dir = folder(&s, "repo");
    let not_there = s.path("no/opencode");
    let a_dir = s.path("bin");
    std::fs::create_dir(&a_dir).unwrap();
    for (opencode, status, says) in [
        (&not_there, 127, "command not found"),
        (&a_dir, 126, "is a directory"),
    ] {
        let opencode = opencode.to_str().unwrap();
        let (o, _) = run_output(
            s.ocwrap(&["spawn", "--detach", "--opencode", opencode, &dir]),
            T,
        );
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(status), "{err}");
        assert!(err.contains(&format!("{opencode}: {says}")), "{err}");
        assert!(!err.contains("log is kept"), "{err}");
        assert_eq!(
            logs_in(&s),
            Vec::<String>::new(),
            "{opencode}: an empty log was left"
        );
        assert!(ps(&s).is_empty());
    }
}

/// With `--log-max 64KiB`, 4 MB of opencode's stderr (where real opencode's
/// --print-logs go) leaves at most ID.log and ID.log.1, each within the cap
/// at every moment it is looked at, with no line lost at a rotation; the
/// supervisor writes to the current ID.log, opencode only to a pipe.
#[test]
fn a_detached_workspaces_log_is_capped_by_rotation() {
    let s = Scene::new("ws-rotate");
    let dir = folder(&s, "repo");
    let mut c = s.ocwrap(&["spawn", "--detach", "--json", "--opencode", &fake(), &dir]);
    c.env("FAKE_OPENCODE_MODE", "chatty")
        .env("FAKE_OPENCODE_CHATTY_STDERR", "1")
        .env("OCWRAP_LOG_MAX", "64KiB");
    let (o, _) = run_output(c, T);
    assert!(o.status.success(), "{}", stderr(&o));
    let j: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    let id = j["id"].as_str().unwrap().to_string();
    let log = std::path::PathBuf::from(j["log"].as_str().unwrap());
    let old = s.state_dir().join(format!("{id}.log.1"));
    const MAX: u64 = 64 * 1024;
    let size = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let text = |p: &std::path::Path| std::fs::read_to_string(p).unwrap_or_default();
    let mut peak = 0;
    let done = wait_until(T, || {
        let (a, b) = (size(&log), size(&old));
        assert!(
            a <= MAX && b <= MAX,
            "over the cap: {id}.log {a}, {id}.log.1 {b}"
        );
        peak = peak.max(a + b);
        let names = files_of(&s, &id);
        assert!(
            names.iter().all(|n| [
                format!("{id}.json"),
                format!("{id}.log"),
                format!("{id}.log.1")
            ]
            .contains(n)),
            "{names:?}"
        );
        text(&log).contains("log line 19999 ")
    });
    assert!(done, "opencode's output stalled (or was lost)");
    assert!(peak > MAX, "never rotated: peak {peak}");
    // What is kept is the newest stretch, every line of it, in order.
    let kept = format!("{}{}", text(&old), text(&log));
    let numbers: Vec<u32> = kept
        .lines()
        .filter_map(|l| l.strip_prefix("log line ")?.split(' ').next()?.parse().ok())
        .collect();
    assert!(numbers.len() > 400, "{} lines kept", numbers.len());
    assert!(
        numbers.windows(2).all(|w| w[1] == w[0] + 1) && numbers.last() == Some(&19999),
        "lines lost or out of order around a rotation"
    );
    // The supervisor's stdout and stderr are the current log; opencode's
    // are a pipe (so nothing but the supervisor holds a log open).
    let sup = j["pids"]["supervisor"].as_i64().unwrap();
    let oc = j["pids"]["opencode"].as_i64().unwrap();
    for fd in [1, 2] {
        assert_eq!(
            std::fs::read_link(format!("/proc/{sup}/fd/{fd}")).unwrap(),
            log
        );
        let oc_fd = std::fs::read_link(format!("/proc/{oc}/fd/{fd}")).unwrap();
        assert!(oc_fd.to_string_lossy().starts_with("pipe:"), "{oc_fd:?}");
    }
    let (o, _) = run_output(s.ocwrap(&["stop", &id]), T);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        wait_until(T, || files_of(&s, &id).is_empty()),
        "stop left {:?}",
        files_of(&s, &id)
    );
    assert!(s.alive().is_empty(), "{:?}", s.alive());
}

#[test]
fn bad_log_max_and_huge_ready_timeout_are_usage_errors_and_start_nothing() {
    let s = Scene::new("ws-usage");
    let dir = folder(&s, "repo");
    let pids = s.path("pids.json");
    let cases: [(&[&str], &str, &str); 6] = [
        (
            &["--ready-timeout", "18446744073709551615"],
            "",
            "at most 365 days",
        ),
        (&["--ready-timeout", "366d"], "", "at most 365 days"),
        (&[], "OCWRAP_READY_TIMEOUT", "at most 365 days"),
        (&["--log-max", "65535"], "", "at least 64KiB"),
        (&["--log-max", "8MB"], "", "invalid size '8MB'"),
        (&[], "OCWRAP_LOG_MAX", "at least 64KiB"),
    ];
    for (flags, var, says) in cases {
        for detach in [false, true] {
            let mut args = vec!["spawn", "--opencode"];
            let f = fake();
            args.push(&f);
            if detach {
                args.push("--detach");
            }
            args.extend(flags);
            args.push(&dir);
            let mut c = s.ocwrap(&args);
            c.env("FAKE_OPENCODE_PIDS", &pids);
            match var {
                "OCWRAP_READY_TIMEOUT" => c.env(var, "18446744073709551615"),
                "OCWRAP_LOG_MAX" => c.env(var, "1K"),
                _ => &mut c,
            };
            let (o, _) = run_output(c, T);
            let err = stderr(&o);
            let what = format!("{args:?} {var}");
            assert_eq!(o.status.code(), Some(125), "{what}: {err}");
            assert!(
                err.lines().next().unwrap_or_default().contains(says),
                "{what}: {err}"
            );
            assert!(!err.contains("panicked"), "{what}: {err}");
            assert!(!pids.exists(), "{what}: opencode was started");
            assert!(
                !s.state_dir().exists(),
                "{what}: the state directory was touched"
            );
        }
    }
    assert!(s.alive().is_empty());
}

/// `XDG_RUNTIME_DIR` set to something that is not a directory (a session
/// that ended, a value copied into a container): the state goes to
/// `$TMPDIR/ocwrap-UID` instead, and every command finds it there.
#[test]
fn a_missing_xdg_runtime_dir_falls_back_to_tmpdir() {
    let s = Scene::new("ws-xdg");
    let dir = folder(&s, "repo");
    let tmp = s.path("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let a_file = s.path("a-file");
    std::fs::write(&a_file, "").unwrap();
    let fallback = tmp.join(format!("ocwrap-{}", sys::getuid()));
    let xdg = s.path("xdg");
    std::fs::create_dir(&xdg).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&xdg, std::fs::Permissions::from_mode(0o700)).unwrap();
    for (runtime_dir, expected) in [
        (s.path("gone"), fallback.clone()),
        (a_file.clone(), fallback.clone()),
        // The control: an existing runtime dir is used.
        (xdg.clone(), xdg.join("ocwrap")),
    ] {
        let with_env = |args: &[&str]| {
            let mut c = s.ocwrap(args);
            c.env_remove("OCWRAP_STATE_DIR")
                .env("XDG_RUNTIME_DIR", &runtime_dir)
                .env("TMPDIR", &tmp);
            run_output(c, T).0
        };
        let o = with_env(&["spawn", "--detach", "--json", "--opencode", &fake(), &dir]);
        let what = format!("XDG_RUNTIME_DIR={}", runtime_dir.display());
        assert!(o.status.success(), "{what}: {}", stderr(&o));
        let j: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
        let id = j["id"].as_str().unwrap();
        assert!(
            expected.join(format!("{id}.json")).exists(),
            "{what}: no record in {}",
            expected.display()
        );
        assert_eq!(
            j["log"],
            expected.join(format!("{id}.log")).display().to_string(),
            "{what}"
        );
        let rows: Value = serde_json::from_str(&stdout(&with_env(&["ps", "--json"]))).unwrap();
        assert_eq!(rows[0]["id"], id, "{what}: ps does not see it: {rows}");
        let o = with_env(&["stop", id]);
        assert!(o.status.success(), "{what}: {}", stderr(&o));
        assert!(!expected.join(format!("{id}.json")).exists(), "{what}");
        assert!(
            wait_until(T, || s.alive().is_empty()),
            "{what}: {:?}",
            s.alive()
        );
    }
    assert!(
        !s.path("gone").exists(),
        "ocwrap created the missing runtime dir"
    );
}

/// Times and durations in a record come from a file: the largest ones are
/// shown (and used) without a panic.
#[test]
fn a_record_with_huge_times_is_listed_and_stopped_without_a_panic() {
    let s = Scene::new("ws-huge");
    let me = std::process::id() as i32;
    let start = ocwrap::proc::read_stat(me).unwrap().start_time;
    let reg = ocwrap::state::StateDir::open(Some(&s.state_dir()), true)
        .unwrap()
        .unwrap();
    // Our own PID with another start time: a dead workspace.
    let gone = ocwrap::proc::ProcId {
        pid: me,
        start_time: start + 7,
    };
    reg.write_record(&ocwrap::state::registry::Record {
        version: 1,
        id: "0badf00e".into(),
        folder: s.dir.clone(),
        url: None,
        port: None,
        uid: sys::getuid(),
        supervisor: gone,
        opencode: Some(gone),
        pgid: me,
        log: None,
        started_at: u64::MAX,
        grace_ms: u64::MAX,
        kill_timeout_ms: u64::MAX,
    })
    .unwrap();
    let rows = ps(&s);
    assert_eq!(rows[0]["started_at"], "9999-12-31T23:59:59Z", "{}", rows[0]);
    let (o, _) = run_output(s.ocwrap(&["ps"]), T);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
    let (o, _) = run_output(s.ocwrap(&["stop", "0badf00e"]), T);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(ps(&s).is_empty());
}

/// `ps --check` asks every workspace at once: with 100 workspaces, 96 of
/// them behind sockets that accept a connection and never answer, it
/// takes about one probe timeout (2 s), not 96 of them. (The fake opencode
/// answers one request at a time from a backlog of 5: four healthy
/// workspaces share it.)
#[test]
fn ps_check_asks_every_workspace_at_once() {
    let mut s = Scene::new("ws-check");
    let dir = folder(&s, "repo");
    let real = spawn_detached(&s, &dir, &[]);
    let healthy_url = real["url"].as_str().unwrap().to_string();
    // The fake records' supervisor: a live process of ours (of the scene).
    let mut holder = Command::new("sleep");
    holder.arg("1000").env(MARK_VAR, &s.mark);
    let holder = s.spawn(holder) as i32;
    let supervisor = ocwrap::proc::ProcId::of(holder).unwrap();
    let reg = ocwrap::state::StateDir::open(Some(&s.state_dir()), true)
        .unwrap()
        .unwrap();
    // The kernel completes the connections (the listen backlog); nobody
    // ever reads the request.
    let silent: Vec<TcpListener> = (0..96)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let urls = silent
        .iter()
        .map(|l| format!("http://127.0.0.1:{}", l.local_addr().unwrap().port()))
        .chain(std::iter::repeat_n(healthy_url.clone(), 3));
    let mut expected = HashMap::from([(real["id"].as_str().unwrap().to_string(), "healthy")]);
    for (i, url) in urls.enumerate() {
        let rec = ocwrap::state::registry::Record {
            version: 1,
            id: format!("c0{i:06x}"),
            folder: s.dir.join(format!("w{i}")),
            port: ocwrap::opencode::url_port(&url),
            url: Some(url.clone()),
            uid: sys::getuid(),
            supervisor,
            opencode: None,
            pgid: holder,
            log: None,
            started_at: 0,
            grace_ms: 100,
            kill_timeout_ms: 100,
        };
        reg.write_record(&rec).unwrap();
        let health = if url == healthy_url {
            "healthy"
        } else {
            "unresponsive"
        };
        expected.insert(rec.id, health);
    }

    let (o, took) = run_output(s.ocwrap(&["ps", "--check", "--json"]), T);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows: Vec<Value> = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(rows.len(), 100);
    for r in &rows {
        let id = r["id"].as_str().unwrap();
        assert_eq!(r["health"], expected[id], "{r}");
    }
    assert!(
        took < Duration::from_secs(4),
        "ps --check took {took:?} with 96 silent servers (the probe timeout is 2 s)"
    );

    drop(silent);
    let real_id = real["id"].as_str().unwrap();
    for id in expected.keys().filter(|id| *id != real_id) {
        reg.remove_record(id);
    }
    let (o, _) = run_output(s.ocwrap(&["stop", real_id]), T);
    assert!(o.status.success(), "{}", stderr(&o));
}
