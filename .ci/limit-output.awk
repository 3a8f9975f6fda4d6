# Bounds what a CI step prints (and logs): `cmd 2>&1 | awk -f .ci/limit-output.awk`.
#
# Passes the first CI_OUTPUT_LIMIT bytes through (default 20 MB; each line cut
# at 4000 characters).  Past that it shows only result lines (pytest's FAILED/
# ERROR lines and closing line, make's errors, the CI's own markers), so a test
# that floods its output (a report that repeats one line millions of times was
# seen: 5.6 GB) can fill neither the disk nor the CI log, and the results
# still show.  It reads everything, so the command is never killed by SIGPIPE.
BEGIN {
    max = ENVIRON["CI_OUTPUT_LIMIT"] ? ENVIRON["CI_OUTPUT_LIMIT"] + 0 : 20000000
    shown = 0; cut = 0; hidden_lines = 0; hidden_bytes = 0
}
{
    line = $0
    if (length(line) > 4000)
        line = substr(line, 1, 4000) " [... line cut at 4000 characters]"
    if (!cut && shown + length(line) + 1 <= max) {
        shown += length(line) + 1
        print line
        fflush()
        next
    }
    if (!cut) {
        print "---- output past " max " bytes: from here on only result lines are shown"
        cut = 1
    }
    if (line ~ /^(FAILED|ERROR|XPASS|UNEXPECTED) / ||
        line ~ /^(=+ )?[0-9]+ (passed|failed|errors?|skipped|xfailed|xpassed|deselected)/ ||
        line ~ /no tests ran/ ||
        line ~ /^(----|####|====)/ ||
        line ~ /^make(\[[0-9]+\])?: / ||
        line ~ /^(test-all|check-dist|ci): / ||
        line ~ /^  (3\.[0-9]+|pypy3) /) {
        print line
        fflush()
    } else {
        hidden_lines++
        hidden_bytes += length($0) + 1
    }
}
END {
    if (hidden_lines)
        print "---- " hidden_lines " lines (" hidden_bytes " bytes) of output were not shown"
}
