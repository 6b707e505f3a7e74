#!/bin/sh
# The example crashing app: runs for CRASH_AFTER seconds, then exits with status 1, so its pod
# goes into CrashLoopBackOff with growing back-off between restarts.
echo "crasher: started, exiting in ${CRASH_AFTER:-3}s"
sleep "${CRASH_AFTER:-3}"
echo "crasher: exiting with status 1"
exit 1
