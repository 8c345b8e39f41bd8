#!/usr/bin/env bash
# Writes a man page from a program's own --help text, so the two never
# disagree: gen-man.sh PROGRAM NAME SECTION SUMMARY OUT [SUBCOMMAND...]
# Each SUBCOMMAND's `PROGRAM SUB --help` becomes a section of its own.
set -euo pipefail
prog=$1 name=$2 section=$3 summary=$4 out=$5
shift 5
esc() { sed -e 's/\\/\\e/g' -e 's/^\./\\\&./' -e "s/^'/\\\\\&'/"; }
{
  echo ".TH $(echo "$name" | tr a-z A-Z) $section \"\" \"luact\" \"luact manual\""
  echo ".SH NAME"
  echo "$name \\- $summary"
  echo ".SH DESCRIPTION"
  echo ".nf"
  "$prog" --help 2>&1 | esc
  echo ".fi"
  for sub in "$@"; do
    echo ".SH $(echo "$sub" | tr a-z A-Z)"
    echo ".nf"
    "$prog" "$sub" --help 2>&1 | esc
    echo ".fi"
  done
  echo ".SH SEE ALSO"
  echo "The guides under /usr/share/doc/luact/ (api.md, quickstart.md, architecture.md)."
} > "$out"
