# Shared by scripts/gpu_check.sh and scripts/host_check.sh (sourced, with OUT set, from the
# repository's root): the log OUT/log.txt, emptied, and `step`, which runs a command with
# its output on the screen and in the log, and on failure logs its exit status and sets
# `failed=1` so that the script's own exit status says so after every step has run; and
# `build_bin`, for runs without prebuilt binaries.
mkdir -p "$OUT"
LOG="$OUT/log.txt"
: >"$LOG"
failed=0
step() {
  printf '\n==> %s\n' "$*" | tee -a "$LOG"
  "$@" 2>&1 | tee -a "$LOG"
  local rc=${PIPESTATUS[0]}
  if [ "$rc" != 0 ]; then
    echo "(exit $rc)" | tee -a "$LOG"
    failed=1
  fi
}

# Builds `ktune` (release) and sets BIN to a fresh folder holding a copy of it, which the
# caller may add other binaries to; exits when the build fails.
build_bin() {
  cargo build --release --locked -p ktune || exit 1
  BIN=$(mktemp -d)
  cp "${CARGO_TARGET_DIR:-target}/release/ktune" "$BIN/"
}
