#!/usr/bin/env bash
# Sets up feed-agent in this folder: a virtualenv, the package, the working folders and an example
# configuration. Safe to run again: it never overwrites conf/agent.ini or .env.
#   ./install.sh          runtime install
#   ./install.sh --dev    adds the test and lint tools
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

dev=0
for arg in "$@"; do
  case "$arg" in
    --dev) dev=1 ;;
    --service|--uninstall|--prefix|--prefix=*|--drop-group|--drop-group=*|--no-systemd|--no-start|\
    --state-dir|--state-dir=*|--config-dir|--config-dir=*|--unit-dir|--unit-dir=*|--user|--user=*|\
    --pip-args|--pip-args=*)
      # System service install/uninstall (see conf/install-service.sh --help); it takes all the arguments.
      if [ -x "$here/conf/install-service.sh" ]; then exec "$here/conf/install-service.sh" "$@"; fi
      echo "install.sh: service installation is not available in this version" >&2; exit 2 ;;
    -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option '$arg' (use --dev, or --help)" >&2; exit 2 ;;
  esac
done

python="${PYTHON:-python3}"
if ! command -v "$python" >/dev/null 2>&1; then
  echo "install.sh: python3 was not found; install Python 3.10 or newer (Debian: apt-get install python3 python3-venv)" >&2
  exit 1
fi
if ! "$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' 2>/dev/null; then
  echo "install.sh: $("$python" -V 2>&1) is too old; feed-agent needs Python 3.10 or newer" >&2
  exit 1
fi
if ! "$python" -c 'import venv, ensurepip' >/dev/null 2>&1; then
  echo "install.sh: the Python venv module is missing (Debian: apt-get install python3-venv)" >&2
  exit 1
fi

if [ ! -x .venv/bin/python ]; then
  echo "Creating virtual environment in .venv"
  "$python" -m venv .venv
fi
pip=(.venv/bin/python -m pip --disable-pip-version-check -q)
if [ "$dev" = 1 ]; then
  echo "Installing feed-agent with the development tools"
  "${pip[@]}" install -e ".[dev]"
else
  echo "Installing feed-agent"
  "${pip[@]}" install -e .
fi
# The package is installed in place (-e), so pip compiles none of it; every command would compile
# the agent's modules again (~30 ms a start) wherever PYTHONDONTWRITEBYTECODE is set.
.venv/bin/python -m compileall -q agent >/dev/null

mkdir -p var/drop var/processing var/archive var/failed var/outbox
if [ ! -f conf/agent.ini ]; then
  cp conf/agent.ini.example conf/agent.ini
  echo "Created conf/agent.ini from the example"
fi
if [ ! -f .env ]; then
  (umask 077 && cp conf/.env.example .env)
  echo "Created .env (mode 600) for passwords and keys"
fi
chmod 600 .env

cat <<TXT

feed-agent is installed.
  Try it:            .venv/bin/feed-agent demo
  Configure:         edit conf/agent.ini (targets, routes, email) and .env (passwords, keys)
  Validate:          .venv/bin/feed-agent check
  Run:               .venv/bin/feed-agent watch        (or 'run' from cron)
TXT
if [ "$dev" = 1 ]; then echo "  Tests:             .venv/bin/python -m pytest"; fi
