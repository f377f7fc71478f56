# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_ocwrap_global_optspecs
    string join \n q/quiet v/verbose log-level= log-format= state-dir= grace= kill-timeout= stop-signal= forward-to= pdeath-signal= report= rewrite= remap-exit= linger= h/help V/version
end

function __fish_ocwrap_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_ocwrap_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_ocwrap_using_subcommand
    set -l cmd (__fish_ocwrap_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c ocwrap -n "__fish_ocwrap_needs_command" -l log-level -d 'How much to log on stderr' -r -f -a "error\t''
warn\t''
info\t''
debug\t''"
complete -c ocwrap -n "__fish_ocwrap_needs_command" -l log-format -d 'Log lines as text (`ocwrap: ...`) or JSON objects' -r -f -a "text\t''
json\t''"
complete -c ocwrap -n "__fish_ocwrap_needs_command" -l state-dir -d 'Per-user state directory (workspace records, logs, counters) [default: $XDG_RUNTIME_DIR/ocwrap if that exists, else $TMPDIR/ocwrap-UID]' -r -F
complete -c ocwrap -n "__fish_ocwrap_needs_command" -l grace -d 'Time the tree gets after the stop signal before SIGKILL (e.g. 10s, 500ms; at most 365d)' -r
complete -c ocwrap -n "__fish_ocwrap_needs_command" -l kill-timeout -d 'Time allowed after SIGKILL to verify that nothing is left' -r
complete -c ocwrap -n "__fish_ocwrap_needs_command" -l stop-signal -d 'Signal sent to every remaining descendant when the teardown starts' -r
complete -c ocwrap -n "__fish_ocwrap_needs_command" -l forward-to -d 'Send forwarded signals to CMD alone or to its whole process group' -r -f -a "child\t'CMD alone'
group\t'CMD\'s whole process group'"
complete -c ocwrap -n "__fish_ocwrap_needs_command" -l pdeath-signal -d 'Signal CMD gets if ocwrap itself dies (e.g. is SIGKILLed)' -r
complete -c ocwrap -n "__fish_ocwrap_needs_command" -l report -d 'Write a JSON report of every teardown to FILE' -r -F
complete -c ocwrap -n "__fish_ocwrap_needs_command" -l rewrite -d 'Forward signal FROM to CMD as TO (TO 0: drop it); repeatable, or comma-separated (e.g. TERM:INT)' -r
complete -c ocwrap -n "__fish_ocwrap_needs_command" -l remap-exit -d 'Report CMD\'s exit status FROM as TO; repeatable, or comma-separated (e.g. 143:0)' -r
complete -c ocwrap -n "__fish_ocwrap_needs_command" -l linger -d 'When CMD exits by itself, let the rest of the tree end on its own for up to DURATION before the stop signal' -r
complete -c ocwrap -n "__fish_ocwrap_needs_command" -s q -l quiet -d 'Only print errors (same as --log-level error)'
complete -c ocwrap -n "__fish_ocwrap_needs_command" -s v -l verbose -d 'Also print debug messages (same as --log-level debug)'
complete -c ocwrap -n "__fish_ocwrap_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ocwrap -n "__fish_ocwrap_needs_command" -s V -l version -d 'Print version'
complete -c ocwrap -n "__fish_ocwrap_needs_command" -a "run" -d 'Supervise CMD (the same as `ocwrap [OPTIONS] -- CMD`)'
complete -c ocwrap -n "__fish_ocwrap_needs_command" -a "spawn" -d 'Start `opencode serve` for a folder as a tracked workspace'
complete -c ocwrap -n "__fish_ocwrap_needs_command" -a "ps" -d 'List workspaces and their health'
complete -c ocwrap -n "__fish_ocwrap_needs_command" -a "stop" -d 'Stop workspaces and verify their whole tree is gone'
complete -c ocwrap -n "__fish_ocwrap_needs_command" -a "reap" -d 'End orphaned workspaces and untracked orphaned opencode servers'
complete -c ocwrap -n "__fish_ocwrap_needs_command" -a "stats" -d 'Show cumulative teardown counters'
complete -c ocwrap -n "__fish_ocwrap_needs_command" -a "completions" -d 'Print a shell completion script'
complete -c ocwrap -n "__fish_ocwrap_needs_command" -a "man" -d 'Print the man page (roff)'
complete -c ocwrap -n "__fish_ocwrap_needs_command" -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c ocwrap -n "__fish_ocwrap_using_subcommand run" -l log-level -d 'How much to log on stderr' -r -f -a "error\t''
warn\t''
info\t''
debug\t''"
complete -c ocwrap -n "__fish_ocwrap_using_subcommand run" -l log-format -d 'Log lines as text (`ocwrap: ...`) or JSON objects' -r -f -a "text\t''
json\t''"
complete -c ocwrap -n "__fish_ocwrap_using_subcommand run" -l state-dir -d 'Per-user state directory (workspace records, logs, counters) [default: $XDG_RUNTIME_DIR/ocwrap if that exists, else $TMPDIR/ocwrap-UID]' -r -F
complete -c ocwrap -n "__fish_ocwrap_using_subcommand run" -l grace -d 'Time the tree gets after the stop signal before SIGKILL (e.g. 10s, 500ms; at most 365d)' -r
complete -c ocwrap -n "__fish_ocwrap_using_subcommand run" -l kill-timeout -d 'Time allowed after SIGKILL to verify that nothing is left' -r
complete -c ocwrap -n "__fish_ocwrap_using_subcommand run" -l stop-signal -d 'Signal sent to every remaining descendant when the teardown starts' -r
complete -c ocwrap -n "__fish_ocwrap_using_subcommand run" -l forward-to -d 'Send forwarded signals to CMD alone or to its whole process group' -r -f -a "child\t'CMD alone'
group\t'CMD\'s whole process group'"
complete -c ocwrap -n "__fish_ocwrap_using_subcommand run" -l pdeath-signal -d 'Signal CMD gets if ocwrap itself dies (e.g. is SIGKILLed)' -r
complete -c ocwrap -n "__fish_ocwrap_using_subcommand run" -l report -d 'Write a JSON report of every teardown to FILE' -r -F
complete -c ocwrap -n "__fish_ocwrap_using_subcommand run" -l rewrite -d 'Forward signal FROM to CMD as TO (TO 0: drop it); repeatable, or comma-separated (e.g. TERM:INT)' -r
complete -c ocwrap -n "__fish_ocwrap_using_subcommand run" -l remap-exit -d 'Report CMD\'s exit status FROM as TO; repeatable, or comma-separated (e.g. 143:0)' -r
complete -c ocwrap -n "__fish_ocwrap_using_subcommand run" -l linger -d 'When CMD exits by itself, let the rest of the tree end on its own for up to DURATION before the stop signal' -r
complete -c ocwrap -n "__fish_ocwrap_using_subcommand run" -s q -l quiet -d 'Only print errors (same as --log-level error)'
complete -c ocwrap -n "__fish_ocwrap_using_subcommand run" -s v -l verbose -d 'Also print debug messages (same as --log-level debug)'
complete -c ocwrap -n "__fish_ocwrap_using_subcommand run" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ocwrap -n "__fish_ocwrap_using_subcommand spawn" -l log-level -d 'How much to log on stderr' -r -f -a "error\t''
warn\t''
info\t''
debug\t''"
complete -c ocwrap -n "__fish_ocwrap_using_subcommand spawn" -l log-format -d 'Log lines as text (`ocwrap: ...`) or JSON objects' -r -f -a "text\t''
json\t''"
complete -c ocwrap -n "__fish_ocwrap_using_subcommand spawn" -l state-dir -d 'Per-user state directory (workspace records, logs, counters) [default: $XDG_RUNTIME_DIR/ocwrap if that exists, else $TMPDIR/ocwrap-UID]' -r -F
complete -c ocwrap -n "__fish_ocwrap_using_subcommand spawn" -l port -d 'Port for opencode serve (0: any free port)' -r
complete -c ocwrap -n "__fish_ocwrap_using_subcommand spawn" -l hostname -d 'Hostname opencode serve listens on' -r
complete -c ocwrap -n "__fish_ocwrap_using_subcommand spawn" -l opencode -d 'The opencode executable [default: `opencode` on PATH]' -r -F
complete -c ocwrap -n "__fish_ocwrap_using_subcommand spawn" -l ready-timeout -d 'How long to wait for opencode\'s listening line' -r
complete -c ocwrap -n "__fish_ocwrap_using_subcommand spawn" -l log-max -d 'With --detach: rotate the workspace\'s log (ID.log to ID.log.1) when it would pass SIZE, so it takes at most about twice SIZE (bytes, or K/KiB, M/MiB, G/GiB; at least 64KiB)' -r
complete -c ocwrap -n "__fish_ocwrap_using_subcommand spawn" -l grace -d 'Time the tree gets after the stop signal before SIGKILL (e.g. 10s, 500ms; at most 365d)' -r
complete -c ocwrap -n "__fish_ocwrap_using_subcommand spawn" -l kill-timeout -d 'Time allowed after SIGKILL to verify that nothing is left' -r
complete -c ocwrap -n "__fish_ocwrap_using_subcommand spawn" -l stop-signal -d 'Signal sent to every remaining descendant when the teardown starts' -r
complete -c ocwrap -n "__fish_ocwrap_using_subcommand spawn" -l forward-to -d 'Send forwarded signals to CMD alone or to its whole process group' -r -f -a "child\t'CMD alone'
group\t'CMD\'s whole process group'"
complete -c ocwrap -n "__fish_ocwrap_using_subcommand spawn" -l pdeath-signal -d 'Signal CMD gets if ocwrap itself dies (e.g. is SIGKILLed)' -r
complete -c ocwrap -n "__fish_ocwrap_using_subcommand spawn" -l report -d 'Write a JSON report of every teardown to FILE' -r -F
complete -c ocwrap -n "__fish_ocwrap_using_subcommand spawn" -l rewrite -d 'Forward signal FROM to CMD as TO (TO 0: drop it); repeatable, or comma-separated (e.g. TERM:INT)' -r
complete -c ocwrap -n "__fish_ocwrap_using_subcommand spawn" -l remap-exit -d 'Report CMD\'s exit status FROM as TO; repeatable, or comma-separated (e.g. 143:0)' -r
complete -c ocwrap -n "__fish_ocwrap_using_subcommand spawn" -l linger -d 'When CMD exits by itself, let the rest of the tree end on its own for up to DURATION before the stop signal' -r
complete -c ocwrap -n "__fish_ocwrap_using_subcommand spawn" -s q -l quiet -d 'Only print errors (same as --log-level error)'
complete -c ocwrap -n "__fish_ocwrap_using_subcommand spawn" -s v -l verbose -d 'Also print debug messages (same as --log-level debug)'
complete -c ocwrap -n "__fish_ocwrap_using_subcommand spawn" -l detach -d 'Return once ready; a supervisor in its own session keeps watching'
complete -c ocwrap -n "__fish_ocwrap_using_subcommand spawn" -l json -d 'Print one JSON object instead of the URL'
complete -c ocwrap -n "__fish_ocwrap_using_subcommand spawn" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ocwrap -n "__fish_ocwrap_using_subcommand ps" -l log-level -d 'How much to log on stderr' -r -f -a "error\t''
warn\t''
info\t''
debug\t''"
complete -c ocwrap -n "__fish_ocwrap_using_subcommand ps" -l log-format -d 'Log lines as text (`ocwrap: ...`) or JSON objects' -r -f -a "text\t''
json\t''"
complete -c ocwrap -n "__fish_ocwrap_using_subcommand ps" -l state-dir -d 'Per-user state directory (workspace records, logs, counters) [default: $XDG_RUNTIME_DIR/ocwrap if that exists, else $TMPDIR/ocwrap-UID]' -r -F
complete -c ocwrap -n "__fish_ocwrap_using_subcommand ps" -s q -l quiet -d 'Only print errors (same as --log-level error)'
complete -c ocwrap -n "__fish_ocwrap_using_subcommand ps" -s v -l verbose -d 'Also print debug messages (same as --log-level debug)'
complete -c ocwrap -n "__fish_ocwrap_using_subcommand ps" -l json -d 'Print a JSON array'
complete -c ocwrap -n "__fish_ocwrap_using_subcommand ps" -l check -d 'Ask each server for health (GET /global/health)'
complete -c ocwrap -n "__fish_ocwrap_using_subcommand ps" -s h -l help -d 'Print help'
complete -c ocwrap -n "__fish_ocwrap_using_subcommand stop" -l log-level -d 'How much to log on stderr' -r -f -a "error\t''
warn\t''
info\t''
debug\t''"
complete -c ocwrap -n "__fish_ocwrap_using_subcommand stop" -l log-format -d 'Log lines as text (`ocwrap: ...`) or JSON objects' -r -f -a "text\t''
json\t''"
complete -c ocwrap -n "__fish_ocwrap_using_subcommand stop" -l state-dir -d 'Per-user state directory (workspace records, logs, counters) [default: $XDG_RUNTIME_DIR/ocwrap if that exists, else $TMPDIR/ocwrap-UID]' -r -F
complete -c ocwrap -n "__fish_ocwrap_using_subcommand stop" -l grace -d 'Time the tree gets after the stop signal before SIGKILL (e.g. 10s, 500ms; at most 365d)' -r
complete -c ocwrap -n "__fish_ocwrap_using_subcommand stop" -l kill-timeout -d 'Time allowed after SIGKILL to verify that nothing is left' -r
complete -c ocwrap -n "__fish_ocwrap_using_subcommand stop" -s q -l quiet -d 'Only print errors (same as --log-level error)'
complete -c ocwrap -n "__fish_ocwrap_using_subcommand stop" -s v -l verbose -d 'Also print debug messages (same as --log-level debug)'
complete -c ocwrap -n "__fish_ocwrap_using_subcommand stop" -l all -d 'Stop every workspace'
complete -c ocwrap -n "__fish_ocwrap_using_subcommand stop" -l json -d 'Print the result as one JSON object'
complete -c ocwrap -n "__fish_ocwrap_using_subcommand stop" -s h -l help -d 'Print help'
complete -c ocwrap -n "__fish_ocwrap_using_subcommand reap" -l log-level -d 'How much to log on stderr' -r -f -a "error\t''
warn\t''
info\t''
debug\t''"
complete -c ocwrap -n "__fish_ocwrap_using_subcommand reap" -l log-format -d 'Log lines as text (`ocwrap: ...`) or JSON objects' -r -f -a "text\t''
json\t''"
complete -c ocwrap -n "__fish_ocwrap_using_subcommand reap" -l state-dir -d 'Per-user state directory (workspace records, logs, counters) [default: $XDG_RUNTIME_DIR/ocwrap if that exists, else $TMPDIR/ocwrap-UID]' -r -F
complete -c ocwrap -n "__fish_ocwrap_using_subcommand reap" -l match -d 'What an untracked server is: its program\'s name, then its first arguments, compared word by word with each orphan\'s arguments (after a leading interpreter such as node or python3; `bin/x` matches `/usr/bin/x`), never as a substring [default: "opencode serve"]' -r
complete -c ocwrap -n "__fish_ocwrap_using_subcommand reap" -l grace -d 'Time the tree gets after the stop signal before SIGKILL (e.g. 10s, 500ms; at most 365d)' -r
complete -c ocwrap -n "__fish_ocwrap_using_subcommand reap" -l kill-timeout -d 'Time allowed after SIGKILL to verify that nothing is left' -r
complete -c ocwrap -n "__fish_ocwrap_using_subcommand reap" -s q -l quiet -d 'Only print errors (same as --log-level error)'
complete -c ocwrap -n "__fish_ocwrap_using_subcommand reap" -s v -l verbose -d 'Also print debug messages (same as --log-level debug)'
complete -c ocwrap -n "__fish_ocwrap_using_subcommand reap" -l dry-run -d 'List what would be ended and why; touch nothing'
complete -c ocwrap -n "__fish_ocwrap_using_subcommand reap" -l json -d 'Print the targets as JSON'
complete -c ocwrap -n "__fish_ocwrap_using_subcommand reap" -s h -l help -d 'Print help'
complete -c ocwrap -n "__fish_ocwrap_using_subcommand stats" -l log-level -d 'How much to log on stderr' -r -f -a "error\t''
warn\t''
info\t''
debug\t''"
complete -c ocwrap -n "__fish_ocwrap_using_subcommand stats" -l log-format -d 'Log lines as text (`ocwrap: ...`) or JSON objects' -r -f -a "text\t''
json\t''"
complete -c ocwrap -n "__fish_ocwrap_using_subcommand stats" -l state-dir -d 'Per-user state directory (workspace records, logs, counters) [default: $XDG_RUNTIME_DIR/ocwrap if that exists, else $TMPDIR/ocwrap-UID]' -r -F
complete -c ocwrap -n "__fish_ocwrap_using_subcommand stats" -s q -l quiet -d 'Only print errors (same as --log-level error)'
complete -c ocwrap -n "__fish_ocwrap_using_subcommand stats" -s v -l verbose -d 'Also print debug messages (same as --log-level debug)'
complete -c ocwrap -n "__fish_ocwrap_using_subcommand stats" -l json -d 'Print the counters as JSON'
complete -c ocwrap -n "__fish_ocwrap_using_subcommand stats" -s h -l help -d 'Print help'
complete -c ocwrap -n "__fish_ocwrap_using_subcommand completions" -l log-level -d 'How much to log on stderr' -r -f -a "error\t''
warn\t''
info\t''
debug\t''"
complete -c ocwrap -n "__fish_ocwrap_using_subcommand completions" -l log-format -d 'Log lines as text (`ocwrap: ...`) or JSON objects' -r -f -a "text\t''
json\t''"
complete -c ocwrap -n "__fish_ocwrap_using_subcommand completions" -l state-dir -d 'Per-user state directory (workspace records, logs, counters) [default: $XDG_RUNTIME_DIR/ocwrap if that exists, else $TMPDIR/ocwrap-UID]' -r -F
complete -c ocwrap -n "__fish_ocwrap_using_subcommand completions" -s q -l quiet -d 'Only print errors (same as --log-level error)'
complete -c ocwrap -n "__fish_ocwrap_using_subcommand completions" -s v -l verbose -d 'Also print debug messages (same as --log-level debug)'
complete -c ocwrap -n "__fish_ocwrap_using_subcommand completions" -s h -l help -d 'Print help'
complete -c ocwrap -n "__fish_ocwrap_using_subcommand man" -l log-level -d 'How much to log on stderr' -r -f -a "error\t''
warn\t''
info\t''
debug\t''"
complete -c ocwrap -n "__fish_ocwrap_using_subcommand man" -l log-format -d 'Log lines as text (`ocwrap: ...`) or JSON objects' -r -f -a "text\t''
json\t''"
complete -c ocwrap -n "__fish_ocwrap_using_subcommand man" -l state-dir -d 'Per-user state directory (workspace records, logs, counters) [default: $XDG_RUNTIME_DIR/ocwrap if that exists, else $TMPDIR/ocwrap-UID]' -r -F
complete -c ocwrap -n "__fish_ocwrap_using_subcommand man" -s q -l quiet -d 'Only print errors (same as --log-level error)'
complete -c ocwrap -n "__fish_ocwrap_using_subcommand man" -s v -l verbose -d 'Also print debug messages (same as --log-level debug)'
complete -c ocwrap -n "__fish_ocwrap_using_subcommand man" -s h -l help -d 'Print help'
complete -c ocwrap -n "__fish_ocwrap_using_subcommand help; and not __fish_seen_subcommand_from run spawn ps stop reap stats completions man help" -f -a "run" -d 'Supervise CMD (the same as `ocwrap [OPTIONS] -- CMD`)'
complete -c ocwrap -n "__fish_ocwrap_using_subcommand help; and not __fish_seen_subcommand_from run spawn ps stop reap stats completions man help" -f -a "spawn" -d 'Start `opencode serve` for a folder as a tracked workspace'
complete -c ocwrap -n "__fish_ocwrap_using_subcommand help; and not __fish_seen_subcommand_from run spawn ps stop reap stats completions man help" -f -a "ps" -d 'List workspaces and their health'
complete -c ocwrap -n "__fish_ocwrap_using_subcommand help; and not __fish_seen_subcommand_from run spawn ps stop reap stats completions man help" -f -a "stop" -d 'Stop workspaces and verify their whole tree is gone'
complete -c ocwrap -n "__fish_ocwrap_using_subcommand help; and not __fish_seen_subcommand_from run spawn ps stop reap stats completions man help" -f -a "reap" -d 'End orphaned workspaces and untracked orphaned opencode servers'
complete -c ocwrap -n "__fish_ocwrap_using_subcommand help; and not __fish_seen_subcommand_from run spawn ps stop reap stats completions man help" -f -a "stats" -d 'Show cumulative teardown counters'
complete -c ocwrap -n "__fish_ocwrap_using_subcommand help; and not __fish_seen_subcommand_from run spawn ps stop reap stats completions man help" -f -a "completions" -d 'Print a shell completion script'
complete -c ocwrap -n "__fish_ocwrap_using_subcommand help; and not __fish_seen_subcommand_from run spawn ps stop reap stats completions man help" -f -a "man" -d 'Print the man page (roff)'
complete -c ocwrap -n "__fish_ocwrap_using_subcommand help; and not __fish_seen_subcommand_from run spawn ps stop reap stats completions man help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
