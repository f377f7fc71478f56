//! `ocwrap -- CMD`: the supervisor against real process trees.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const T: Duration = Duration::from_secs(30);

fn tree_py() -> String {
    fixture("tree.py").display().to_string()
}

#[test]
fn exit_codes_are_the_childs() {
    let s = Scene::new("exit");
    for code in [0, 1, 42, 255] {
        let (o, _) = run_output(
            s.ocwrap(&["-q", "--", "sh", "-c", &format!("exit {code}")]),
            T,
        );
        assert_eq!(o.status.code(), Some(code), "{}", stderr(&o));
    }
}

#[test]
fn death_by_signal_is_128_plus_n() {
    let s = Scene::new("sig");
    for (name, n) in [
        ("TERM", 15),
        ("KILL", 9),
        ("HUP", 1),
        ("USR1", 10),
        ("SEGV", 11),
    ] {
        let (o, _) = run_output(
            s.ocwrap(&["-q", "--", "sh", "-c", &format!("kill -{name} $$")]),
            T,
        );
        assert_eq!(o.status.code(), Some(128 + n), "{name}: {}", stderr(&o));
    }
}

#[test]
fn not_found_is_127_and_not_executable_is_126() {
    let s = Scene::new("exec");
    let (o, _) = run_output(s.ocwrap(&["--", "/nonexistent/cmd-xyz"]), T);
    assert_eq!(o.status.code(), Some(127));
    let err = stderr(&o);
    assert!(
        err.contains("command not found") && err.lines().count() == 1,
        "{err}"
    );

    let script = s.path("not-executable.sh");
    std::fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
    let (o, _) = run_output(s.ocwrap(&["--", script.to_str().unwrap()]), T);
    assert_eq!(o.status.code(), Some(126), "{}", stderr(&o));
    assert!(stderr(&o).contains("permission denied"), "{}", stderr(&o));
}

#[test]
fn a_directory_or_a_script_without_its_interpreter_is_126_and_named() {
    let s = Scene::new("exec2");
    let bin = s.path("bin");
    std::fs::create_dir(&bin).unwrap();
    let dir = bin.to_str().unwrap();
    let (o, _) = run_output(s.ocwrap(&["--", dir]), T);
    assert_eq!(o.status.code(), Some(126), "{}", stderr(&o));
    assert_eq!(
        stderr(&o),
        format!("ocwrap: error: {dir}: is a directory\n")
    );

    // Found, executable, but its #! interpreter is missing: the kernel says
    // ENOENT, which is not "command not found".
    use std::os::unix::fs::PermissionsExt;
    let script = bin.join("needs-python");
    std::fs::write(&script, "#!/nope/python -u\nprint('hi')\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let expected = |name: &str| {
        format!(
            "ocwrap: error: {name}: cannot execute: its interpreter /nope/python was not found\n"
        )
    };
    let (o, _) = run_output(s.ocwrap(&["--", script.to_str().unwrap()]), T);
    assert_eq!(o.status.code(), Some(126), "{}", stderr(&o));
    assert_eq!(stderr(&o), expected(script.to_str().unwrap()));
    // The same found through PATH.
    let mut c = s.ocwrap(&["--", "needs-python"]);
    c.env("PATH", format!("{dir}:/usr/bin:/bin"));
    let (o, _) = run_output(c, T);
    assert_eq!(o.status.code(), Some(126), "{}", stderr(&o));
    assert_eq!(stderr(&o), expected("needs-python"));
    // And a name found nowhere is still 127.
    let mut c = s.ocwrap(&["--", "no-such-command-xyz"]);
    c.env("PATH", dir);
    let (o, _) = run_output(c, T);
    assert_eq!(o.status.code(), Some(127), "{}", stderr(&o));
    assert!(stderr(&o).contains("command not found"), "{}", stderr(&o));
}

/// Durations above a year (or that do not fit at all) are refused when the
/// command line is parsed, from a flag or from the environment: exit 125, a
/// usage error, no panic, and CMD never started. Until issue 13 the
/// grace passed and the teardown aborted on "overflow when adding duration
/// to instant" (exit 134), leaving the tree behind.
#[test]
fn huge_durations_are_refused_before_anything_starts() {
    let s = Scene::new("huge");
    let started = s.path("started");
    let cmd = format!("touch {}", started.display());
    let refused = |o: &std::process::Output, what: &str| {
        let err = stderr(o);
        assert_eq!(o.status.code(), Some(125), "{what}: {err}");
        assert!(!err.contains("panicked"), "{what}: {err}");
        let first = err.lines().next().unwrap_or_default();
        assert!(
            first.starts_with("error: invalid value ")
                && (first.ends_with("is too long: at most 365 days")
                    || first.contains("invalid duration")),
            "{what}: not a one-line usage error: {err}"
        );
        assert!(!started.exists(), "{what}: CMD was started");
    };
    for value in [
        "18446744073709551615",
        "18446744073709551616",
        "366d",
        "31536001",
        "600000000000y",
    ] {
        for flag in ["--grace", "--kill-timeout", "--linger"] {
            let (o, _) = run_output(s.ocwrap(&[flag, value, "--", "sh", "-c", &cmd]), T);
            refused(&o, &format!("{flag} {value}"));
            let (o, _) = run_output(s.ocwrap(&["run", flag, value, "sh", "-c", &cmd]), T);
            refused(&o, &format!("run {flag} {value}"));
        }
        for var in ["OCWRAP_GRACE", "OCWRAP_KILL_TIMEOUT", "OCWRAP_LINGER"] {
            let mut c = s.ocwrap(&["--", "sh", "-c", &cmd]);
            c.env(var, value);
            let (o, _) = run_output(c, T);
            refused(&o, &format!("{var}={value}"));
        }
        for sub in [&["stop", "--all"][..], &["reap", "--dry-run"][..]] {
            let mut args = sub.to_vec();
            args.extend(["--grace", value]);
            let (o, _) = run_output(s.ocwrap(&args), T);
            refused(&o, &args.join(" "));
        }
    }

    // A year is fine, and so is the arithmetic on it: a tree that ends on
    // the stop signal is done at once.
    let (o, took) = run_output(
        s.ocwrap(&[
            "--grace",
            "365d",
            "--kill-timeout",
            "365d",
            "--",
            "sh",
            "-c",
            "setsid sleep 1000 & exit 3",
        ]),
        T,
    );
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("0 survivors"), "{}", stderr(&o));
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert!(s.alive().is_empty(), "{:?}", s.alive());
}

#[test]
fn bad_usage_is_125_with_a_clear_message() {
    let s = Scene::new("usage");
    let (o, _) = run_output(s.ocwrap(&[]), T);
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("no command given"), "{}", stderr(&o));
    let (o, _) = run_output(s.ocwrap(&["--grace", "soon", "--", "true"]), T);
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("invalid duration"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("panicked"));
    let (o, _) = run_output(s.ocwrap(&["--stop-signal", "NOPE", "--", "true"]), T);
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("unknown signal"), "{}", stderr(&o));
}

#[test]
fn arguments_pass_exactly() {
    let s = Scene::new("args");
    let args = ["a b", "\"q\"", "it's", "", "--x", "-q", "$HOME", "*"];
    let mut all = vec![
        "-q",
        "--",
        "python3",
        "-c",
        "import sys,json; print(json.dumps(sys.argv[1:]))",
    ];
    all.extend(args);
    let (o, _) = run_output(s.ocwrap(&all), T);
    let got: Vec<String> = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(got, args);
    // The `run` subcommand form, without `--`.
    let (o, _) = run_output(s.ocwrap(&["-q", "run", "echo", "x y", "--z"]), T);
    assert_eq!(stdout(&o), "x y --z\n");
}

#[test]
fn stdin_and_stdout_pass_through() {
    let s = Scene::new("stdio");
    let mut c = s.ocwrap(&["-q", "--", "cat"]);
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"hello\nworld\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.stdout, b"hello\nworld\n");
    assert!(out.status.success());
}

#[test]
fn child_starts_clean_in_its_own_group() {
    let s = Scene::new("clean");
    // ocwrap itself runs with SIGINT ignored and SIGUSR1 blocked (as under
    // nohup or a shell's background job). The child must not inherit the
    // mask, nor any of ocwrap's own descriptors; what its starter ignored
    // stays ignored (python also leaves PIPE and XFSZ ignored), as tini
    // does, and nothing else. `cat` reports its own state.
    let outer = "import os,signal,sys; signal.signal(signal.SIGINT, signal.SIG_IGN); \
                 signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1]); \
                 os.closerange(3, 65536); os.execv(sys.argv[1], sys.argv[1:])";
    let wrapped = |args: &[&str]| {
        let mut c = Command::new("python3");
        c.args(["-c", outer, bin(), "-q", "--"])
            .args(args)
            .env(MARK_VAR, &s.mark)
            .env("OCWRAP_TEST_ENV", "kept");
        c.current_dir(&s.dir);
        let (o, _) = run_output(c, T);
        assert!(o.status.success(), "{}", stderr(&o));
        stdout(&o)
    };
    let status = wrapped(&["cat", "/proc/self/status"]);
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
            .unwrap()
    };
    assert_eq!(field("SigBlk:"), "0000000000000000");
    let bit = |sig: i32| 1u64 << (sig - 1);
    assert_eq!(
        u64::from_str_radix(&field("SigIgn:"), 16).unwrap(),
        bit(libc::SIGINT) | bit(libc::SIGPIPE) | bit(libc::SIGXFSZ),
        "{}",
        field("SigIgn:")
    );
    // Started without inherited ignores, CMD ignores nothing, although
    // ocwrap itself keeps SIGPIPE ignored.
    let (o, _) = run_output(s.ocwrap(&["-q", "--", "cat", "/proc/self/status"]), T);
    assert!(
        stdout(&o).lines().any(|l| l == "SigIgn:\t0000000000000000"),
        "{}",
        stdout(&o)
    );
    // ls opens the directory it lists as fd 3; nothing else may be open.
    assert_eq!(wrapped(&["ls", "/proc/self/fd"]), "0\n1\n2\n3\n");
    let stat = wrapped(&["cat", "/proc/self/stat"]);
    let st = ocwrap::proc::parse_stat(&stat).unwrap();
    assert_eq!(st.pgrp, st.pid, "child leads its own process group");
    assert_eq!(wrapped(&["sh", "-c", "echo $OCWRAP_TEST_ENV"]), "kept\n");
    assert_eq!(
        wrapped(&["pwd"]).trim(),
        s.dir.canonicalize().unwrap().to_str().unwrap()
    );
}

fn forwarded(s: &mut Scene, extra: &[&str], sigs: &[&str]) -> Vec<String> {
    let rec = s.path(&format!("signals-{}", sigs.join("-")));
    let _ = std::fs::remove_file(&rec);
    let mut args = vec!["-q"];
    args.extend(extra);
    args.extend(["--", "python3"]);
    let py = tree_py();
    args.push(&py);
    args.extend(["signals", rec.to_str().unwrap()]);
    let pid = s.spawn(s.ocwrap(&args));
    let ready = format!("{}.ready", rec.display());
    assert!(wait_until(T, || std::path::Path::new(&ready).exists()));
    for sig in sigs {
        kill_pid(pid as i32, signal_of(sig));
        let want = format!("SIG{sig}");
        assert!(
            wait_until(T, || std::fs::read_to_string(&rec)
                .unwrap_or_default()
                .contains(&want)),
            "{sig} was not forwarded"
        );
    }
    kill_pid(pid as i32, libc::SIGTERM);
    assert!(s.wait(pid, T).is_some());
    std::fs::read_to_string(&rec)
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn every_forwarded_signal_arrives() {
    let mut s = Scene::new("fwd");
    let got = forwarded(&mut s, &[], &["USR1", "USR2", "WINCH", "CONT"]);
    assert_eq!(&got[..4], ["SIGUSR1", "SIGUSR2", "SIGWINCH", "SIGCONT"]);
    for sig in ["TERM", "INT", "QUIT", "HUP"] {
        let got = forwarded(&mut s, &[], &[sig]);
        assert_eq!(
            got.first().map(String::as_str),
            Some(format!("SIG{sig}").as_str())
        );
    }
}

#[test]
fn forward_to_group_reaches_the_whole_group() {
    for (mode, expect) in [("group", true), ("child", false)] {
        let mut s = Scene::new("fwdgroup");
        let rec = s.path("rec");
        let pid = s.spawn(s.ocwrap(&[
            "-q",
            "--forward-to",
            mode,
            "--",
            "python3",
            &tree_py(),
            "group-signals",
            rec.to_str().unwrap(),
        ]));
        let _ = s.read_json("rec.cmd");
        kill_pid(pid as i32, libc::SIGUSR1);
        // Then a terminating signal, which the grandchild records before
        // the teardown ends it: its arrival orders the check.
        kill_pid(pid as i32, libc::SIGTERM);
        assert!(s.wait(pid, T).is_some());
        let got = std::fs::read_to_string(&rec).unwrap_or_default();
        assert_eq!(got.contains("SIGUSR1"), expect, "{mode}: {got}");
    }
}

#[test]
fn a_burst_of_orphans_leaves_no_zombie() {
    let mut s = Scene::new("orphans");
    let out = s.path("orphans.json");
    let pid = s.spawn(s.ocwrap(&[
        "-q",
        "--",
        "python3",
        &tree_py(),
        "orphans",
        out.to_str().unwrap(),
        "2000",
    ]));
    let _ = s.read_json("orphans.json");
    assert!(
        wait_until(T, || zombies_of(pid as i32) == 0),
        "{} zombies left under ocwrap",
        zombies_of(pid as i32)
    );
    kill_pid(pid as i32, libc::SIGTERM);
    assert!(s.wait(pid, T).is_some());
}

#[test]
fn the_whole_tree_is_gone_and_the_stubborn_one_killed_after_the_grace() {
    let mut s = Scene::new("tree");
    let out = s.path("tree.json");
    let start = Instant::now();
    let mut c = s.ocwrap(&[
        "--grace",
        "2s",
        "--",
        "python3",
        &tree_py(),
        "tree",
        out.to_str().unwrap(),
        "exit",
    ]);
    c.stderr(Stdio::piped());
    let pid = s.spawn(c);
    let status = s.wait(pid, T).expect("ocwrap did not exit");
    let elapsed = start.elapsed();
    assert_eq!(status.code(), Some(0));
    let tree = s.read_json("tree.json");
    for (name, p) in tree.as_object().unwrap() {
        assert!(
            !is_alive(p.as_i64().unwrap() as i32),
            "{name} ({p}) survived"
        );
    }
    assert!(s.alive().is_empty(), "survivors: {:?}", s.alive());
    // Only the SIGTERM-ignoring child needed the grace.
    assert!(
        elapsed >= Duration::from_secs(2),
        "exited after {elapsed:?}, before the grace"
    );
    let mut err = String::new();
    std::io::Read::read_to_string(&mut s.take_child(pid).stderr.take().unwrap(), &mut err).unwrap();
    assert!(
        err.contains("4 ended on the stop signal, 1 killed, 0 survivors"),
        "{err}"
    );
}

#[test]
fn teardown_returns_as_soon_as_the_tree_is_empty() {
    let s = Scene::new("early");
    let out = s.path("t.json");
    let script = format!(
        "sleep 1000 & setsid sleep 1000 & echo '{{}}' > {}; exit 0",
        out.display()
    );
    let (o, elapsed) = run_output(s.ocwrap(&["--grace", "60s", "--", "sh", "-c", &script]), T);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        elapsed < Duration::from_secs(20),
        "took {elapsed:?} with a 60s grace"
    );
    assert!(
        stderr(&o).contains("2 ended on the stop signal, 0 killed"),
        "{}",
        stderr(&o)
    );
    assert!(s.alive().is_empty());
}

#[test]
fn a_second_signal_escalates_to_sigkill() {
    let mut s = Scene::new("escalate");
    let out = s.path("tree.json");
    let mut c = s.ocwrap(&[
        "--grace",
        "120s",
        "--",
        "python3",
        &tree_py(),
        "tree",
        out.to_str().unwrap(),
        "wait",
    ]);
    c.stderr(Stdio::piped());
    let pid = s.spawn(c);
    let _ = s.read_json("tree.json");
    kill_pid(pid as i32, libc::SIGINT);
    // Wait until the graceful stage has done all it can: CMD (python, which
    // dies of the forwarded SIGINT) and every child but the stubborn one are
    // gone; only ocwrap and the stubborn child still carry the marker.
    let tree = s.read_json("tree.json");
    let stubborn = tree["ignores_term"].as_i64().unwrap() as i32;
    let mut want = vec![pid as i32, stubborn];
    want.sort();
    assert!(wait_until(T, || s.alive() == want), "{:?}", s.alive());
    let start = Instant::now();
    kill_pid(pid as i32, libc::SIGINT);
    let status = s.wait(pid, T).expect("no exit after the second signal");
    assert!(start.elapsed() < Duration::from_secs(20));
    assert!(s.alive().is_empty(), "{:?}", s.alive());
    let mut err = String::new();
    std::io::Read::read_to_string(&mut s.take_child(pid).stderr.take().unwrap(), &mut err).unwrap();
    assert!(err.contains("second SIGINT"), "{err}");
    assert!(err.contains("1 killed"), "{err}");
    // CMD (python) died of the forwarded SIGINT: 130.
    assert_eq!(status.code(), Some(130), "{err}");
}

#[test]
fn works_as_pid_1_in_a_pid_namespace() {
    if unsafe_is_root() {
        let s = Scene::new("pid1");
        let script = "sleep 1000 & (setsid sh -c 'sleep 1000 & exit 0' &); \
                      for i in $(seq 200); do (true &) ; done; \
                      test $PPID = 1 && echo under-pid-1; exit 7";
        let mut c = Command::new("unshare");
        c.args([
            "--pid",
            "--fork",
            "--mount-proc",
            bin(),
            "--grace",
            "5s",
            "--",
            "sh",
            "-c",
            script,
        ])
        .env(MARK_VAR, &s.mark);
        let (o, _) = run_output(c, T);
        assert_eq!(o.status.code(), Some(7), "{}", stderr(&o));
        assert_eq!(stdout(&o), "under-pid-1\n");
        assert!(stderr(&o).contains("0 survivors"), "{}", stderr(&o));
        assert!(s.alive().is_empty(), "{:?}", s.alive());
    } else {
        eprintln!("works_as_pid_1_in_a_pid_namespace: needs root for unshare --pid; not run");
    }
}

fn unsafe_is_root() -> bool {
    sys::getuid() == 0
}

#[test]
fn parent_death_signal_reaches_cmd() {
    let mut s = Scene::new("pdeath");
    let out = s.path("state.json");
    let pid = s.spawn(s.ocwrap(&[
        "-q",
        "--",
        "sh",
        "-c",
        &format!(
            "echo $$ > {}.tmp && mv {0}.tmp {0} && exec sleep 1000",
            out.display()
        ),
    ]));
    assert!(wait_until(T, || out.exists()));
    let cmd: i32 = std::fs::read_to_string(&out)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(is_alive(cmd));
    kill_pid(pid as i32, libc::SIGKILL);
    assert!(
        wait_until(T, || !is_alive(cmd)),
        "CMD outlived a SIGKILLed ocwrap"
    );
}

#[test]
fn never_signals_a_process_that_is_not_a_descendant() {
    let mut s = Scene::new("notours");
    // A sibling in the same session and process group as ocwrap.
    let mut bystander = Command::new("sleep");
    bystander.arg("1000").env(MARK_VAR, &s.mark);
    let by = s.spawn(bystander) as i32;
    let (o, _) = run_output(
        s.ocwrap(&[
            "--forward-to",
            "group",
            "--",
            "sh",
            "-c",
            "sleep 1000 & kill -TERM $PPID; wait",
        ]),
        T,
    );
    assert!(stderr(&o).contains("0 survivors"), "{}", stderr(&o));
    assert!(
        is_alive(by),
        "a process outside ocwrap's tree was signalled"
    );
}

#[test]
fn options_come_from_the_environment_and_flags_win() {
    let s = Scene::new("env");
    let cmd = ["--", "sh", "-c", "trap '' TERM; sleep 1000 & exit 0"];
    let mut c = s.ocwrap(&cmd);
    c.env("OCWRAP_GRACE", "300ms");
    let (o, elapsed) = run_output(c, T);
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
    assert!(stderr(&o).contains("1 killed"), "{}", stderr(&o));

    let mut args = vec!["--grace", "300ms"];
    args.extend(cmd);
    let mut c = s.ocwrap(&args);
    c.env("OCWRAP_GRACE", "1h");
    let (o, elapsed) = run_output(c, T);
    assert!(
        elapsed < Duration::from_secs(10),
        "the flag did not win: {elapsed:?}"
    );
    assert!(stderr(&o).contains("1 killed"), "{}", stderr(&o));
}

#[test]
fn quiet_verbose_and_json_logs() {
    let s = Scene::new("logs");
    let (o, _) = run_output(s.ocwrap(&["-q", "--", "true"]), T);
    assert_eq!(stderr(&o), "");
    // Nothing to end: nothing to say at the default level.
    let (o, _) = run_output(s.ocwrap(&["--", "true"]), T);
    assert_eq!(stderr(&o), "");
    let (o, _) = run_output(s.ocwrap(&["-v", "--", "true"]), T);
    assert!(
        stderr(&o).contains("ocwrap: started true as")
            && stderr(&o).contains("ocwrap: teardown (CMD exited with status 0)"),
        "{}",
        stderr(&o)
    );
    // Something ended on the stop signal: the summary at the default level.
    let (o, _) = run_output(s.ocwrap(&["--", "sh", "-c", "sleep 1000 & exit 0"]), T);
    assert!(
        stderr(&o).contains("ocwrap: teardown (CMD exited with status 0) done in"),
        "{}",
        stderr(&o)
    );
    let (o, _) = run_output(
        s.ocwrap(&[
            "--log-format",
            "json",
            "--",
            "sh",
            "-c",
            "sleep 1000 & exit 0",
        ]),
        T,
    );
    let events: Vec<serde_json::Value> = stderr(&o)
        .lines()
        .map(|l| serde_json::from_str(l).expect(l))
        .collect();
    let names: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"teardown.completed"), "{names:?}");
    assert!(names.contains(&"teardown.started"), "{names:?}");
    let started = events
        .iter()
        .find(|e| e["event"] == "teardown.started")
        .unwrap();
    assert_eq!(started["trigger"], "CMD exited with status 0");
    let done = events
        .iter()
        .find(|e| e["event"] == "teardown.completed")
        .unwrap();
    assert_eq!(done["ended_on_stop_signal"], 1);
    assert!(done["ts"].is_string() && done["level"] == "info");
}

#[test]
fn the_terminal_is_handed_to_cmd_and_given_back() {
    let s = Scene::new("tty");
    // A pseudo-terminal whose session runs a non-interactive shell (no job
    // control: ocwrap runs in the shell's foreground group, as from a
    // package.json script). The check after ocwrap exits fails unless
    // ocwrap gave the terminal back.
    let check = "python3 -c 'import os; print(os.tcgetpgrp(0) == os.getpgrp())'";
    let script = format!("{} -q -- {check}; {check}", bin());
    let driver = r#"
import os, pty, sys
pid, fd = pty.fork()
if pid == 0:
    os.execvp("sh", ["sh", "-c", sys.argv[1]])
out = b""
while True:
    try:
        chunk = os.read(fd, 4096)
    except OSError:
        break
    if not chunk:
        break
    out += chunk
os.waitpid(pid, 0)
sys.stdout.write(out.decode().replace("\r", ""))
"#;
    let mut c = Command::new("python3");
    c.args(["-c", driver, &script]).env(MARK_VAR, &s.mark);
    let (o, _) = run_output(c, T);
    assert_eq!(stdout(&o), "True\nTrue\n", "{}", stderr(&o));
}

#[test]
fn report_file_and_counters_record_every_teardown() {
    let s = Scene::new("report");
    let report = s.path("report.jsonl");
    let r = report.to_str().unwrap();
    for _ in 0..2 {
        let (o, _) = run_output(
            s.ocwrap(&[
                "-q",
                "--grace",
                "300ms",
                "--report",
                r,
                "--",
                "sh",
                "-c",
                "sleep 1000 & trap '' TERM; sh -c 'trap \"\" TERM; sleep 1000' & exit 3",
            ]),
            T,
        );
        assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    }
    let docs: Vec<serde_json::Value> = std::fs::read_to_string(&report)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(docs.len(), 2, "one document per teardown");
    let d = &docs[0];
    assert_eq!(d["trigger"], "CMD exited with status 3");
    assert_eq!(d["exit_code"], 3);
    assert_eq!(d["ended_on_stop_signal"], 1);
    assert_eq!(d["killed"], 2);
    assert_eq!(d["grace_timeout_hit"], true);
    let procs = d["processes"].as_array().unwrap();
    // The three descendants, and CMD, which exited by itself (no signal).
    assert_eq!(procs.len(), 4, "{d}");
    assert!(
        procs.iter().any(|p| p["ended_by"] == "kill")
            && procs.iter().any(|p| p["ended_by"] == "stop_signal")
            && procs
                .iter()
                .any(|p| p["ended_by"] == "itself" && p["signals"] == serde_json::json!([])),
        "{d}"
    );
    assert!(d["timeline"].as_array().unwrap().len() >= 3);

    let (o, _) = run_output(s.ocwrap(&["stats", "--json"]), T);
    let c: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(c["teardowns"], 2, "{c}");
    assert_eq!(c["clean"], 2);
    assert_eq!(c["grace_timeouts"], 2);
    assert_eq!(c["processes_killed"], 4);
    assert!(c["max_ms"].as_u64().unwrap() >= 300);
    let (o, _) = run_output(s.ocwrap(&["stats"]), T);
    assert!(stdout(&o).contains("teardowns        2"), "{}", stdout(&o));
}

#[test]
fn an_unwritable_state_dir_only_warns() {
    let s = Scene::new("nostate");
    let mut c = s.ocwrap(&["--", "sh", "-c", "sleep 1000 & exit 0"]);
    c.env("OCWRAP_STATE_DIR", "/proc/version/nope");
    let (o, _) = run_output(c, T);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("warning: cannot update the counters"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("0 survivors"));
}

#[test]
fn listing_into_a_closed_pipe_is_quiet() {
    let s = Scene::new("pipe");
    // stdout is a pipe whose read end is already closed (as after `| head`
    // has read its fill): every write fails, deterministically.
    let driver = "import os,subprocess,sys; r,w=os.pipe(); os.close(r); \
                  p=subprocess.run(sys.argv[1:], stdout=w, stderr=subprocess.PIPE); \
                  sys.stdout.write(p.stderr.decode())";
    for args in [&["man"][..], &["completions", "bash"], &["stats"], &["ps"]] {
        let mut c = Command::new("python3");
        c.args(["-c", driver, bin()])
            .args(args)
            .env(MARK_VAR, &s.mark)
            .env("OCWRAP_STATE_DIR", s.state_dir());
        let (o, _) = run_output(c, T);
        assert_eq!(stdout(&o), "", "{args:?} reported the broken pipe");
    }
}
