//! The fast path against clap: the same definition of every top-level
//! option, and the same result wherever the fast path gives one.
//!
//! clap reads the environment of the process (`Arg::env` calls
//! `std::env::var_os`), and changing it under a multi-threaded test
//! binary is not sound. So `agrees_with_clap_in_this_environment` compares
//! the two under whatever environment it runs in, and
//! `agrees_with_clap_under_other_environments` runs it again in child
//! processes of this test binary, each with its own environment.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::process::Command;

use clap::Parser;

use super::{OPTIONS, parse};
use crate::cli::{Cli, command};

#[test]
fn table_matches_clap() {
    let mut cmd = command();
    cmd.build();
    // --help and --version are clap's own: the fast path leaves them to
    // clap (they are not in OPTIONS, so it does not recognise them).
    let clap_opts: Vec<_> = cmd
        .get_arguments()
        .filter(|a| !a.is_positional() && !["help", "version"].contains(&a.get_id().as_str()))
        .collect();
    for a in &clap_opts {
        let id = a.get_id().as_str();
        let Some(o) = OPTIONS.iter().find(|o| o.id == id) else {
            panic!(
                "top-level option `{id}` is not in src/cli/fast.rs OPTIONS (add it there and to parse)"
            );
        };
        assert_eq!(a.get_long(), Some(o.long), "{id}: long name");
        assert_eq!(a.get_short(), o.short, "{id}: short name");
        assert_eq!(
            a.get_env().map(|e| e.to_str().unwrap()),
            o.env,
            "{id}: environment variable"
        );
        let defaults: Vec<_> = a
            .get_default_values()
            .iter()
            .map(|d| d.to_str().unwrap())
            .collect();
        // A SetTrue flag's default is clap's "false".
        let expected = if o.flag {
            vec!["false"]
        } else {
            o.default.into_iter().collect()
        };
        assert_eq!(defaults, expected, "{id}: default");
        let action = if o.flag {
            clap::ArgAction::SetTrue
        } else if o.list {
            clap::ArgAction::Append
        } else {
            clap::ArgAction::Set
        };
        assert_eq!(
            a.get_value_delimiter(),
            o.list.then_some(','),
            "{id}: value delimiter"
        );
        assert_eq!(
            format!("{:?}", a.get_action()),
            format!("{action:?}"),
            "{id}: action"
        );
        if !o.flag {
            let n = a.get_num_args().unwrap();
            assert_eq!((n.min_values(), n.max_values()), (1, 1), "{id}: one value");
            assert!(
                !a.is_allow_hyphen_values_set(),
                "{id}: values may not start with -"
            );
        }
        assert!(!a.is_required_set(), "{id}: required");
    }
    for o in &OPTIONS {
        assert!(
            clap_opts.iter().any(|a| a.get_id() == o.id),
            "{} is in the fast path's table but not in clap's definition",
            o.id
        );
    }
    // The only positional at the top level is CMD, after `--`.
    let positionals: Vec<_> = cmd.get_positionals().collect();
    assert_eq!(positionals.len(), 1);
    assert_eq!(positionals[0].get_id(), "command");
    assert!(positionals[0].is_last_set());
}

/// Words a command line is made of: every option in its spellings, good
/// and bad values, subcommand names, help and version, `--`, and tokens
/// clap rejects.
fn vocabulary() -> Vec<OsString> {
    let words = [
        "-q",
        "-v",
        "--quiet",
        "--verbose",
        "-qv",
        "-vq",
        "-h",
        "--help",
        "-V",
        "--version",
        "--grace",
        "5s",
        "--grace=1s",
        "--grace=",
        "--grace=-1s",
        "bogus",
        "1m 30s",
        "3",
        "--kill-timeout",
        "250ms",
        "--kill-timeout=2s",
        "--stop-signal",
        "INT",
        "sigusr1",
        "99",
        "0",
        "--stop-signal=HUP",
        "--forward-to",
        "group",
        "Group",
        "child",
        "--forward-to=group",
        "--pdeath-signal",
        "KILL",
        "--report",
        "/tmp/r.json",
        "--report=-x",
        "-",
        "--state-dir",
        "/tmp/s",
        "--state-dir=/tmp/t",
        "--log-level",
        "debug",
        "DEBUG",
        "error",
        "--log-level=warn",
        "--log-format",
        "json",
        "text",
        "--log-format=json",
        "--rewrite",
        "TERM:INT",
        "--rewrite=HUP:USR1,USR1:0",
        "CHLD:TERM",
        "TERM:INT,",
        "--remap-exit",
        "143:0",
        "--remap-exit=3:4,143:0",
        "999:0",
        "--linger",
        "2s",
        "--linger=500ms",
        "ps",
        "run",
        "spawn",
        "stop",
        "help",
        "man",
        "--",
        "--",
        "--",
        "true",
        "sh",
        "-c",
        "",
        "--gr",
        "--quiet=yes",
        "--unknown",
        "-x",
        "--=x",
    ];
    let mut v: Vec<OsString> = words.iter().map(OsString::from).collect();
    v.push(OsString::from_vec(b"/tmp/\xff".to_vec()));
    v.push(OsString::from_vec(b"--report=\xfe".to_vec()));
    v
}

/// Command lines the fast path must take whenever clap accepts them.
fn common_forms() -> Vec<Vec<&'static str>> {
    vec![
        vec!["--", "true"],
        vec!["-q", "--", "true"],
        vec!["--quiet", "--", "/bin/true", "-x", "--", "--help"],
        vec!["-v", "--log-format", "json", "--", "x"],
        vec!["--grace", "5s", "--", "npm", "run", "dev"],
        vec!["--grace=500ms", "--kill-timeout=1s", "--", "x"],
        vec![
            "--state-dir",
            "/tmp/s",
            "--report",
            "/tmp/r.json",
            "--forward-to",
            "group",
            "--stop-signal",
            "INT",
            "--pdeath-signal",
            "TERM",
            "--kill-timeout",
            "2s",
            "--log-level",
            "debug",
            "--grace",
            "1m 30s",
            "--",
            "x",
            "y",
        ],
        vec!["--report", "ps", "--", "run"],
        vec![
            "--rewrite",
            "TERM:INT,HUP:0",
            "--remap-exit=143:0",
            "--linger",
            "3s",
            "--",
            "x",
        ],
        vec!["--"],
    ]
}

/// A small deterministic generator (xorshift), so that a failure names a
/// case that can be run again.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// Compares the fast path with clap for `args`; true when the fast path
/// took it.
fn compare(args: &[OsString]) -> bool {
    let fast = parse(args.iter().cloned(), |name| std::env::var_os(name));
    let full =
        Cli::try_parse_from(std::iter::once(OsString::from("ocwrap")).chain(args.iter().cloned()));
    match (&fast, &full) {
        (None, _) => false,
        (Some(f), Ok(c)) => {
            assert_eq!(format!("{f:?}"), format!("{c:?}"), "{args:?}");
            true
        }
        (Some(f), Err(e)) => panic!("{args:?}: the fast path gave {f:?}, clap says {e}"),
    }
}

#[test]
fn agrees_with_clap_in_this_environment() {
    for form in common_forms() {
        let args: Vec<OsString> = form.iter().map(OsString::from).collect();
        let clap_ok =
            Cli::try_parse_from(std::iter::once("ocwrap").chain(form.iter().copied())).is_ok();
        assert_eq!(
            compare(&args),
            clap_ok,
            "{form:?}: clap accepts it, the fast path must take it"
        );
    }
    let words = vocabulary();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut taken = 0;
    for _ in 0..1000 {
        let len = rng.below(8);
        let mut args: Vec<OsString> = (0..len)
            .map(|_| words[rng.below(words.len())].clone())
            .collect();
        // Most real command lines end in `-- CMD`.
        if rng.below(3) > 0 {
            args.push("--".into());
            args.push("true".into());
        }
        if compare(&args) {
            taken += 1;
        }
    }
    // The generated lines include many that clap accepts; under an
    // environment that clap rejects, none is taken (and none may be).
    let env_ok = Cli::try_parse_from(["ocwrap", "--", "true"]).is_ok();
    assert!(
        !env_ok || taken > 30,
        "only {taken} generated lines took the fast path"
    );
}

#[test]
fn agrees_with_clap_under_other_environments() {
    let non_utf8 = || OsString::from_vec(b"\xff\xfe".to_vec());
    let valid: Vec<(&str, OsString)> = vec![
        ("OCWRAP_GRACE", "3s".into()),
        ("OCWRAP_KILL_TIMEOUT", "1500ms".into()),
        ("OCWRAP_STOP_SIGNAL", "INT".into()),
        ("OCWRAP_PDEATH_SIGNAL", "9".into()),
        ("OCWRAP_FORWARD_TO", "group".into()),
        ("OCWRAP_REPORT", "/tmp/report.json".into()),
        ("OCWRAP_LOG_LEVEL", "debug".into()),
        ("OCWRAP_LOG_FORMAT", "json".into()),
        ("OCWRAP_STATE_DIR", "/tmp/state".into()),
        ("OCWRAP_REWRITE", "TERM:INT,PWR:TERM".into()),
        ("OCWRAP_REMAP_EXIT", "143:0".into()),
        ("OCWRAP_LINGER", "2s".into()),
    ];
    let mut envs: Vec<Vec<(&str, OsString)>> = vec![vec![], valid.clone()];
    for pair in &valid {
        envs.push(vec![pair.clone()]);
    }
    for (var, bad) in [
        ("OCWRAP_GRACE", OsString::from("bogus")),
        ("OCWRAP_GRACE", OsString::new()),
        ("OCWRAP_GRACE", non_utf8()),
        ("OCWRAP_KILL_TIMEOUT", "-1s".into()),
        ("OCWRAP_STOP_SIGNAL", "0".into()),
        ("OCWRAP_PDEATH_SIGNAL", "NOPE".into()),
        ("OCWRAP_FORWARD_TO", "Group".into()),
        ("OCWRAP_LOG_LEVEL", "DEBUG".into()),
        ("OCWRAP_LOG_FORMAT", "".into()),
        ("OCWRAP_STATE_DIR", "".into()),
        ("OCWRAP_REPORT", non_utf8()),
        ("OCWRAP_REPORT", "".into()),
        ("OCWRAP_REWRITE", "TERM".into()),
        ("OCWRAP_REWRITE", "TERM:INT,".into()),
        ("OCWRAP_REMAP_EXIT", "256:0".into()),
        ("OCWRAP_LINGER", "forever".into()),
    ] {
        envs.push(vec![(var, bad)]);
    }
    let me = std::env::current_exe().unwrap();
    for env in envs {
        let out = Command::new(&me)
            .args([
                "cli::fast::tests::agrees_with_clap_in_this_environment",
                "--exact",
                "--test-threads=1",
            ])
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "under {env:?}:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
