#!/usr/bin/env bash
# The README's test command: installs what is missing, builds (normal and sanitizer builds),
# makes sure the default sandbox image is in the store (cached: built once per machine), runs
# every suite with `meson test`, and ends with one line: "N passed, N failed, N skipped".
#   tests/run.sh            everything
#   tests/run.sh --quick    unit suites only (no containers)
# A failing suite does not end the run: `meson test` goes on to the next one (|| true), and the
# summary at the end counts every failure from meson's logs and sets the exit status.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
quick=0
[ "${1:-}" = "--quick" ] && quick=1

step() { printf '\n== %s\n' "$*"; }
die() { echo "tests/run.sh: $*" >&2; echo "0 passed, 1 failed"; exit 1; }

step "dependencies"
./deploy/install-deps.sh || die "installing dependencies failed"
./deploy/prepare-host.sh || die "preparing the host's cgroups failed"

step "build (normal)"
if [ ! -f build/build.ninja ]; then meson setup build >/dev/null || die "meson setup failed"; fi
ninja -C build || die "build failed"

step "build (AddressSanitizer + UndefinedBehaviorSanitizer)"
if [ ! -f build-asan/build.ninja ]; then
	meson setup build-asan -Db_sanitize=address,undefined -Db_lundef=false >/dev/null ||
		die "meson setup (sanitizers) failed"
fi
ninja -C build-asan || die "sanitizer build failed"

step "build (clang + libFuzzer targets)"
if [ ! -f build-fuzz/build.ninja ]; then
	CC=clang meson setup build-fuzz -Dfuzz=true -Db_lundef=false >/dev/null ||
		die "meson setup (fuzz) failed"
fi
ninja -C build-fuzz || die "fuzz build failed"

if [ $quick -eq 0 ]; then
	step "sandbox image (cached in the image store)"
	./build/cli/aisp image build default || die "building the default image failed"
fi

suites=(--suite unit)
[ $quick -eq 0 ] && suites=()
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

step "tests (normal build)"
meson test -C build --print-errorlogs --num-processes 1 "${suites[@]}" || true
step "tests (sanitizer build: unit and integration suites)"
if [ $quick -eq 0 ]; then
	meson test -C build-asan --print-errorlogs --num-processes 1 --suite unit --suite integration \
		--no-suite slow || true
else
	meson test -C build-asan --print-errorlogs --num-processes 1 --suite unit || true
fi
logs=("$root/build/meson-logs/testlog.json" "$root/build-asan/meson-logs/testlog.json")
if [ $quick -eq 0 ]; then
	step "fuzzing (each target for a bounded time)"
	meson test -C build-fuzz --print-errorlogs --num-processes 1 --suite fuzz || true
	logs+=("$root/build-fuzz/meson-logs/testlog.json")
fi

# One summary over both runs, from meson's machine-readable logs. Each failed suite's failing
# checks (and the diagnostics after them) are printed just above the last line, so a CI
# report that keeps only the tail of the output still says why.
python3 - "${logs[@]}" <<'PY'
import json, sys
p = f = s = 0
failed = []
for path in sys.argv[1:]:
    try:
        lines = open(path).read().splitlines()
    except OSError:
        f += 1
        continue
    for line in lines:
        t = json.loads(line)
        r = t.get("result")
        if r in ("OK", "EXPECTEDFAIL"):
            p += 1
        elif r == "SKIP":
            s += 1
        else:
            f += 1
            failed.append(t)
for t in failed:
    out = (t.get("stdout") or "").splitlines()
    keep, after = [], 0
    for l in out:
        if l.startswith("not ok") or l.startswith("Bail out!"):
            keep.append(l)
            after = 12
        elif after and (l.startswith("#") or l.startswith("  ")):
            keep.append(l)
            after -= 1
        else:
            after = 0
    if not keep:
        keep = out[-20:] + (t.get("stderr") or "").splitlines()[-10:]
    print(f"== failed: {t['name']} ({t.get('result')}, exit {t.get('returncode')})")
    for l in keep[:60]:
        print("   " + l[:400])
print(f"{p} passed, {f} failed, {s} skipped")
sys.exit(1 if f else 0)
PY
