//! The documentation cannot drift from the code: completions and the man
//! page are regenerated and compared with the checked-in files, and the
//! README carries the same exit-code table and environment variables.

use std::path::Path;
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn ocwrap(args: &[&str]) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_ocwrap"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn checked_in(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

#[test]
fn completions_are_current() {
    for (shell, file) in [
        ("bash", "completions/ocwrap.bash"),
        ("zsh", "completions/_ocwrap"),
        ("fish", "completions/ocwrap.fish"),
        ("elvish", "completions/ocwrap.elv"),
        ("powershell", "completions/_ocwrap.ps1"),
    ] {
        assert!(
            ocwrap(&["completions", shell]) == checked_in(file),
            "{file} is stale: run scripts/update-docs.sh"
        );
    }
}

#[test]
fn man_page_is_current_and_complete() {
    let man = ocwrap(&["man"]);
    assert!(
        man == checked_in("man/ocwrap.1"),
        "man/ocwrap.1 is stale: run scripts/update-docs.sh"
    );
    for sub in ["run", "spawn", "ps", "stop", "reap", "stats", "completions"] {
        assert!(
            man.contains(&format!(".SH \"OCWRAP {}\"", sub.to_uppercase()))
                || man.contains(&format!(".SH OCWRAP {}", sub.to_uppercase())),
            "subcommand {sub} missing"
        );
    }
    for (var, _) in ocwrap::manpage::ENVIRONMENT {
        assert!(man.contains(var), "{var} missing from the man page");
    }
    assert!(man.contains("EXIT STATUS") && man.contains("128+N"));
}

#[test]
fn every_env_var_of_the_cli_is_documented() {
    let readme = checked_in("README.md");
    let documented: Vec<&str> = ocwrap::manpage::ENVIRONMENT
        .iter()
        .map(|(v, _)| *v)
        .collect();
    fn walk(cmd: &clap::Command, out: &mut Vec<String>) {
        for a in cmd.get_arguments() {
            if let Some(env) = a.get_env() {
                out.push(env.to_string_lossy().into_owned());
            }
        }
        for s in cmd.get_subcommands() {
            walk(s, out);
        }
    }
    let mut vars = Vec::new();
    // Subcommands' options are deferred until the command is built.
    let mut cmd = ocwrap::cli::command();
    cmd.build();
    walk(&cmd, &mut vars);
    for v in &vars {
        assert!(
            documented.contains(&v.as_str()),
            "{v} is not in manpage::ENVIRONMENT"
        );
    }
    for v in documented {
        assert!(readme.contains(v), "README does not mention {v}");
    }
}

#[test]
fn readme_and_help_carry_the_same_exit_code_table() {
    let readme = checked_in("README.md");
    let help = ocwrap(&["--help"]);
    for line in ocwrap::exit_code::TABLE.lines() {
        assert!(
            readme.contains(line),
            "README lacks the line {line:?} of the exit-code table"
        );
        assert!(help.contains(line.trim()), "--help lacks {line:?}");
    }
    for example in [
        "ocwrap -- next start",
        "url=$(ocwrap spawn --detach .)",
        "ocwrap reap --dry-run",
    ] {
        assert!(help.contains(example), "--help lacks the example {example}");
    }
}

#[test]
fn changelog_has_an_unreleased_section() {
    let c = checked_in("CHANGELOG.md");
    assert!(c.contains("## [Unreleased]"));
    assert!(c.contains("Keep a Changelog"));
}
