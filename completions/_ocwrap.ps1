
using namespace System.Management.Automation
using namespace System.Management.Automation.Language

Register-ArgumentCompleter -Native -CommandName 'ocwrap' -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)

    $commandElements = $commandAst.CommandElements
    $command = @(
        'ocwrap'
        for ($i = 1; $i -lt $commandElements.Count; $i++) {
            $element = $commandElements[$i]
            if ($element -isnot [StringConstantExpressionAst] -or
                $element.StringConstantType -ne [StringConstantType]::BareWord -or
                $element.Value.StartsWith('-') -or
                $element.Value -eq $wordToComplete) {
                break
        }
        $element.Value
    }) -join ';'

    $completions = @(switch ($command) {
        'ocwrap' {
            [CompletionResult]::new('--log-level', '--log-level', [CompletionResultType]::ParameterName, 'How much to log on stderr')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'Log lines as text (`ocwrap: ...`) or JSON objects')
            [CompletionResult]::new('--state-dir', '--state-dir', [CompletionResultType]::ParameterName, 'Per-user state directory (workspace records, logs, counters) [default: $XDG_RUNTIME_DIR/ocwrap if that exists, else $TMPDIR/ocwrap-UID]')
            [CompletionResult]::new('--grace', '--grace', [CompletionResultType]::ParameterName, 'Time the tree gets after the stop signal before SIGKILL (e.g. 10s, 500ms; at most 365d)')
            [CompletionResult]::new('--kill-timeout', '--kill-timeout', [CompletionResultType]::ParameterName, 'Time allowed after SIGKILL to verify that nothing is left')
            [CompletionResult]::new('--stop-signal', '--stop-signal', [CompletionResultType]::ParameterName, 'Signal sent to every remaining descendant when the teardown starts')
            [CompletionResult]::new('--forward-to', '--forward-to', [CompletionResultType]::ParameterName, 'Send forwarded signals to CMD alone or to its whole process group')
            [CompletionResult]::new('--pdeath-signal', '--pdeath-signal', [CompletionResultType]::ParameterName, 'Signal CMD gets if ocwrap itself dies (e.g. is SIGKILLed)')
            [CompletionResult]::new('--report', '--report', [CompletionResultType]::ParameterName, 'Write a JSON report of every teardown to FILE')
            [CompletionResult]::new('--rewrite', '--rewrite', [CompletionResultType]::ParameterName, 'Forward signal FROM to CMD as TO (TO 0: drop it); repeatable, or comma-separated (e.g. TERM:INT)')
            [CompletionResult]::new('--remap-exit', '--remap-exit', [CompletionResultType]::ParameterName, 'Report CMD''s exit status FROM as TO; repeatable, or comma-separated (e.g. 143:0)')
            [CompletionResult]::new('--linger', '--linger', [CompletionResultType]::ParameterName, 'When CMD exits by itself, let the rest of the tree end on its own for up to DURATION before the stop signal')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Only print errors (same as --log-level error)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Only print errors (same as --log-level error)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Also print debug messages (same as --log-level debug)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Also print debug messages (same as --log-level debug)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('run', 'run', [CompletionResultType]::ParameterValue, 'Supervise CMD (the same as `ocwrap [OPTIONS] -- CMD`)')
            [CompletionResult]::new('spawn', 'spawn', [CompletionResultType]::ParameterValue, 'Start `opencode serve` for a folder as a tracked workspace')
            [CompletionResult]::new('ps', 'ps', [CompletionResultType]::ParameterValue, 'List workspaces and their health')
            [CompletionResult]::new('stop', 'stop', [CompletionResultType]::ParameterValue, 'Stop workspaces and verify their whole tree is gone')
            [CompletionResult]::new('reap', 'reap', [CompletionResultType]::ParameterValue, 'End orphaned workspaces and untracked orphaned opencode servers')
            [CompletionResult]::new('stats', 'stats', [CompletionResultType]::ParameterValue, 'Show cumulative teardown counters')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print a shell completion script')
            [CompletionResult]::new('man', 'man', [CompletionResultType]::ParameterValue, 'Print the man page (roff)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'ocwrap;run' {
            [CompletionResult]::new('--log-level', '--log-level', [CompletionResultType]::ParameterName, 'How much to log on stderr')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'Log lines as text (`ocwrap: ...`) or JSON objects')
            [CompletionResult]::new('--state-dir', '--state-dir', [CompletionResultType]::ParameterName, 'Per-user state directory (workspace records, logs, counters) [default: $XDG_RUNTIME_DIR/ocwrap if that exists, else $TMPDIR/ocwrap-UID]')
            [CompletionResult]::new('--grace', '--grace', [CompletionResultType]::ParameterName, 'Time the tree gets after the stop signal before SIGKILL (e.g. 10s, 500ms; at most 365d)')
            [CompletionResult]::new('--kill-timeout', '--kill-timeout', [CompletionResultType]::ParameterName, 'Time allowed after SIGKILL to verify that nothing is left')
            [CompletionResult]::new('--stop-signal', '--stop-signal', [CompletionResultType]::ParameterName, 'Signal sent to every remaining descendant when the teardown starts')
            [CompletionResult]::new('--forward-to', '--forward-to', [CompletionResultType]::ParameterName, 'Send forwarded signals to CMD alone or to its whole process group')
            [CompletionResult]::new('--pdeath-signal', '--pdeath-signal', [CompletionResultType]::ParameterName, 'Signal CMD gets if ocwrap itself dies (e.g. is SIGKILLed)')
            [CompletionResult]::new('--report', '--report', [CompletionResultType]::ParameterName, 'Write a JSON report of every teardown to FILE')
            [CompletionResult]::new('--rewrite', '--rewrite', [CompletionResultType]::ParameterName, 'Forward signal FROM to CMD as TO (TO 0: drop it); repeatable, or comma-separated (e.g. TERM:INT)')
            [CompletionResult]::new('--remap-exit', '--remap-exit', [CompletionResultType]::ParameterName, 'Report CMD''s exit status FROM as TO; repeatable, or comma-separated (e.g. 143:0)')
            [CompletionResult]::new('--linger', '--linger', [CompletionResultType]::ParameterName, 'When CMD exits by itself, let the rest of the tree end on its own for up to DURATION before the stop signal')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Only print errors (same as --log-level error)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Only print errors (same as --log-level error)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Also print debug messages (same as --log-level debug)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Also print debug messages (same as --log-level debug)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'ocwrap;spawn' {
            [CompletionResult]::new('--log-level', '--log-level', [CompletionResultType]::ParameterName, 'How much to log on stderr')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'Log lines as text (`ocwrap: ...`) or JSON objects')
            [CompletionResult]::new('--state-dir', '--state-dir', [CompletionResultType]::ParameterName, 'Per-user state directory (workspace records, logs, counters) [default: $XDG_RUNTIME_DIR/ocwrap if that exists, else $TMPDIR/ocwrap-UID]')
            [CompletionResult]::new('--port', '--port', [CompletionResultType]::ParameterName, 'Port for opencode serve (0: any free port)')
            [CompletionResult]::new('--hostname', '--hostname', [CompletionResultType]::ParameterName, 'Hostname opencode serve listens on')
            [CompletionResult]::new('--opencode', '--opencode', [CompletionResultType]::ParameterName, 'The opencode executable [default: `opencode` on PATH]')
            [CompletionResult]::new('--ready-timeout', '--ready-timeout', [CompletionResultType]::ParameterName, 'How long to wait for opencode''s listening line')
            [CompletionResult]::new('--log-max', '--log-max', [CompletionResultType]::ParameterName, 'With --detach: rotate the workspace''s log (ID.log to ID.log.1) when it would pass SIZE, so it takes at most about twice SIZE (bytes, or K/KiB, M/MiB, G/GiB; at least 64KiB)')
            [CompletionResult]::new('--grace', '--grace', [CompletionResultType]::ParameterName, 'Time the tree gets after the stop signal before SIGKILL (e.g. 10s, 500ms; at most 365d)')
            [CompletionResult]::new('--kill-timeout', '--kill-timeout', [CompletionResultType]::ParameterName, 'Time allowed after SIGKILL to verify that nothing is left')
            [CompletionResult]::new('--stop-signal', '--stop-signal', [CompletionResultType]::ParameterName, 'Signal sent to every remaining descendant when the teardown starts')
            [CompletionResult]::new('--forward-to', '--forward-to', [CompletionResultType]::ParameterName, 'Send forwarded signals to CMD alone or to its whole process group')
            [CompletionResult]::new('--pdeath-signal', '--pdeath-signal', [CompletionResultType]::ParameterName, 'Signal CMD gets if ocwrap itself dies (e.g. is SIGKILLed)')
            [CompletionResult]::new('--report', '--report', [CompletionResultType]::ParameterName, 'Write a JSON report of every teardown to FILE')
            [CompletionResult]::new('--rewrite', '--rewrite', [CompletionResultType]::ParameterName, 'Forward signal FROM to CMD as TO (TO 0: drop it); repeatable, or comma-separated (e.g. TERM:INT)')
            [CompletionResult]::new('--remap-exit', '--remap-exit', [CompletionResultType]::ParameterName, 'Report CMD''s exit status FROM as TO; repeatable, or comma-separated (e.g. 143:0)')
            [CompletionResult]::new('--linger', '--linger', [CompletionResultType]::ParameterName, 'When CMD exits by itself, let the rest of the tree end on its own for up to DURATION before the stop signal')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Only print errors (same as --log-level error)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Only print errors (same as --log-level error)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Also print debug messages (same as --log-level debug)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Also print debug messages (same as --log-level debug)')
            [CompletionResult]::new('--detach', '--detach', [CompletionResultType]::ParameterName, 'Return once ready; a supervisor in its own session keeps watching')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print one JSON object instead of the URL')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'ocwrap;ps' {
            [CompletionResult]::new('--log-level', '--log-level', [CompletionResultType]::ParameterName, 'How much to log on stderr')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'Log lines as text (`ocwrap: ...`) or JSON objects')
            [CompletionResult]::new('--state-dir', '--state-dir', [CompletionResultType]::ParameterName, 'Per-user state directory (workspace records, logs, counters) [default: $XDG_RUNTIME_DIR/ocwrap if that exists, else $TMPDIR/ocwrap-UID]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Only print errors (same as --log-level error)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Only print errors (same as --log-level error)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Also print debug messages (same as --log-level debug)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Also print debug messages (same as --log-level debug)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print a JSON array')
            [CompletionResult]::new('--check', '--check', [CompletionResultType]::ParameterName, 'Ask each server for health (GET /global/health)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'ocwrap;stop' {
            [CompletionResult]::new('--log-level', '--log-level', [CompletionResultType]::ParameterName, 'How much to log on stderr')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'Log lines as text (`ocwrap: ...`) or JSON objects')
            [CompletionResult]::new('--state-dir', '--state-dir', [CompletionResultType]::ParameterName, 'Per-user state directory (workspace records, logs, counters) [default: $XDG_RUNTIME_DIR/ocwrap if that exists, else $TMPDIR/ocwrap-UID]')
            [CompletionResult]::new('--grace', '--grace', [CompletionResultType]::ParameterName, 'Time the tree gets after the stop signal before SIGKILL (e.g. 10s, 500ms; at most 365d)')
            [CompletionResult]::new('--kill-timeout', '--kill-timeout', [CompletionResultType]::ParameterName, 'Time allowed after SIGKILL to verify that nothing is left')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Only print errors (same as --log-level error)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Only print errors (same as --log-level error)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Also print debug messages (same as --log-level debug)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Also print debug messages (same as --log-level debug)')
            [CompletionResult]::new('--all', '--all', [CompletionResultType]::ParameterName, 'Stop every workspace')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print the result as one JSON object')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'ocwrap;reap' {
            [CompletionResult]::new('--log-level', '--log-level', [CompletionResultType]::ParameterName, 'How much to log on stderr')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'Log lines as text (`ocwrap: ...`) or JSON objects')
            [CompletionResult]::new('--state-dir', '--state-dir', [CompletionResultType]::ParameterName, 'Per-user state directory (workspace records, logs, counters) [default: $XDG_RUNTIME_DIR/ocwrap if that exists, else $TMPDIR/ocwrap-UID]')
            [CompletionResult]::new('--match', '--match', [CompletionResultType]::ParameterName, 'What an untracked server is: its program''s name, then its first arguments, compared word by word with each orphan''s arguments (after a leading interpreter such as node or python3; `bin/x` matches `/usr/bin/x`), never as a substring [default: "opencode serve"]')
            [CompletionResult]::new('--grace', '--grace', [CompletionResultType]::ParameterName, 'Time the tree gets after the stop signal before SIGKILL (e.g. 10s, 500ms; at most 365d)')
            [CompletionResult]::new('--kill-timeout', '--kill-timeout', [CompletionResultType]::ParameterName, 'Time allowed after SIGKILL to verify that nothing is left')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Only print errors (same as --log-level error)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Only print errors (same as --log-level error)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Also print debug messages (same as --log-level debug)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Also print debug messages (same as --log-level debug)')
            [CompletionResult]::new('--dry-run', '--dry-run', [CompletionResultType]::ParameterName, 'List what would be ended and why; touch nothing')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print the targets as JSON')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'ocwrap;stats' {
            [CompletionResult]::new('--log-level', '--log-level', [CompletionResultType]::ParameterName, 'How much to log on stderr')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'Log lines as text (`ocwrap: ...`) or JSON objects')
            [CompletionResult]::new('--state-dir', '--state-dir', [CompletionResultType]::ParameterName, 'Per-user state directory (workspace records, logs, counters) [default: $XDG_RUNTIME_DIR/ocwrap if that exists, else $TMPDIR/ocwrap-UID]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Only print errors (same as --log-level error)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Only print errors (same as --log-level error)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Also print debug messages (same as --log-level debug)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Also print debug messages (same as --log-level debug)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print the counters as JSON')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'ocwrap;completions' {
            [CompletionResult]::new('--log-level', '--log-level', [CompletionResultType]::ParameterName, 'How much to log on stderr')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'Log lines as text (`ocwrap: ...`) or JSON objects')
            [CompletionResult]::new('--state-dir', '--state-dir', [CompletionResultType]::ParameterName, 'Per-user state directory (workspace records, logs, counters) [default: $XDG_RUNTIME_DIR/ocwrap if that exists, else $TMPDIR/ocwrap-UID]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Only print errors (same as --log-level error)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Only print errors (same as --log-level error)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Also print debug messages (same as --log-level debug)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Also print debug messages (same as --log-level debug)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'ocwrap;man' {
            [CompletionResult]::new('--log-level', '--log-level', [CompletionResultType]::ParameterName, 'How much to log on stderr')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'Log lines as text (`ocwrap: ...`) or JSON objects')
            [CompletionResult]::new('--state-dir', '--state-dir', [CompletionResultType]::ParameterName, 'Per-user state directory (workspace records, logs, counters) [default: $XDG_RUNTIME_DIR/ocwrap if that exists, else $TMPDIR/ocwrap-UID]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Only print errors (same as --log-level error)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Only print errors (same as --log-level error)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Also print debug messages (same as --log-level debug)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Also print debug messages (same as --log-level debug)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'ocwrap;help' {
            [CompletionResult]::new('run', 'run', [CompletionResultType]::ParameterValue, 'Supervise CMD (the same as `ocwrap [OPTIONS] -- CMD`)')
            [CompletionResult]::new('spawn', 'spawn', [CompletionResultType]::ParameterValue, 'Start `opencode serve` for a folder as a tracked workspace')
            [CompletionResult]::new('ps', 'ps', [CompletionResultType]::ParameterValue, 'List workspaces and their health')
            [CompletionResult]::new('stop', 'stop', [CompletionResultType]::ParameterValue, 'Stop workspaces and verify their whole tree is gone')
            [CompletionResult]::new('reap', 'reap', [CompletionResultType]::ParameterValue, 'End orphaned workspaces and untracked orphaned opencode servers')
            [CompletionResult]::new('stats', 'stats', [CompletionResultType]::ParameterValue, 'Show cumulative teardown counters')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print a shell completion script')
            [CompletionResult]::new('man', 'man', [CompletionResultType]::ParameterValue, 'Print the man page (roff)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'ocwrap;help;run' {
            break
        }
        'ocwrap;help;spawn' {
            break
        }
        'ocwrap;help;ps' {
            break
        }
        'ocwrap;help;stop' {
            break
        }
        'ocwrap;help;reap' {
            break
        }
        'ocwrap;help;stats' {
            break
        }
        'ocwrap;help;completions' {
            break
        }
        'ocwrap;help;man' {
            break
        }
        'ocwrap;help;help' {
            break
        }
    })

    $completions.Where{ $_.CompletionText -like "$wordToComplete*" } |
        Sort-Object -Property ListItemText
}
