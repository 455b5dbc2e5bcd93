#!/usr/bin/env bash
# Installs feed-agent as a system service (or removes it). Run through `./install.sh --service`.
#
#   sudo ./install.sh --service [--prefix /opt/feed-agent] [--drop-group sis]
#   sudo ./install.sh --uninstall
#
# Options (each location can be moved, so a test can install entirely under a temporary folder):
#   --service              install or upgrade (the default action)
#   --uninstall            stop and remove the unit and the code; state and config are kept
#   --prefix DIR           code and virtualenv             (default /opt/feed-agent)
#   --state-dir DIR        drop/, processing/, archive/…   (default /var/lib/feed-agent)
#   --config-dir DIR       agent.ini and .env              (default /etc/feed-agent)
#   --unit-dir DIR         where the systemd unit goes     (default /etc/systemd/system)
#   --user NAME            service account, created if missing (default feed-agent)
#   --drop-group GROUP     group of the SIS account that writes into drop/ (made group-writable)
#   --no-systemd           write the unit but do not call systemctl; print the cron alternative
#   --no-start             enable the unit but do not (re)start it
#   --pip-args "ARGS"      extra arguments for pip (e.g. "--index-url https://mirror/simple")
#
# Safe to run again: it upgrades the code in place and never overwrites agent.ini, .env or state.
# Without root it refuses, unless every location is given and --user is yourself (for tests).
set -euo pipefail

source_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
unit_name="feed-agent.service"
marker_name=".feed-agent-install"

action=install
prefix=/opt/feed-agent
state_dir=/var/lib/feed-agent
config_dir=/etc/feed-agent
unit_dir=/etc/systemd/system
user=feed-agent
drop_group=""
use_systemd=1
start=1
pip_args=""
overridden=" "

say() { printf '%s\n' "$*"; }
fail() { printf 'install-service.sh: %s\n' "$*" >&2; exit 1; }
usage_error() { printf 'install-service.sh: %s (see ./install.sh --service --help)\n' "$*" >&2; exit 2; }

# --- arguments -----------------------------------------------------------------------------------

# Sets the variable for a location option and remembers that the admin chose it.
set_option() {
  local name="$1" value="$2"
  [ -n "$value" ] || usage_error "$name needs a value"
  case "$name" in
    --prefix) prefix="$value" ;;
    --state-dir) state_dir="$value" ;;
    --config-dir) config_dir="$value" ;;
    --unit-dir) unit_dir="$value" ;;
    --user) user="$value" ;;
    --drop-group) drop_group="$value" ;;
    --pip-args) pip_args="$value" ;;
  esac
  overridden+="$name "
}

while [ $# -gt 0 ]; do
  case "$1" in
    --service) action=install ;;
    --uninstall) action=uninstall ;;
    --no-systemd) use_systemd=0 ;;
    --no-start) start=0 ;;
    --prefix|--state-dir|--config-dir|--unit-dir|--user|--drop-group|--pip-args)
      [ $# -ge 2 ] || usage_error "$1 needs a value"
      set_option "$1" "$2"; shift ;;
    --prefix=*|--state-dir=*|--config-dir=*|--unit-dir=*|--user=*|--drop-group=*|--pip-args=*)
      set_option "${1%%=*}" "${1#*=}" ;;
    -h|--help) sed -n '2,21p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) usage_error "unknown option '$1'" ;;
  esac
  shift
done

for location in "$prefix" "$state_dir" "$config_dir" "$unit_dir"; do
  case "$location" in
    /) usage_error "refusing to use / as an install location" ;;
    /*) ;;
    *) usage_error "locations must be absolute paths (got '$location')" ;;
  esac
done
prefix="${prefix%/}"; state_dir="${state_dir%/}"; config_dir="${config_dir%/}"; unit_dir="${unit_dir%/}"

is_root=0
if [ "$(id -u)" -eq 0 ]; then is_root=1; fi

# Without root only a private install is possible: every location moved and the service user is
# the caller. As root with every location moved and --user being the caller, nothing outside those
# folders is touched either (no account is created, systemctl is only called without --no-systemd).
private_install=0
if [ "$user" = "$(id -un)" ]; then
  private_install=1
  for option in --prefix --state-dir --config-dir --unit-dir; do
    case "$overridden" in *" $option "*) ;; *) private_install=0 ;; esac
  done
fi
if [ "$is_root" = 0 ] && [ "$private_install" = 0 ]; then
  fail "run this as root (sudo ./install.sh --service). To try it as yourself, give --prefix, --state-dir, --config-dir, --unit-dir and --user $(id -un)."
fi

if [ "$use_systemd" = 1 ] && { ! command -v systemctl >/dev/null 2>&1 || [ ! -d /run/systemd/system ]; }; then
  say "systemd is not running on this machine: the unit file is written but not enabled."
  use_systemd=0
fi

# --- helpers -------------------------------------------------------------------------------------

# Escapes a value for the replacement side of a sed s||| command.
sed_escape() { printf '%s' "$1" | sed -e 's/[\\&|]/\\&/g'; }

# chown only as root: a private (non-root) install already owns everything it creates.
own() {
  if [ "$is_root" = 1 ]; then chown "$@"; fi
}

# Creates (or repairs) one folder with the given owner, group and mode; never touches its content.
make_dir() {
  local dir="$1" owner="$2" group="$3" mode="$4"
  mkdir -p "$dir"
  own "$owner:$group" "$dir"
  [ "$is_root" = 1 ] || chgrp "$group" "$dir"
  chmod "$mode" "$dir"
}

cron_help() {
  cat <<TXT

Without systemd, run the agent from cron instead of 'watch' (one pass over every drop folder, then
exit; flock keeps two passes from overlapping). For example in /etc/cron.d/feed-agent:

  MAILTO=sis-admins@example.edu
  # nightly store feed ([route:learn]): the SIS exports to $state_dir/drop around 01:00
  30 1 * * *  $user  flock -n $state_dir/.cron.lock $prefix/venv/bin/feed-agent -c $config_dir/agent.ini run --quiet --route learn
  # weekly refresh on its own folder (a [route:refresh] with operation = refresh), Sundays
  30 3 * * 0  $user  flock -n $state_dir/.cron.lock $prefix/venv/bin/feed-agent -c $config_dir/agent.ini run --quiet --route refresh

Cron mails whatever a job prints. With --quiet, run prints nothing on a good night and, when
something needs a look (a file failed, was rejected, held or timed out, a drop folder is missing,
reports wait for the mail server, no file came for expect_every_hours), one line per problem on
stderr and exits 1: cron mails exactly the bad nights.
TXT
}

# --- uninstall -----------------------------------------------------------------------------------

uninstall() {
  local unit_file="$unit_dir/$unit_name"
  if [ "$use_systemd" = 1 ]; then
    systemctl disable --now "$unit_name" 2>/dev/null || true
  fi
  if [ -f "$unit_file" ]; then
    rm -f "$unit_file"
    say "Removed $unit_file"
  fi
  if [ "$use_systemd" = 1 ]; then systemctl daemon-reload; fi
  if [ -f "$prefix/$marker_name" ]; then
    rm -rf -- "$prefix"
    say "Removed $prefix"
  elif [ -e "$prefix" ]; then
    fail "$prefix was not created by this installer (no $marker_name in it), so it was left alone"
  fi
  say "Kept the state in $state_dir (drop, processing, archive, failed, outbox, journal)."
  say "Kept the configuration in $config_dir (agent.ini, .env)."
  say "Kept the account '$user'. Remove these by hand if you no longer need them."
}

# --- install -------------------------------------------------------------------------------------

check_python() {
  python="${PYTHON:-python3}"
  command -v "$python" >/dev/null 2>&1 \
    || fail "python3 was not found; install Python 3.10 or newer (Debian: apt-get install python3 python3-venv)"
  "$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' 2>/dev/null \
    || fail "$("$python" -V 2>&1) is too old; feed-agent needs Python 3.10 or newer"
  "$python" -c 'import venv, ensurepip' >/dev/null 2>&1 \
    || fail "the Python venv module is missing (Debian: apt-get install python3-venv)"
}

# Runs a command as the service account (directly when that is us), to prove it can.
as_account() {
  if [ "$(id -un)" = "$user" ]; then "$@"; else runuser -u "$user" -- "$@"; fi
}

# The venv links to its interpreter, so the service account must be able to run that interpreter.
# A Python under /root (pyenv, a hand build) is not; the system's /usr/bin/python3 usually is.
ensure_python_for_account() {
  local candidate found
  for candidate in "$python" /usr/bin/python3; do
    # Resolved as the account sees it (a PATH entry under /root is skipped for it, not for us).
    found="$(as_account "$candidate" -c 'import sys, venv, ensurepip
assert sys.version_info >= (3, 10)
print(sys.executable)' 2>/dev/null)" || continue
    if [ -n "$found" ]; then
      if [ "$found" != "$(command -v "$python")" ]; then
        say "Using $found (the Python that the account '$user' can run; set PYTHON to choose another)"
      fi
      python="$found"
      return 0
    fi
  done
  fail "the account '$user' cannot run $(command -v "$python") (is it under /root?); install Python 3.10+ \
system-wide (Debian: apt-get install python3 python3-venv) or set PYTHON=/path/to/python3"
}

ensure_account() {
  if ! id -u "$user" >/dev/null 2>&1; then
    [ "$is_root" = 1 ] || fail "user '$user' does not exist"
    local shell=/usr/sbin/nologin
    [ -x "$shell" ] || shell=/sbin/nologin
    useradd --system --no-create-home --home-dir "$state_dir" --shell "$shell" --user-group "$user"
    say "Created system user '$user' (no login shell)"
  fi
  group="$(id -gn "$user")"
  if [ -n "$drop_group" ]; then
    if ! getent group "$drop_group" >/dev/null; then
      if [ "$is_root" = 0 ] || [ "$private_install" = 1 ]; then fail "group '$drop_group' does not exist"; fi
      groupadd --system "$drop_group"
      say "Created group '$drop_group'; add the SIS account to it: usermod -a -G $drop_group SIS_ACCOUNT"
    fi
    if ! id -nG "$user" | tr ' ' '\n' | grep -qx -- "$drop_group"; then
      [ "$is_root" = 1 ] || fail "you are not a member of group '$drop_group'"
      usermod -a -G "$drop_group" "$user"
      say "Added '$user' to group '$drop_group' (so it can read the files the SIS account drops)"
    fi
  fi
}

# Copies the package into <prefix>/src (replacing an older copy) and installs it, not editable,
# into <prefix>/venv, so the running service never depends on this checkout.
install_code() {
  local code_owner code_group items=() item
  code_owner="$(id -un)"; code_group="$(id -gn)"
  mkdir -p "$prefix"
  chmod 0755 "$prefix"
  for item in agent templates conf docs setup.cfg pyproject.toml README.md; do
    if [ -e "$source_dir/$item" ]; then items+=("$item"); fi
  done
  rm -rf -- "$prefix/src.new"
  mkdir "$prefix/src.new"
  tar -C "$source_dir" --exclude=__pycache__ --exclude='*.pyc' --exclude=conf/agent.ini \
    -cf - "${items[@]}" | tar -C "$prefix/src.new" -xf -
  rm -rf -- "$prefix/src"
  mv "$prefix/src.new" "$prefix/src"
  printf 'prefix=%s\nstate_dir=%s\nconfig_dir=%s\nunit_dir=%s\nuser=%s\n' \
    "$prefix" "$state_dir" "$config_dir" "$unit_dir" "$user" >"$prefix/$marker_name"

  if ! as_account "$prefix/venv/bin/python" -c 'import sys' >/dev/null 2>&1; then
    rm -rf -- "$prefix/venv"
    say "Creating virtual environment in $prefix/venv"
    "$python" -m venv "$prefix/venv"
  fi
  say "Installing feed-agent into $prefix/venv"
  # shellcheck disable=SC2086  # pip_args is a list of words on purpose
  "$prefix/venv/bin/python" -m pip --disable-pip-version-check -q install $pip_args "$prefix/src"
  own -R "$code_owner:$code_group" "$prefix"
  [ -x "$prefix/venv/bin/feed-agent" ] || fail "pip did not create $prefix/venv/bin/feed-agent"
  if ! as_account "$prefix/venv/bin/feed-agent" --help >/dev/null 2>&1; then
    say "WARNING: $prefix/venv/bin/feed-agent --help did not run; see its output for the reason."
  fi
}

make_state_dirs() {
  local top_group="$group" drop_owner_group="$group" sub
  if [ -n "$drop_group" ]; then top_group="$drop_group"; drop_owner_group="$drop_group"; fi
  # The drop group needs to pass through the state folder to reach drop/; nothing else is open to it.
  make_dir "$state_dir" "$user" "$top_group" 0750
  # setgid: files the SIS account writes keep the drop group, so the agent can read and move them.
  make_dir "$state_dir/drop" "$user" "$drop_owner_group" 2770
  for sub in processing archive failed outbox; do
    make_dir "$state_dir/$sub" "$user" "$group" 0750
  done
}

write_config() {
  local ini="$config_dir/agent.ini" env="$config_dir/.env" tmp state_re config_re
  make_dir "$config_dir" "$user" "$group" 0750
  if [ -e "$ini" ]; then
    say "kept existing $ini"
  else
    state_re="$(sed_escape "$state_dir")"; config_re="$(sed_escape "$config_dir")"
    tmp="$(mktemp "$config_dir/.agent.ini.XXXXXX")"
    {
      printf '; Created by install.sh --service; upgrades never overwrite this file.\n'
      sed -e "s|^work_dir = .*|work_dir = $state_re|" \
          -e "s|^env_file = .*|env_file = $config_re/.env|" \
          -e "s|\.\./var/|$state_re/|g" \
          "$source_dir/conf/agent.ini.example"
    } >"$tmp"
    chmod 0640 "$tmp"; own "$user:$group" "$tmp"
    mv "$tmp" "$ini"
    say "Created $ini from the example: set your Learn url, integration and email there"
  fi
  if [ -e "$env" ]; then
    say "kept existing $env"
    if [ -n "$(find "$env" -perm /077 2>/dev/null)" ]; then
      chmod go-rwx "$env"
      say "Made $env readable by its owner only (it holds passwords)"
    fi
  else
    tmp="$(mktemp "$config_dir/.env.XXXXXX")"
    cat "$source_dir/conf/.env.example" >"$tmp"
    chmod 0600 "$tmp"; own "$user:$group" "$tmp"
    mv "$tmp" "$env"
    say "Created $env (mode 600): put the passwords and keys there"
  fi
}

write_unit() {
  local unit_file="$unit_dir/$unit_name" tmp
  mkdir -p "$unit_dir"
  tmp="$(mktemp "$unit_dir/.$unit_name.XXXXXX")"
  sed -e "s|@PREFIX@|$(sed_escape "$prefix")|g" \
      -e "s|@CONFIG_DIR@|$(sed_escape "$config_dir")|g" \
      -e "s|@STATE_DIR@|$(sed_escape "$state_dir")|g" \
      -e "s|@USER@|$(sed_escape "$user")|g" \
      -e "s|@GROUP@|$(sed_escape "$group")|g" \
      "$source_dir/conf/feed-agent.service" >"$tmp"
  if [ -n "$drop_group" ]; then
    sed -i -e "s|@DROP_GROUP@|$(sed_escape "$drop_group")|g" "$tmp"
  else
    sed -i -e '/@DROP_GROUP@/d' "$tmp"
  fi
  chmod 0644 "$tmp"
  mv "$tmp" "$unit_file"
  say "Wrote $unit_file"
}

start_service() {
  systemctl daemon-reload
  systemctl enable "$unit_name" >/dev/null
  if [ "$start" = 1 ]; then
    systemctl restart "$unit_name"
    say "Enabled and (re)started $unit_name. Follow it with: journalctl -u feed-agent -f"
    say "Until agent.ini and .env are filled in it stops with a configuration error (see the journal)."
  else
    say "Enabled $unit_name; start it with: systemctl start feed-agent"
  fi
}

install() {
  check_python
  ensure_account
  ensure_python_for_account
  install_code
  make_state_dirs
  write_config
  write_unit
  if [ "$use_systemd" = 1 ]; then start_service; else cron_help; fi
  cat <<TXT

feed-agent is installed in $prefix.
  Configure:  $config_dir/agent.ini (targets, routes, email) and $config_dir/.env (passwords)
  Validate:   sudo -u $user $prefix/venv/bin/feed-agent -c $config_dir/agent.ini check
  Drop files: $state_dir/drop
  Guide:      $prefix/src/docs/admin-guide.md
TXT
}

case "$action" in
  install) install ;;
  uninstall) uninstall ;;
esac
