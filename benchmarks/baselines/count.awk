# Counts of levels, services and users of space-separated log lines (fields 2, 3 and 4).
# Prints every count as KIND<TAB>NAME<TAB>COUNT; the benchmark picks the top ones afterwards.
{ l[$2]++; s[$3]++; u[$4]++ }
END {
    for (k in l) print "L\t" k "\t" l[k]
    for (k in s) print "S\t" k "\t" s[k]
    for (k in u) print "U\t" k "\t" u[k]
}
