#!/bin/sh
# A small process tree that tries every way of escaping its parent:
# a plain child, a child in its own process group, a setsid daemon, a
# double-forked daemon, and a child that ignores SIGTERM. Then the "server"
# exits, as a crashed app would, leaving all of them behind.
sleep 300 &
perl -e 'setpgrp(0, 0); exec @ARGV' sleep 301 &   # its own process group
setsid sleep 302 &                      # its own session
(setsid sh -c 'sleep 303 &' &)          # double fork: re-parented away
sh -c 'trap "" TERM; exec sleep 304' &  # ignores SIGTERM
sleep 0.2
echo "demo: started 5 escaping processes; the server now exits" >&2
echo "demo: left behind without ocwrap:" >&2
for p in /proc/[0-9]*; do
  case "$(tr '\0' ' ' 2>/dev/null < "$p/cmdline")" in
    "sleep 30"[0-4]*) echo "  pid ${p#/proc/}: $(tr '\0' ' ' 2>/dev/null < "$p/cmdline")" >&2 ;;
  esac
done
exit 0
