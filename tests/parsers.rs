//! Property tests for the parsers that read what other programs wrote:
//! `/proc/PID/stat` lines, opencode's listening line, durations and sizes
//! from the command line and the environment, processes' arguments and the
//! `reap --match` matcher, and workspace records from the state directory.
//! Whatever the input, a parser returns a value or an error; it never
//! panics.

mod common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use ocwrap::cli::{MAX_DURATION, MIN_LOG_MAX, parse_duration, parse_log_max};
use ocwrap::opencode::{SERVER_COMMAND, ServerCommand, parse_listening};
use ocwrap::proc::{ProcId, parse_stat, split_argv};
use ocwrap::state::StateDir as Registry;
use ocwrap::state::registry::{Record, valid_id};
use proptest::prelude::*;
use serde_json::Value;

const LISTENING: &str = "opencode server listening on ";

/// A `/proc/PID/stat` line as the kernel prints it (52 fields).
#[allow(clippy::too_many_arguments)]
fn stat_line(
    pid: i32,
    comm: &str,
    state: char,
    ppid: i32,
    pgrp: i32,
    session: i32,
    start: u64,
    rss: u64,
) -> String {
    format!(
        "{pid} ({comm}) {state} {ppid} {pgrp} {session} 34816 {pgrp} 4194560 1043 0 0 0 2 1 0 0 20 0 1 0 \
         {start} 8519680 {rss} 18446744073709551615 94000000000000 94000000100000 140700000000000 0 0 0 0 0 0 \
         0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
    )
}

/// Command names as hostile as a process can make them: spaces,
/// parentheses (balanced or not), newlines, a fake tail of fields.
fn comm() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ ()\n\ta-z0-9SRZT)(]{0,32}",
        any::<String>(),
        Just(") S 1 1 1 0 -1 0".to_string()),
        Just("a) Z 9 9 9\n(b".to_string()),
    ]
}

proptest! {
    #[test]
    fn parse_stat_round_trips_any_command_name(
        pid in 1..=4_194_304i32,
        comm in comm(),
        state in proptest::sample::select(vec!['R', 'S', 'D', 'Z', 'T', 't', 'X', 'I']),
        ppid in 0..=4_194_304i32,
        pgrp in 0..=4_194_304i32,
        session in 0..=4_194_304i32,
        start in any::<u64>(),
        rss in any::<u64>(),
    ) {
        let line = stat_line(pid, &comm, state, ppid, pgrp, session, start, rss);
        let st = parse_stat(&line).unwrap_or_else(|| panic!("not parsed: {line:?}"));
        prop_assert_eq!(st.pid, pid);
        prop_assert_eq!(&st.comm, &comm);
        prop_assert_eq!(st.state, state);
        prop_assert_eq!((st.ppid, st.pgrp, st.session), (ppid, pgrp, session));
        prop_assert_eq!(st.start_time, start);
        prop_assert_eq!(st.rss_pages, rss);
    }

    #[test]
    fn parse_stat_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = parse_stat(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn parse_stat_never_panics_on_a_damaged_line(
        comm in comm(),
        cut in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        at in any::<prop::sample::Index>(),
    ) {
        let line = stat_line(42, &comm, 'S', 1, 42, 42, 123456, 99);
        let mut bytes = line.into_bytes();
        // Truncated (a short read), and with one byte changed.
        let _ = parse_stat(&String::from_utf8_lossy(&bytes[..cut.index(bytes.len() + 1)]));
        let i = at.index(bytes.len());
        bytes[i] = byte;
        let _ = parse_stat(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn parse_listening_never_panics(line in any::<String>()) {
        let _ = parse_listening(&line);
    }

    #[test]
    fn parse_listening_finds_the_url(
        prefix in any::<String>().prop_filter("no listening line of its own", |p| !p.contains(LISTENING)),
        scheme in prop_oneof![Just("http://"), Just("https://")],
        rest in "[!-~]{0,60}",
        tail in proptest::option::of(("[ \t]", any::<String>())),
    ) {
        let url = format!("{scheme}{rest}");
        let mut line = format!("{prefix}{LISTENING}{url}");
        if let Some((space, more)) = &tail {
            line.push_str(space);
            line.push_str(more);
        }
        prop_assert_eq!(parse_listening(&line), Some(url.as_str()));
    }

    #[test]
    fn parse_listening_ignores_other_lines_and_schemes(
        line in any::<String>().prop_filter("no listening line", |l| !l.contains(LISTENING)),
        scheme in "[a-z]{1,8}".prop_filter("not http", |s| s != "http" && s != "https"),
        rest in "[!-~]{0,30}",
    ) {
        prop_assert_eq!(parse_listening(&line), None);
        let other = format!("{LISTENING}{scheme}://{rest}");
        prop_assert_eq!(parse_listening(&other), None);
    }

    #[test]
    fn parse_duration_never_panics(text in any::<String>()) {
        if let Err(e) = parse_duration(&text) {
            prop_assert!(!e.is_empty());
        }
    }

    #[test]
    fn parse_duration_never_panics_on_huge_numbers(
        n in any::<u64>(),
        unit in proptest::sample::select(vec!["", "ns", "us", "ms", "s", "m", "h", "d", "w", "M", "y"]),
        more in proptest::option::of(any::<u64>()),
    ) {
        let text = match more {
            Some(k) => format!("{n}{unit} {k}y"),
            None => format!("{n}{unit}"),
        };
        if let Err(e) = parse_duration(&text) {
            prop_assert!(!e.is_empty());
        }
    }

    #[test]
    fn only_eight_lowercase_hex_digits_are_an_id(text in prop_oneof!["[0-9a-fA-F./]{6,10}", any::<String>()]) {
        let expected = text.len() == 8 && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        prop_assert_eq!(valid_id(&text), expected);
    }

    /// Whatever parse_duration accepts is at most a year, and every
    /// deadline ocwrap makes from it (now + grace + kill-timeout, on both
    /// clocks) fits: no duration from the command line can make the
    /// teardown's arithmetic overflow.
    #[test]
    fn parse_duration_never_accepts_an_overflowing_duration(
        text in prop_oneof![
            any::<String>(),
            (any::<u64>(), proptest::sample::select(vec!["", "ns", "ms", "s", "m", "h", "d", "w", "M", "y"]))
                .prop_map(|(n, u)| format!("{n}{u}")),
            (0..400u64, proptest::sample::select(vec!["d", "days", "w", "M", "y"]))
                .prop_map(|(n, u)| format!("{n}{u}")),
        ],
    ) {
        if let Ok(d) = parse_duration(&text) {
            prop_assert!(d <= MAX_DURATION, "{} gave {:?}", text, d);
            let now = Instant::now();
            prop_assert!(now.checked_add(d).and_then(|t| t.checked_add(d)).is_some());
            prop_assert!(SystemTime::now().checked_add(d + d).is_some());
            prop_assert!(u64::try_from((d + d).as_millis()).is_ok());
        }
    }

    #[test]
    fn durations_over_a_year_are_refused(secs in MAX_DURATION.as_secs() + 1..=u64::MAX, extra_ms in 1..1000u64) {
        let e = parse_duration(&secs.to_string()).unwrap_err();
        prop_assert!(e.contains("at most 365 days"), "{}", e);
        let with_unit = format!("{secs}s");
        prop_assert!(parse_duration(&with_unit).is_err(), "{} was accepted", with_unit);
        let just_over = format!("365d {extra_ms}ms");
        prop_assert!(parse_duration(&just_over).is_err(), "{} was accepted", just_over);
    }

    #[test]
    fn parse_log_max_never_panics_and_keeps_its_floor(
        text in prop_oneof![
            any::<String>(),
            (any::<u64>(), proptest::sample::select(vec!["", "k", "K", "KiB", "kib", "M", "MiB", "g", "GiB", "MB", " M"]))
                .prop_map(|(n, u)| format!("{n}{u}")),
        ],
    ) {
        if let Ok(bytes) = parse_log_max(&text) {
            prop_assert!(bytes >= MIN_LOG_MAX);
        }
    }

    #[test]
    fn parse_log_max_reads_binary_units(n in 64..4_000_000u64) {
        prop_assert_eq!(parse_log_max(&format!("{n}K")), Ok(n << 10));
        prop_assert_eq!(parse_log_max(&format!("{n}kib")), Ok(n << 10));
        prop_assert_eq!(parse_log_max(&format!("{n}m")), Ok(n << 20));
        prop_assert_eq!(parse_log_max(&format!("{}", n << 10)), Ok(n << 10));
    }

    #[test]
    fn argv_splits_back_into_its_words(words in proptest::collection::vec("[^\u{0}]{0,12}", 1..8)) {
        let mut bytes = Vec::new();
        for w in &words {
            bytes.extend_from_slice(w.as_bytes());
            bytes.push(0);
        }
        let back = split_argv(&bytes);
        if words == [String::new()] {
            prop_assert!(back.is_empty());
        } else {
            prop_assert_eq!(back, words);
        }
    }

    #[test]
    fn server_command_never_panics(pattern in any::<String>(), argv in proptest::collection::vec(any::<String>(), 0..8)) {
        if let Some(p) = ServerCommand::parse(&pattern) {
            let _ = p.matches(&argv);
        }
    }

    /// A program named `opencode` (anywhere) run with `serve` is a server,
    /// also behind node or python3; anything that only carries the words
    /// later in its arguments (tmux, a shell's -c, an editor) is not.
    #[test]
    fn a_server_is_what_runs_not_what_is_mentioned(
        dir in "(/[a-z0-9._-]{1,8}){0,4}",
        interpreter in proptest::option::of(proptest::sample::select(vec!["node", "/usr/bin/node", "python3", "bun"])),
        rest in proptest::collection::vec("[!-~]{1,10}", 0..4),
        wrapper in "[a-z][a-z0-9-]{0,10}".prop_filter("not a runtime or the server", |w| {
            !["node", "nodejs", "bun", "deno", "python", "python2", "python3", "sh", "bash", "dash", "opencode"].contains(&w.as_str())
        }),
        wrapper_args in proptest::collection::vec("[!-~]{1,10}", 0..4),
    ) {
        let default = ServerCommand::parse(SERVER_COMMAND).unwrap();
        let program = if dir.is_empty() { "opencode".to_string() } else { format!("{dir}/opencode") };
        let mut argv: Vec<String> = interpreter.iter().map(|i| i.to_string()).collect();
        argv.push(program.clone());
        argv.push("serve".into());
        argv.extend(rest.iter().cloned());
        prop_assert!(default.matches(&argv), "{:?}", argv);

        let mut mention = vec![wrapper.clone()];
        mention.extend(wrapper_args.iter().cloned());
        mention.push(program.clone());
        mention.push("serve".into());
        mention.extend(rest.iter().cloned());
        prop_assert!(!default.matches(&mention), "{:?}", mention);
        let joined = vec![wrapper, "-c".into(), format!("{program} serve")];
        prop_assert!(!default.matches(&joined), "{:?}", joined);
    }

    #[test]
    fn parse_duration_reads_what_users_type(n in 0..=30_000_000u64, m in 0..20_000u64, pad in "[ \t]{0,3}") {
        prop_assert_eq!(parse_duration(&format!("{pad}{n}{pad}")), Ok(Duration::from_secs(n)));
        prop_assert_eq!(parse_duration(&format!("{n}s")), Ok(Duration::from_secs(n)));
        prop_assert_eq!(parse_duration(&format!("{n}ms")), Ok(Duration::from_millis(n)));
        prop_assert_eq!(parse_duration(&format!("{m}m {n}s")), Ok(Duration::from_secs(m * 60 + n)));
        let negative = format!("-{n}s");
        prop_assert!(parse_duration(&negative).is_err(), "{} was accepted", negative);
    }
}

/// A private state directory, removed when dropped.
struct StateDir(PathBuf);

impl StateDir {
    fn new() -> StateDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "ocwrap-parsers-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        // Warnings for skipped records would flood the test output.
        ocwrap::log::init(ocwrap::log::Level::Error, ocwrap::log::Format::Text);
        StateDir(dir)
    }

    fn registry(&self) -> Registry {
        Registry::open(Some(&self.0), true).unwrap().unwrap()
    }
}

impl Drop for StateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn valid_record(id: &str) -> Record {
    Record {
        version: ocwrap::state::registry::FORMAT_VERSION,
        id: id.into(),
        folder: "/srv/repo".into(),
        url: Some("http://127.0.0.1:4096".into()),
        port: Some(4096),
        uid: common::sys::getuid(),
        supervisor: ProcId {
            pid: 1234,
            start_time: 5678,
        },
        opencode: Some(ProcId {
            pid: 1235,
            start_time: 5679,
        }),
        pgid: 1235,
        log: None,
        started_at: 1_700_000_000,
        grace_ms: 10_000,
        kill_timeout_ms: 5_000,
    }
}

/// Whatever `load_all` returns must be a record this user may act on: of
/// the current format, ours, and named like its file.
fn check_loaded(reg: &Registry, id: &str) -> Result<Option<Record>, TestCaseError> {
    let all = reg.records();
    prop_assert!(all.len() <= 1);
    for r in &all {
        prop_assert_eq!(&r.id, id);
        prop_assert!(valid_id(&r.id));
        prop_assert_eq!(r.version, ocwrap::state::registry::FORMAT_VERSION);
        prop_assert_eq!(r.uid, common::sys::getuid());
    }
    Ok(all.into_iter().next())
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        any::<String>().prop_map(Value::from),
        "[0-9a-f]{8}".prop_map(Value::from),
    ];
    leaf.prop_recursive(2, 8, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            proptest::collection::hash_map("[a-z_]{1,12}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

const FIELDS: &[&str] = &[
    "version",
    "id",
    "folder",
    "url",
    "port",
    "uid",
    "supervisor",
    "opencode",
    "pgid",
    "log",
    "started_at",
    "grace_ms",
    "kill_timeout_ms",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn arbitrary_bytes_as_a_record_are_loaded_or_skipped(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let dir = StateDir::new();
        let reg = dir.registry();
        std::fs::write(reg.record_path("0123abcd"), &bytes).unwrap();
        check_loaded(&reg, "0123abcd")?;
    }

    #[test]
    fn a_damaged_record_is_loaded_or_skipped(
        field in proptest::sample::select(FIELDS),
        value in proptest::option::of(json_value()),
        cut in any::<prop::sample::Index>(),
        noise in proptest::collection::vec(any::<u8>(), 0..16),
        at in any::<prop::sample::Index>(),
        how in 0..3u8,
    ) {
        let dir = StateDir::new();
        let reg = dir.registry();
        let mut v = serde_json::to_value(valid_record("0123abcd")).unwrap();
        // One field replaced by any JSON value, or removed.
        match &value {
            Some(x) => v[field] = x.clone(),
            None => { v.as_object_mut().unwrap().remove(field); }
        }
        let mut text = serde_json::to_vec_pretty(&v).unwrap();
        match how {
            0 => {}
            1 => text.truncate(cut.index(text.len() + 1)),
            _ => {
                let i = at.index(text.len() + 1);
                text.splice(i..i, noise.iter().copied());
            }
        }
        std::fs::write(reg.record_path("0123abcd"), &text).unwrap();
        check_loaded(&reg, "0123abcd")?;
    }

    #[test]
    fn a_valid_record_round_trips(
        id in "[0-9a-f]{8}",
        folder in "/[^\0]{0,40}",
        pid in 2..=4_194_304i32,
        start in any::<u64>(),
        url in proptest::option::of("http://127\\.0\\.0\\.1:[0-9]{1,5}"),
        grace_ms in any::<u64>(),
    ) {
        let dir = StateDir::new();
        let reg = dir.registry();
        let mut rec = valid_record(&id);
        rec.folder = folder.into();
        rec.supervisor = ProcId { pid, start_time: start };
        rec.url = url;
        rec.grace_ms = grace_ms;
        reg.write_record(&rec).unwrap();
        let loaded = check_loaded(&reg, &id)?.expect("a valid record was skipped");
        prop_assert_eq!(serde_json::to_value(&loaded).unwrap(), serde_json::to_value(&rec).unwrap());
    }
}
