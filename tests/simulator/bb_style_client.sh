#!/usr/bin/env bash
# A line-oriented flat-file client in the manner of Blackboard's reference bash scripts (written for
# these tests, not copied): curl posts the file, the reference code is taken from the answer, then
# dataSetStatus is polled and each count is read from ITS OWN LINE with grep and sed. If Learn (or
# the simulator) put the XML on one line, no count would ever be read and this client would give up.
#
#   bb_style_client.sh ENDPOINT USER PASSWORD OBJECT OPERATION FILE
#
# Prints uid=, completed=, errors=, warnings=, queued= lines. Exit 0 once completed + errors +
# warnings reaches the record count (non-blank lines minus the header) with nothing queued;
# 2 upload refused, 3 no reference code, 4 gave up after MAX_POLLS polls (default 300).
set -u
endpoint=$1 user=$2 password=$3 object=$4 operation=$5 file=$6
max_polls=${MAX_POLLS:-300}

records=$(grep -c '[^[:space:]]' "$file")
records=$((records - 1))

answer=$(curl -s -w '\n%{http_code}' -u "$user:$password" -H 'Content-Type: text/plain' \
  --data-binary "@$file" "$endpoint/$object/$operation")
code=$(printf '%s\n' "$answer" | tail -n 1)
if [ "$code" != 200 ]; then
  echo "upload refused: HTTP $code"
  exit 2
fi
uid=$(printf '%s\n' "$answer" | grep -o '[0-9a-f]\{32\}' | head -n 1)
if [ -z "$uid" ]; then
  echo "no reference code in: $answer"
  exit 3
fi
echo "uid=$uid"

count() {  # the number on the line that holds <$1>...</$1> and nothing else
  printf '%s\n' "$status" | grep "<$1>" | sed -n "s/^[[:space:]]*<$1>\([0-9][0-9]*\)<\/$1>[[:space:]]*\$/\1/p"
}

polls=0
while [ "$polls" -lt "$max_polls" ]; do
  polls=$((polls + 1))
  status=$(curl -s -u "$user:$password" "$endpoint/dataSetStatus/$uid")
  completed=$(count completedCount)
  errors=$(count errorCount)
  warnings=$(count warningCount)
  queued=$(count queuedCount)
  if [ -n "$completed" ] && [ -n "$errors" ] && [ -n "$warnings" ] && [ -n "$queued" ] \
    && [ "$queued" -eq 0 ] && [ $((completed + errors + warnings)) -ge "$records" ]; then
    echo "completed=$completed"
    echo "errors=$errors"
    echo "warnings=$warnings"
    echo "queued=$queued"
    exit 0
  fi
  sleep 0.1
done
echo "gave up after $polls polls; last status: $status"
exit 4
