
use builtin;
use str;

set edit:completion:arg-completer[ocwrap] = {|@words|
    fn spaces {|n|
        builtin:repeat $n ' ' | str:join ''
    }
    fn cand {|text desc|
        edit:complex-candidate $text &display=$text' '(spaces (- 14 (wcswidth $text)))$desc
    }
    var command = 'ocwrap'
    for word $words[1..-1] {
        if (str:has-prefix $word '-') {
            break
        }
        set command = $command';'$word
    }
    var completions = [
        &'ocwrap'= {
            cand --log-level 'How much to log on stderr'
            cand --log-format 'Log lines as text (`ocwrap: ...`) or JSON objects'
            cand --state-dir 'Per-user state directory (workspace records, logs, counters) [default: $XDG_RUNTIME_DIR/ocwrap if that exists, else $TMPDIR/ocwrap-UID]'
            cand --grace 'Time the tree gets after the stop signal before SIGKILL (e.g. 10s, 500ms; at most 365d)'
            cand --kill-timeout 'Time allowed after SIGKILL to verify that nothing is left'
            cand --stop-signal 'Signal sent to every remaining descendant when the teardown starts'
            cand --forward-to 'Send forwarded signals to CMD alone or to its whole process group'
            cand --pdeath-signal 'Signal CMD gets if ocwrap itself dies (e.g. is SIGKILLed)'
            cand --report 'Write a JSON report of every teardown to FILE'
            cand --rewrite 'Forward signal FROM to CMD as TO (TO 0: drop it); repeatable, or comma-separated (e.g. TERM:INT)'
            cand --remap-exit 'Report CMD''s exit status FROM as TO; repeatable, or comma-separated (e.g. 143:0)'
            cand --linger 'When CMD exits by itself, let the rest of the tree end on its own for up to DURATION before the stop signal'
            cand -q 'Only print errors (same as --log-level error)'
            cand --quiet 'Only print errors (same as --log-level error)'
            cand -v 'Also print debug messages (same as --log-level debug)'
            cand --verbose 'Also print debug messages (same as --log-level debug)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand run 'Supervise CMD (the same as `ocwrap [OPTIONS] -- CMD`)'
            cand spawn 'Start `opencode serve` for a folder as a tracked workspace'
            cand ps 'List workspaces and their health'
            cand stop 'Stop workspaces and verify their whole tree is gone'
            cand reap 'End orphaned workspaces and untracked orphaned opencode servers'
            cand stats 'Show cumulative teardown counters'
            cand completions 'Print a shell completion script'
            cand man 'Print the man page (roff)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'ocwrap;run'= {
            cand --log-level 'How much to log on stderr'
            cand --log-format 'Log lines as text (`ocwrap: ...`) or JSON objects'
            cand --state-dir 'Per-user state directory (workspace records, logs, counters) [default: $XDG_RUNTIME_DIR/ocwrap if that exists, else $TMPDIR/ocwrap-UID]'
            cand --grace 'Time the tree gets after the stop signal before SIGKILL (e.g. 10s, 500ms; at most 365d)'
            cand --kill-timeout 'Time allowed after SIGKILL to verify that nothing is left'
            cand --stop-signal 'Signal sent to every remaining descendant when the teardown starts'
            cand --forward-to 'Send forwarded signals to CMD alone or to its whole process group'
            cand --pdeath-signal 'Signal CMD gets if ocwrap itself dies (e.g. is SIGKILLed)'
            cand --report 'Write a JSON report of every teardown to FILE'
            cand --rewrite 'Forward signal FROM to CMD as TO (TO 0: drop it); repeatable, or comma-separated (e.g. TERM:INT)'
            cand --remap-exit 'Report CMD''s exit status FROM as TO; repeatable, or comma-separated (e.g. 143:0)'
            cand --linger 'When CMD exits by itself, let the rest of the tree end on its own for up to DURATION before the stop signal'
            cand -q 'Only print errors (same as --log-level error)'
            cand --quiet 'Only print errors (same as --log-level error)'
            cand -v 'Also print debug messages (same as --log-level debug)'
            cand --verbose 'Also print debug messages (same as --log-level debug)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'ocwrap;spawn'= {
            cand --log-level 'How much to log on stderr'
            cand --log-format 'Log lines as text (`ocwrap: ...`) or JSON objects'
            cand --state-dir 'Per-user state directory (workspace records, logs, counters) [default: $XDG_RUNTIME_DIR/ocwrap if that exists, else $TMPDIR/ocwrap-UID]'
            cand --port 'Port for opencode serve (0: any free port)'
            cand --hostname 'Hostname opencode serve listens on'
            cand --opencode 'The opencode executable [default: `opencode` on PATH]'
            cand --ready-timeout 'How long to wait for opencode''s listening line'
            cand --log-max 'With --detach: rotate the workspace''s log (ID.log to ID.log.1) when it would pass SIZE, so it takes at most about twice SIZE (bytes, or K/KiB, M/MiB, G/GiB; at least 64KiB)'
            cand --grace 'Time the tree gets after the stop signal before SIGKILL (e.g. 10s, 500ms; at most 365d)'
            cand --kill-timeout 'Time allowed after SIGKILL to verify that nothing is left'
            cand --stop-signal 'Signal sent to every remaining descendant when the teardown starts'
            cand --forward-to 'Send forwarded signals to CMD alone or to its whole process group'
            cand --pdeath-signal 'Signal CMD gets if ocwrap itself dies (e.g. is SIGKILLed)'
            cand --report 'Write a JSON report of every teardown to FILE'
            cand --rewrite 'Forward signal FROM to CMD as TO (TO 0: drop it); repeatable, or comma-separated (e.g. TERM:INT)'
            cand --remap-exit 'Report CMD''s exit status FROM as TO; repeatable, or comma-separated (e.g. 143:0)'
            cand --linger 'When CMD exits by itself, let the rest of the tree end on its own for up to DURATION before the stop signal'
            cand -q 'Only print errors (same as --log-level error)'
            cand --quiet 'Only print errors (same as --log-level error)'
            cand -v 'Also print debug messages (same as --log-level debug)'
            cand --verbose 'Also print debug messages (same as --log-level debug)'
            cand --detach 'Return once ready; a supervisor in its own session keeps watching'
            cand --json 'Print one JSON object instead of the URL'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'ocwrap;ps'= {
            cand --log-level 'How much to log on stderr'
            cand --log-format 'Log lines as text (`ocwrap: ...`) or JSON objects'
            cand --state-dir 'Per-user state directory (workspace records, logs, counters) [default: $XDG_RUNTIME_DIR/ocwrap if that exists, else $TMPDIR/ocwrap-UID]'
            cand -q 'Only print errors (same as --log-level error)'
            cand --quiet 'Only print errors (same as --log-level error)'
            cand -v 'Also print debug messages (same as --log-level debug)'
            cand --verbose 'Also print debug messages (same as --log-level debug)'
            cand --json 'Print a JSON array'
            cand --check 'Ask each server for health (GET /global/health)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'ocwrap;stop'= {
            cand --log-level 'How much to log on stderr'
            cand --log-format 'Log lines as text (`ocwrap: ...`) or JSON objects'
            cand --state-dir 'Per-user state directory (workspace records, logs, counters) [default: $XDG_RUNTIME_DIR/ocwrap if that exists, else $TMPDIR/ocwrap-UID]'
            cand --grace 'Time the tree gets after the stop signal before SIGKILL (e.g. 10s, 500ms; at most 365d)'
            cand --kill-timeout 'Time allowed after SIGKILL to verify that nothing is left'
            cand -q 'Only print errors (same as --log-level error)'
            cand --quiet 'Only print errors (same as --log-level error)'
            cand -v 'Also print debug messages (same as --log-level debug)'
            cand --verbose 'Also print debug messages (same as --log-level debug)'
            cand --all 'Stop every workspace'
            cand --json 'Print the result as one JSON object'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'ocwrap;reap'= {
            cand --log-level 'How much to log on stderr'
            cand --log-format 'Log lines as text (`ocwrap: ...`) or JSON objects'
            cand --state-dir 'Per-user state directory (workspace records, logs, counters) [default: $XDG_RUNTIME_DIR/ocwrap if that exists, else $TMPDIR/ocwrap-UID]'
            cand --match 'What an untracked server is: its program''s name, then its first arguments, compared word by word with each orphan''s arguments (after a leading interpreter such as node or python3; `bin/x` matches `/usr/bin/x`), never as a substring [default: "opencode serve"]'
            cand --grace 'Time the tree gets after the stop signal before SIGKILL (e.g. 10s, 500ms; at most 365d)'
            cand --kill-timeout 'Time allowed after SIGKILL to verify that nothing is left'
            cand -q 'Only print errors (same as --log-level error)'
            cand --quiet 'Only print errors (same as --log-level error)'
            cand -v 'Also print debug messages (same as --log-level debug)'
            cand --verbose 'Also print debug messages (same as --log-level debug)'
            cand --dry-run 'List what would be ended and why; touch nothing'
            cand --json 'Print the targets as JSON'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'ocwrap;stats'= {
            cand --log-level 'How much to log on stderr'
            cand --log-format 'Log lines as text (`ocwrap: ...`) or JSON objects'
            cand --state-dir 'Per-user state directory (workspace records, logs, counters) [default: $XDG_RUNTIME_DIR/ocwrap if that exists, else $TMPDIR/ocwrap-UID]'
            cand -q 'Only print errors (same as --log-level error)'
            cand --quiet 'Only print errors (same as --log-level error)'
            cand -v 'Also print debug messages (same as --log-level debug)'
            cand --verbose 'Also print debug messages (same as --log-level debug)'
            cand --json 'Print the counters as JSON'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'ocwrap;completions'= {
            cand --log-level 'How much to log on stderr'
            cand --log-format 'Log lines as text (`ocwrap: ...`) or JSON objects'
            cand --state-dir 'Per-user state directory (workspace records, logs, counters) [default: $XDG_RUNTIME_DIR/ocwrap if that exists, else $TMPDIR/ocwrap-UID]'
            cand -q 'Only print errors (same as --log-level error)'
            cand --quiet 'Only print errors (same as --log-level error)'
            cand -v 'Also print debug messages (same as --log-level debug)'
            cand --verbose 'Also print debug messages (same as --log-level debug)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'ocwrap;man'= {
            cand --log-level 'How much to log on stderr'
            cand --log-format 'Log lines as text (`ocwrap: ...`) or JSON objects'
            cand --state-dir 'Per-user state directory (workspace records, logs, counters) [default: $XDG_RUNTIME_DIR/ocwrap if that exists, else $TMPDIR/ocwrap-UID]'
            cand -q 'Only print errors (same as --log-level error)'
            cand --quiet 'Only print errors (same as --log-level error)'
            cand -v 'Also print debug messages (same as --log-level debug)'
            cand --verbose 'Also print debug messages (same as --log-level debug)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'ocwrap;help'= {
            cand run 'Supervise CMD (the same as `ocwrap [OPTIONS] -- CMD`)'
            cand spawn 'Start `opencode serve` for a folder as a tracked workspace'
            cand ps 'List workspaces and their health'
            cand stop 'Stop workspaces and verify their whole tree is gone'
            cand reap 'End orphaned workspaces and untracked orphaned opencode servers'
            cand stats 'Show cumulative teardown counters'
            cand completions 'Print a shell completion script'
            cand man 'Print the man page (roff)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'ocwrap;help;run'= {
        }
        &'ocwrap;help;spawn'= {
        }
        &'ocwrap;help;ps'= {
        }
        &'ocwrap;help;stop'= {
        }
        &'ocwrap;help;reap'= {
        }
        &'ocwrap;help;stats'= {
        }
        &'ocwrap;help;completions'= {
        }
        &'ocwrap;help;man'= {
        }
        &'ocwrap;help;help'= {
        }
    ]
    $completions[$command]
}
