#!/bin/bash
# A script written for the Docker CLI, as CI jobs write them: formats,
# filters, volumes, a two-container app on a user network talking by
# name, --restart on-failure, and a healthcheck turning healthy and then
# unhealthy. Run as `docker-habits.sh IMAGE CLI [ARGS...]`; each section
# prints `== name` and then its lines, so that two engines' outputs can
# be compared section by section (tests/docker_habits.rs).
set -u
img=$1
shift
D=("$@")
c() { "${D[@]}" "$@"; }

# Kill (when running) and remove containers.
gone() {
	c kill "$@" >/dev/null 2>&1
	c rm -f "$@" >/dev/null 2>&1
}

# Wait up to 20 s for `c inspect -f FORMAT NAME` to print WANT.
wait_for() {
	local fmt=$1 name=$2 want=$3 i
	for i in $(seq 200); do
		[ "$(c inspect -f "$fmt" "$name" 2>/dev/null)" = "$want" ] && return 0
		sleep 0.1
	done
	return 1
}

echo "== ps-formats"
c run -d --name web --label tier=front "$img" sleep 60 >/dev/null
c run --name job "$img" sh -c 'exit 3' >/dev/null
echo "job exit: $?"
c create --name idle --label tier=back "$img" true >/dev/null
c ps --format '{{.Names}}'
c ps -a --format '{{.Names}}' | sort
c ps -a --filter status=exited --format '{{.Names}}'
c ps -a --filter label=tier=back --format '{{.Names}} {{.Image}}'
c ps -a --filter name=we --format '{{.Names}}'
c ps -q | wc -l
echo "== inspect-formats"
c inspect --format '{{.Name}} {{.State.Status}} {{.State.ExitCode}} {{.State.Running}}' job
c inspect --format '{{index .Config.Labels "tier"}} {{.Config.Cmd}}' web
c inspect --format '{{json .State.Running}}' web
c inspect --format '{{range .Config.Cmd}}[{{.}}]{{end}}' idle
echo "== volumes"
c volume create data >/dev/null
c run --rm -v data:/d "$img" sh -c 'echo kept > /d/f'
c run --rm -v data:/d "$img" cat /d/f
c volume ls --format '{{.Name}} {{.Driver}}' --filter name=data
c volume inspect --format '{{.Name}} {{.Driver}}' data
c run -d --name holder -v data:/d "$img" sleep 60 >/dev/null
if c volume rm data >/dev/null 2>&1; then echo "rm in use: removed"; else echo "rm in use: refused"; fi
gone holder
c volume rm data
c volume ls -q --filter name=data | wc -l
echo "== user-network"
c network create appnet >/dev/null
c network ls --format '{{.Name}} {{.Driver}}' --filter name=appnet
c run -d --name srv --network appnet "$img" sh -c \
	'mkdir -p /www && echo hello-by-name > /www/index.html && exec httpd -f -p 80 -h /www' >/dev/null
sleep 0.5
c run --rm --network appnet "$img" wget -q -O - http://srv/
gone srv
c network rm appnet
echo "== restart-on-failure"
c run -d --name flaky --restart on-failure:2 "$img" sh -c 'echo attempt; exit 3' >/dev/null
wait_for '{{.State.Status}} {{.RestartCount}}' flaky 'exited 2' && echo settled
c inspect --format '{{.State.Status}} {{.RestartCount}} {{.State.ExitCode}}' flaky
c logs flaky
echo "== healthcheck"
c run -d --name hc --health-cmd 'test -e /tmp/up' --health-interval 1h --health-retries 1 \
	"$img" sh -c 'touch /tmp/up; exec sleep 60' >/dev/null
c healthcheck run hc >/dev/null
echo "probe: $?"
c inspect --format '{{.State.Health.Status}}' hc
c exec hc rm /tmp/up
c healthcheck run hc >/dev/null
echo "probe: $?"
c inspect --format '{{.State.Health.Status}} {{.State.Health.FailingStreak}}' hc
echo "== cleanup"
gone web job idle flaky hc
c ps -aq | wc -l
